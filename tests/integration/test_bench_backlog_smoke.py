"""bench/backlog.py runs end to end on PostgreSQL with tiny ledgers and prints each figure's line: a smoke test, no
figure is compared with anything, so a slow machine passes. Skipped when PostgreSQL is unreachable, except in CI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RATIO = r"\d+\.\d\dx"


@pytest.mark.postgres
def test_the_backlog_bench_prints_its_figures(postgres_server_url: str) -> None:
    done = subprocess.run([sys.executable, "bench/backlog.py", "--quick", "--sizes", "100", "--history", "100",
                           "--intake", "100", "--server-url", postgres_server_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "ledger: 100 future jobs + 100 finished: filled in" in out, out
    for label in ("idle dispatch pass", "idle advance pass", "idle poll pass", "pass sending 100 due jobs"):
        assert re.search(rf"^  {label} +\d+\.\d\d ms +{RATIO} \(reference", out, re.MULTILINE), out
    assert re.search(rf"^  intake, 100 new bookings +\d+ /s +{RATIO} \(reference", out, re.MULTILINE), out
    assert re.search(r"^  worker RSS +\d+ MB", out, re.MULTILINE), out
    assert re.search(r"^  claim plan after 20 runs \(\d+ custom, \d+ generic\): Limit ", out, re.MULTILINE), out
    assert re.search(r"^(all targets met|targets missed: .+)$", out, re.MULTILINE), out
