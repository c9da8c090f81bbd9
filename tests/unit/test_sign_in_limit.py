"""The sign-in limit's sliding window (connector.core.sign_in_limit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.sign_in_limit import Limit, retry_after

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LIMIT = Limit(failures=5, window=timedelta(minutes=1))


def ago(*seconds: float) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


@pytest.mark.parametrize(("failures", "wait"), [
    ([], None),
    (ago(1, 2, 3, 4), None),  # four: the fifth try is allowed
    (ago(50, 40, 30, 20, 10), 10),  # five: wait until the oldest leaves the window
    (ago(59.5, 40, 30, 20, 10), 1),  # never less than a second
    (ago(60, 40, 30, 20, 10), None),  # the oldest has just left it
    (ago(90, 80, 30, 20, 10), None),  # older failures do not count
    (ago(55, 50, 40, 30, 20, 10), 10),  # six: the try waits until only four remain
    (ago(10, 20, 30, 40, 50), 10),  # in any order
])
def test_the_sixth_try_in_a_minute_waits_for_the_window(failures, wait):
    assert retry_after(failures, LIMIT, NOW) == wait
