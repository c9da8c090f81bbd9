"""Who can sign in, as the process is started: the embedded default's built-in admin with
CONNECTOR_STATUS_PASSWORD, or the tenants file's staff; and what `release` tells the operator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from werkzeug.security import generate_password_hash

from connector.config import load_settings
from connector.entrypoints.bootstrap import build_runtime
from connector.store.migrate import upgrade
from connector.web import create_app
from tests.staff import csrf_token, sign_in

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "status-password-0123456"


def environment(tmp_path, **extra: str) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    return {"DATABASE_URL": url, "CONNECTOR_API_TOKEN": "api-token-0123456789",
            "CONNECTOR_DEMO_TOKEN": "demo-token-0123456789", "CONNECTOR_LINK_SECRET": "link-secret",
            "CONNECTOR_SECRET_KEY": "session-key-0123456789", **extra}


def signs_in(app, login: str, password: str) -> bool:
    client = app.test_client()
    answer = client.post("/status/sign-in", data={"login": login, "password": password,
                                                  "csrf_token": csrf_token(client)})
    return answer.status_code == 302


def test_the_built_in_admin_signs_in_with_the_status_password(tmp_path):
    runtime = build_runtime(load_settings(environment(tmp_path, CONNECTOR_STATUS_PASSWORD=PASSWORD)))
    try:
        app = create_app(runtime)
        assert signs_in(app, "admin", PASSWORD)
        assert not signs_in(app, "admin", "api-token-0123456789")  # the API token opens the API only
        client = app.test_client()
        sign_in(client, "admin", PASSWORD)
        assert "Администратор" in client.get("/status/demo").get_data(as_text=True)
    finally:
        runtime.engine.dispose()


def test_with_a_tenants_file_its_staff_sign_in_and_no_built_in_admin(tmp_path, monkeypatch):
    path = tmp_path / "tenants.yaml"
    path.write_text(
        "tenants:\n  - id: clinic\n    webhook_token: ${CLINIC_TOKEN}\n"
        "staff:\n  - login: anna\n    name: Анна\n"
        f"    password_hash: '{generate_password_hash('anna-password-0123', method='pbkdf2:sha256:1000')}'\n"
        "    tenants: [clinic]\n    role: viewer\n", encoding="utf-8")
    env = environment(tmp_path, CONNECTOR_CONFIG=str(path), CLINIC_TOKEN="clinic-token-0123456789",
                      CONNECTOR_STATUS_PASSWORD=PASSWORD)
    monkeypatch.setenv("CLINIC_TOKEN", env["CLINIC_TOKEN"])  # the tenants file's ${…} come from the environment
    runtime = build_runtime(load_settings(env))
    try:
        app = create_app(runtime)
        assert signs_in(app, "anna", "anna-password-0123")
        assert not signs_in(app, "admin", PASSWORD)
    finally:
        runtime.engine.dispose()


def test_release_says_where_the_demo_admins_password_is(tmp_path):
    for extra, where in (({"CONNECTOR_STATUS_PASSWORD": PASSWORD}, "$CONNECTOR_STATUS_PASSWORD"),
                         ({}, "instance/status_password")):
        result = subprocess.run([sys.executable, "-m", "connector", "release"], cwd=ROOT, capture_output=True,
                                text=True, env={"PATH": "/usr/bin:/bin", **environment(tmp_path, **extra)},
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"sign in as admin with the password in {where}" in result.stdout
        assert PASSWORD not in result.stdout
