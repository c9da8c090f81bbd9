"""The benchmarks still run end to end (tiny sizes, SQLite): a smoke test, never a timing test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_naive_bench_prints_both_figures() -> None:
    # A separate process, as it is run: the naive jobs are pickled with a reference to its `send_sms`.
    result = subprocess.run([sys.executable, "bench/naive.py", "--quick", "--bookings", "20", "--burst", "50"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    number = r"\d+\.\d"
    assert re.search(rf"^naive \(APScheduler SQLAlchemyJobStore\): {number}+ bookings planned/s; "
                     rf"ours: {number}+/s \({number}+x\)$", result.stdout, re.MULTILINE), result.stdout
    assert re.search(rf"^burst of 50 due at once: naive drained in {number} s, ours in {number} s "
                     rf"\({number}x (faster|slower)\)$", result.stdout, re.MULTILINE), result.stdout
