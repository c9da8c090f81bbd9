"""A lone `git clone` tests on its own: nothing the tests or the service read lives outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.fixtures import SAMPLES, sample

ROOT = Path(__file__).resolve().parents[2]
# A path that climbs out of the repository to the folder beside it, or a parents[] index past the repository's
# root. Built from parts, so that this file does not match itself.
_BESIDE = "shared"
OUTSIDE = re.compile(r"\.\./" + _BESIDE + "|" + _BESIDE + "/fixtures|parents\\[[3-9]\\]")


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
