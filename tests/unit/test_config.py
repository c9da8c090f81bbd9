"""Settings from the environment, a .env file in the working directory, and generated secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT = "from connector.config import load_settings; s = load_settings(); print(s.database_url, s.api_token)"


def settings_in(directory: Path, env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "DATABASE_URL"))}
    result = subprocess.run([sys.executable, "-c", PRINT], cwd=directory, capture_output=True, text=True, check=True,
                            env={**clean, "PYTHONPATH": str(ROOT), "CONNECTOR_DEMO_TOKEN": "d",
                                 "CONNECTOR_LINK_SECRET": "l", **env})
    return result.stdout.splitlines()[-1].split()


def test_a_dotenv_file_is_honoured(tmp_path):
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:////tmp/from-dotenv.db\nCONNECTOR_API_TOKEN=from-dotenv\n")
    assert settings_in(tmp_path, {}) == ["sqlite:////tmp/from-dotenv.db", "from-dotenv"]


def test_the_environment_wins_over_dotenv(tmp_path):
    (tmp_path / ".env").write_text("CONNECTOR_API_TOKEN=from-dotenv\n")
    assert settings_in(tmp_path, {"CONNECTOR_API_TOKEN": "from-env"})[1] == "from-env"


def test_the_support_thresholds_come_from_the_environment_with_their_defaults():
    from datetime import timedelta

    from connector.config import load_settings

    base = {"DATABASE_URL": "sqlite://", "CONNECTOR_API_TOKEN": "a", "CONNECTOR_DEMO_TOKEN": "d",
            "CONNECTOR_LINK_SECRET": "l"}
    default = load_settings(base)
    assert (default.stale_after_seconds, default.late_after) == (60, timedelta(minutes=5))
    tuned = load_settings({**base, "CONNECTOR_STALE_AFTER_SECONDS": "90", "CONNECTOR_LATE_AFTER_SECONDS": "600"})
    assert (tuned.stale_after_seconds, tuned.late_after) == (90, timedelta(minutes=10))


SECRETS = {"CONNECTOR_API_TOKEN": "a", "CONNECTOR_DEMO_TOKEN": "d", "CONNECTOR_LINK_SECRET": "l"}


def worker_settings(env: dict[str, str]) -> tuple[float, int, float, float, float]:
    from connector.config import load_settings

    settings = load_settings({**SECRETS, **env})
    return (settings.worker_tick_seconds, settings.worker_concurrency, settings.sync_interval_seconds,
            settings.intake_seconds, settings.dispatch_seconds)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (1.0, 32, 600.0, 0.5, 0.25)),
        ({"WORKER_TICK_SECONDS": "0.3", "WORKER_CONCURRENCY": "4", "SYNC_INTERVAL_SECONDS": "60"},
         (0.3, 4, 60.0, 0.5, 0.25)),
        ({"WORKER_CONCURRENCY": " 8 ", "SYNC_INTERVAL_SECONDS": ""}, (1.0, 8, 600.0, 0.5, 0.25)),  # blank: default
        ({"WORKER_INTAKE_SECONDS": "2", "WORKER_DISPATCH_SECONDS": "0.1"}, (1.0, 32, 600.0, 2.0, 0.1)),
    ],
)
def test_worker_settings_are_read_once_with_their_defaults(env, expected):
    assert worker_settings(env) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_TICK_SECONDS", "fast"),
        ("WORKER_TICK_SECONDS", "0"),
        ("WORKER_TICK_SECONDS", "-1"),
        ("WORKER_TICK_SECONDS", "nan"),
        ("WORKER_CONCURRENCY", "2.5"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CONCURRENCY", "lots"),
        ("SYNC_INTERVAL_SECONDS", "inf"),
        ("SYNC_INTERVAL_SECONDS", "10m"),
        ("WORKER_INTAKE_SECONDS", "0"),
        ("WORKER_DISPATCH_SECONDS", "soon"),
    ],
)
def test_a_bad_worker_setting_is_refused_by_name(name, value):
    from connector.config import SettingsError

    with pytest.raises(SettingsError, match=f"^{name}: not a positive"):
        worker_settings({name: value})


def test_check_fails_the_deploy_on_a_bad_worker_setting(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "DATABASE_URL", "WORKER_"))}
    result = subprocess.run([sys.executable, "-m", "connector", "check"], cwd=ROOT, capture_output=True, text=True,
                            env={**clean, **SECRETS, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
                                 "WORKER_CONCURRENCY": "lots"})
    assert result.returncode == 2
    assert "WORKER_CONCURRENCY: not a positive whole number: 'lots'" in result.stderr


def test_monitoring_s_queue_lag_threshold_comes_from_the_environment():
    from connector.config import SettingsError, load_settings

    assert load_settings(SECRETS).health_max_queue_lag_seconds == 300
    assert load_settings({**SECRETS, "HEALTH_MAX_QUEUE_LAG_SECONDS": "900"}).health_max_queue_lag_seconds == 900
    with pytest.raises(SettingsError, match="^HEALTH_MAX_QUEUE_LAG_SECONDS: not a positive whole number"):
        load_settings({**SECRETS, "HEALTH_MAX_QUEUE_LAG_SECONDS": "5m"})
