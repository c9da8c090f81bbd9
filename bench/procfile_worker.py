"""The Procfile's own `worker` and `release` lines, run as a platform runs them: how bench/lateness.py drives the
real worker process.

The worker runs in its own session, so that stopping it stops it and nothing else. It counts as ready once it
has written its first heartbeat (its scheduler runs every periodic job at start): from then on its intake and
dispatch are going.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procfile_web import stop_group

ROOT = Path(__file__).resolve().parents[1]


def procfile_line(name: str) -> str:
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    return procfile[name]


def release(env: dict[str, str], log: Path) -> None:
    """Migrations and the configuration check, as before a deploy; raises with the log's path if it fails."""
    with log.open("w") as out:
        done = subprocess.run(["bash", "-c", f"exec {procfile_line('release')}"], cwd=ROOT, env=env, stdout=out,
                              stderr=subprocess.STDOUT, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"release failed; its log: {log}")


@contextmanager
def working(env: dict[str, str], log: Path, ready: Callable[[], bool], within: float = 60) -> Iterator[None]:
    """The worker line running until the block ends; `ready()` polled until it holds (else RuntimeError)."""
    with log.open("w") as out:
        process = subprocess.Popen(["bash", "-c", f"exec {procfile_line('worker')}"], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + within
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; its log: {log}")
            time.sleep(0.1)
        yield
    finally:
        stop_group(process, grace=20)  # the worker's pass in flight finishes first
