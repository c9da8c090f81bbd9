"""The Procfile's own `web` line, serving another app: how bench/ingest.py starts each server and stops it.

Only `wsgi:app` is swapped; the bind, the worker count (WEB_CONCURRENCY: bench/ingest.py gives the Procfile's 2) and the
masking access logger stay as the Procfile has them. gunicorn runs in its own session, so its master and workers
are stopped together and nothing else is.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def web_line(app: str) -> str:
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    if " wsgi:app " not in procfile["web"]:
        raise SystemExit(f"the Procfile's web line no longer serves wsgi:app: {procfile['web']}")
    return procfile["web"].replace(" wsgi:app ", f" {app} ", 1)


@contextmanager
def serving(app: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """http://127.0.0.1:<port> of the Procfile's web line serving `app`; gunicorn and its workers stopped after."""
    with log.open("w") as out:
        process = subprocess.Popen(["bash", "-c", f"exec {web_line(app)}"], cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base_url = f"http://127.0.0.1:{env['PORT']}"
        if not _ready(base_url, process):
            raise RuntimeError(f"{app} did not start; its log: {log}")
        yield base_url
    finally:
        stop_group(process)


def _ready(base_url: str, process: subprocess.Popen, within: float = 60) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(base_url + "/healthz", timeout=2).status_code == 200:
                return True
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    return False


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """TERM the process's group (it was started in its own session: gunicorn's master and its workers, or the
    worker, and nothing else), so what is in hand finishes; KILL it if it has not ended after `grace` seconds."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
