"""A lone `git clone` tests on its own: nothing the tests or the service read lives outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures import SAMPLES, sample

ROOT = Path(__file__).resolve().parents[2]
# A path that climbs out of the repository into a sibling folder's docs or fixtures, or a parents[] index (or a
# chain of .parent) past the repository's root: whatever the folder beside it is called.
OUTSIDE = re.compile(r"\.\./\w+/(docs|fixtures)\b|parents\[[3-9]\]|(\.parent){4}")


def test_samples_live_inside_the_repository():
    assert SAMPLES.is_relative_to(ROOT)
    assert sample("yclients", "record_create.json").is_file()


def test_no_code_or_test_reaches_outside_the_repository():
    offenders = []
    for folder in ("connector", "tests", "bench", "migrations"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.resolve() == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
