"""bench/ingest.py runs end to end: one second of load per endpoint on a new SQLite file prints its figures line.

A smoke test: no figure is compared with anything, so a slow machine passes. Skipped without wrk, except in CI
(.ci/run installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
FIGURES = re.compile(r"^sqlite: empty endpoint \d+ req/s; floor \(one INSERT\) \d+ req/s; "
                     r"webhook \d+ req/s = \d+\.\d\dx the floor$", re.MULTILINE)


def test_the_ingest_bench_prints_its_figures_line():
    if shutil.which("wrk") is None:
        if IN_CI:
            pytest.fail("CI runs the ingest bench: .ci/run should have installed wrk")
        pytest.skip("wrk is not installed: apt-get install wrk")
    done = subprocess.run([sys.executable, "bench/ingest.py", "--quick", "--sqlite-only", "--duration", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert FIGURES.search(done.stdout), done.stdout
    assert "non-2xx 0, socket errors 0" in done.stdout
