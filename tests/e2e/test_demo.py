"""`make demo` at night: the real processes hold the confirmations for the end of the quiet hours, and the demo
says so at once, in one line, with how to watch the cascade now."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import ROOT, start_service, stop

pytestmark = pytest.mark.e2e


def test_the_demo_says_why_the_confirmations_wait_during_quiet_hours(tmp_path):
    # Quiet hours around the present moment in Moscow, whatever the hour the test runs at.
    moscow = datetime.now(ZoneInfo("Europe/Moscow"))
    start, end = moscow - timedelta(hours=1), moscow + timedelta(hours=2)
    window = f"{start:%H:%M}-{end:%H:%M}"
    service, processes = start_service(tmp_path, {"CONNECTOR_DEMO_QUIET_HOURS": window})
    try:
        began = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "connector", "demo", "--url", service.base_url], cwd=ROOT,
                                env=service.env, capture_output=True, text=True, timeout=150)
        took = time.monotonic() - began
    finally:
        stop(processes)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    table = [line for line in lines if line.strip()[:1].isdigit()]
    assert len(table) == 10 and all(line.split()[1] == "scheduled" for line in table)
    last = lines[-1]
    assert f"wait for {end:%H:%M} Moscow time" in last
    assert f"quiet hours {window}" in last
    assert "CONNECTOR_DEMO_QUIET_HOURS=off make run" in last
    assert took < 60  # said at once: nothing would move before the end of the quiet hours
