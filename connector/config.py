"""Process settings from the environment (12-factor); a `.env` file in the working directory is honoured."""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from dotenv import find_dotenv, load_dotenv

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Settings:
    database_url: str
    config_path: str | None
    api_token: str
    demo_token: str
    max_body_bytes: int
    log_level: str
    log_json: bool
    demo_step_seconds: float = 20.0
    demo_quiet_hours: str = "21:00-09:00"  # "off" to watch the demo cascade at any hour
    link_secret: str = ""  # signs bot invitation payloads (connector.core.invites)
    # A worker whose last beat is older than this counts as not running (/healthz, the status page).
    stale_after_seconds: int = 60
    # A scheduled job this far past due means the workers are not keeping up (/metrics, the status page).
    late_after: timedelta = timedelta(minutes=5)
    worker_tick_seconds: float = 1.0  # between worker passes (dispatch, timeouts, polls)
    # between intake passes when nothing wakes the worker (PostgreSQL's NOTIFY does at once; SQLite cannot)
    intake_seconds: float = 0.5
    # between dispatch passes: a job falls due between two, so this is how late a job may start (an idle pass
    # is two index lookups that follow the live work: a millisecond or two)
    dispatch_seconds: float = 0.25
    worker_concurrency: int = 32  # sends in flight per worker
    sync_interval_seconds: float = 600.0  # between YCLIENTS read-backs (connector.usecases.sync)
    # The oldest scheduled job this far past due makes /healthz/worker answer 503: monitoring's threshold.
    health_max_queue_lag_seconds: int = 300
    # The status pages' sign-in (connector.web.access): the built-in admin's password when there is no tenants
    # file, the key that signs the session cookie, and how long a session lives idle and at most.
    status_password: str = ""
    secret_key: str = ""  # empty: each app makes its own (tests); load_settings shares one through instance/
    session_idle: timedelta = timedelta(minutes=30)
    session_max: timedelta = timedelta(hours=12)
    proxy_fix: bool = False  # behind a reverse proxy: trust its X-Forwarded-For/-Proto (one hop)


class SettingsError(ValueError):
    """An environment variable the process cannot use; the message names it."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    if environ is None:
        load_dotenv(find_dotenv(usecwd=True), override=False)  # the working directory's .env; the environment wins
        environ = dict(os.environ)
    return Settings(
        database_url=environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE / 'connector.db'}",
        config_path=environ.get("CONNECTOR_CONFIG") or None,
        api_token=environ.get("CONNECTOR_API_TOKEN") or _generated_secret("api_token"),
        demo_token=environ.get("CONNECTOR_DEMO_TOKEN") or _generated_secret("demo_token"),
        max_body_bytes=int(environ.get("CONNECTOR_MAX_BODY_BYTES", 256 * 1024)),
        log_level=environ.get("LOG_LEVEL", "INFO"),
        log_json=environ.get("LOG_FORMAT", "text") == "json",
        demo_step_seconds=float(environ.get("CONNECTOR_DEMO_STEP_SECONDS", 20)),
        demo_quiet_hours=environ.get("CONNECTOR_DEMO_QUIET_HOURS", "21:00-09:00"),
        link_secret=environ.get("CONNECTOR_LINK_SECRET") or _generated_secret("link_secret", quiet=True),
        stale_after_seconds=_positive(environ, "CONNECTOR_STALE_AFTER_SECONDS", 60, int),
        late_after=timedelta(seconds=_positive(environ, "CONNECTOR_LATE_AFTER_SECONDS", 300, int)),
        worker_tick_seconds=_positive(environ, "WORKER_TICK_SECONDS", 1.0, float),
        intake_seconds=_positive(environ, "WORKER_INTAKE_SECONDS", 0.5, float),
        dispatch_seconds=_positive(environ, "WORKER_DISPATCH_SECONDS", 0.25, float),
        worker_concurrency=_positive(environ, "WORKER_CONCURRENCY", 32, int),
        sync_interval_seconds=_positive(environ, "SYNC_INTERVAL_SECONDS", 600.0, float),
        health_max_queue_lag_seconds=_positive(environ, "HEALTH_MAX_QUEUE_LAG_SECONDS", 300, int),
        status_password=environ.get("CONNECTOR_STATUS_PASSWORD") or _generated_secret("status_password", quiet=True),
        secret_key=environ.get("CONNECTOR_SECRET_KEY") or environ.get("SECRET_KEY")
        or _generated_secret("secret_key", quiet=True),
        session_idle=timedelta(minutes=_positive(environ, "CONNECTOR_SESSION_IDLE_MINUTES", 30, int)),
        session_max=timedelta(hours=_positive(environ, "CONNECTOR_SESSION_MAX_HOURS", 12, int)),
        proxy_fix=environ.get("CONNECTOR_PROXY_FIX", "") == "1",
    )


def _positive(environ: Mapping[str, str], name: str, default: _N, kind: Callable[[str], _N]) -> _N:
    """A positive number from the environment: a typo must stop `check` and `release`, not the worker later."""
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value: _N | None = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value <= 0:
        what = "whole number" if kind is int else "number"
        raise SettingsError(f"{name}: not a positive {what}: {text!r}")
    return value


def _generated_secret(name: str, quiet: bool = False) -> str:
    """A secret the operator did not set: made once, kept under instance/ so every process shares it.

    It is printed once, by the process that made it (`python -m connector release` in `make run`).
    """
    path = INSTANCE / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    INSTANCE.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it a moment ago
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    if not quiet:
        print(f"Generated {name.replace('_', ' ')} (kept in {path}): {value}", flush=True)
    return value
