"""bench/lateness.py runs end to end on SQLite with tiny sizes (the real worker and web processes, the recording
stand-in) and prints its three figures: a smoke test, never a timing test, so no figure is compared with its target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"\d+\.\d\d"
LINES = (
    rf"^sqlite: steady 20/s for 1 s: p99 \(sent − due\) {NUMBER} s \(target ≤ 2 s\) (met|MISSED); .*20/20 sent",
    r"^sqlite: burst of 20 reminders due at one moment: all sent \d+\.\d s after it \(target ≤ 60 s\) .*20/20 sent",
    rf"^sqlite: moved visit, webhook to first send: p99 {NUMBER} s over 2 POSTs .*2/2 sent$",
)


def test_the_lateness_bench_prints_its_three_figures():
    done = subprocess.run([sys.executable, "bench/lateness.py", "--quick", "--sqlite", "--seconds", "1",
                           "--burst", "20", "--moves", "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in LINES:
        assert re.search(line, done.stdout, re.MULTILINE), done.stdout
    assert "unfair" not in done.stdout, done.stdout
