"""`python -m connector demo` as a user runs it: with nothing listening at --url it says so in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    """A port nothing listens on: bound, read, and released again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_listening_is_a_one_line_hint_and_a_failure():
    url = f"http://127.0.0.1:{closed_port()}"
    env = {**os.environ, "CONNECTOR_DEMO_TOKEN": "demo-token-for-the-cli-test",
           "CONNECTOR_API_TOKEN": "api-token-for-the-cli-test"}
    result = subprocess.run([sys.executable, "-m", "connector", "demo", "--url", url], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr.strip() == f"nothing answers at {url}: start `make run` in another terminal first"
    assert result.stdout == ""


def test_nothing_listening_is_said_before_asking_for_tokens():
    # A fresh clone has no instance/ tokens yet: the first thing to fix is that the service is not running.
    url = f"http://127.0.0.1:{closed_port()}"
    env = {key: value for key, value in os.environ.items()
           if key not in ("CONNECTOR_DEMO_TOKEN", "CONNECTOR_API_TOKEN")}
    result = subprocess.run([sys.executable, "-m", "connector", "demo", "--url", url], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "nothing answers at" in result.stderr and "Traceback" not in result.stderr
