"""Runs the real processes of the Procfile (release, gunicorn web, worker) on a fresh SQLite file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import truncate_all

ROOT = Path(__file__).resolve().parents[2]
API_TOKEN = "e2e-api-token-0123456789"
STATUS_PASSWORD = "e2e-status-password-0123"  # the built-in admin's (CONNECTOR_STATUS_PASSWORD)
DEMO_TOKEN = "e2e-demo-token-0123456789"


@dataclass
class Service:
    base_url: str
    env: dict[str, str]
    logs: Path

    def tail(self, chars: int = 3000) -> str:
        """The end of every process's log, for a failing assertion's message."""
        return "\n".join(f"--- {f.name}\n{f.read_text()[-chars:]}" for f in sorted(self.logs.iterdir()))

    def api(self, path: str) -> dict:
        response = requests.get(self.base_url + path, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
        response.raise_for_status()
        return response.json()

    def applied(self, tenant: str, answer: requests.Response, timeout: float = 30) -> dict:
        """The webhook `answer`'s inbound event once the worker's intake settled it (the web only stores it)."""
        assert answer.status_code == 200 and answer.json()["outcome"] == "accepted", answer.text
        deadline = time.monotonic() + timeout
        while True:
            event = self.api(f"/api/v1/{tenant}/inbound-events/{answer.json()['inbound_event_id']}")
            if event["outcome"] != "pending" or time.monotonic() > deadline:
                assert event["outcome"] == "applied", (event, self.tail())
                return event
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(tmp_path: Path, extra_env: dict[str, str] | None = None,
                  workers: int = 1) -> tuple[Service, list[subprocess.Popen]]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}", "CONNECTOR_API_TOKEN": API_TOKEN,
           "CONNECTOR_STATUS_PASSWORD": STATUS_PASSWORD,
           "CONNECTOR_DEMO_TOKEN": DEMO_TOKEN, "CONNECTOR_LINK_SECRET": "e2e-link-secret",
           "CONNECTOR_DEMO_STEP_SECONDS": "3",
           "CONNECTOR_DEMO_QUIET_HOURS": "off", "WORKER_TICK_SECONDS": "0.3", "PYTHONUNBUFFERED": "1",
           **(extra_env or {})}
    env.pop("CONNECTOR_CONFIG", None) if "CONNECTOR_CONFIG" not in (extra_env or {}) else None
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PORT"], env["WEB_CONCURRENCY"] = str(port), "2"
    logs = tmp_path / "logs"
    logs.mkdir()
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    subprocess.run(["bash", "-c", procfile["release"]], cwd=ROOT, env=env, check=True,
                   stdout=open(logs / "release.log", "w"), stderr=subprocess.STDOUT, timeout=120)
    # the Procfile's own command lines, as a platform would run them; several workers where the database allows
    names = ["web", *(["worker"] * workers)]
    processes = [
        subprocess.Popen(["bash", "-c", f"exec {procfile[name]}"], cwd=ROOT, env=env,
                         stdout=open(logs / f"{name}.{n}.log", "w"), stderr=subprocess.STDOUT)
        for n, name in enumerate(names)
    ]
    service = Service(f"http://127.0.0.1:{port}", env, logs)
    if wait_until_healthy(service.base_url, processes):
        return service, processes
    stop(processes)
    pytest.fail("the service did not start:\n" + "\n".join(f.read_text() for f in logs.iterdir()))


def wait_until_healthy(base_url: str, processes: list[subprocess.Popen], *, within: float = 60,
                       request_timeout: float = 2) -> bool:
    """Whether /healthz answers 200 within `within` seconds while every process lives. A loaded machine may
    accept the connection and answer late: a timeout is one more try, like a refused connection."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if requests.get(base_url + "/healthz", timeout=request_timeout).status_code == 200:
                return True
        except (requests.ConnectionError, requests.Timeout):
            pass
        if any(p.poll() is not None for p in processes):
            return False
        time.sleep(0.2)
    return False


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request, tmp_path) -> Iterator[Service]:
    """SQLite with its one worker, or PostgreSQL with two workers sharing the queue."""
    if request.param == "sqlite":
        service, processes = start_service(tmp_path)
    else:
        url = request.getfixturevalue("postgres_database")
        truncate_all(url)
        service, processes = start_service(tmp_path, {"DATABASE_URL": url}, workers=2)
    yield service
    stop(processes)
