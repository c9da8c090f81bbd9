"""The retry backoff after a transient error: exponential within a cap, a server's Retry-After within reason."""

from __future__ import annotations

import pytest

from connector.core.retry import retry_delay

RETRIES = [
    # (tries, retry_after, base, cap, expected seconds)
    (1, None, 1.0, 60.0, 1.0),
    (2, None, 1.0, 60.0, 2.0),
    (3, None, 1.0, 60.0, 4.0),
    (6, None, 1.0, 60.0, 32.0),
    (7, None, 1.0, 60.0, 60.0),  # 64 capped
    (10_000, None, 1.0, 60.0, 60.0),  # no overflow on an absurd count
    (3, None, 0.5, 60.0, 2.0),
    (4, None, 5.0, 30.0, 30.0),
    (0, None, 1.0, 60.0, 1.0),  # "no try yet" reads as the first
    (1, 17.0, 1.0, 60.0, 17.0),  # Retry-After wins over the backoff...
    (7, 2.0, 1.0, 60.0, 2.0),  # ... even when shorter
    (1, 120.0, 1.0, 60.0, 120.0),  # ... and beyond the cap
    (1, 86_400.0, 1.0, 60.0, 300.0),  # ... but within cap * 5
    (1, 0.0, 1.0, 60.0, 0.0),
    (1, -5.0, 1.0, 60.0, 0.0),  # a nonsense negative is "now"
    (3, float("nan"), 1.0, 60.0, 4.0),  # an unparseable one is ignored
    (1, float("inf"), 1.0, 60.0, 300.0),
]


@pytest.mark.parametrize(("tries", "retry_after", "base", "cap", "expected"), RETRIES)
def test_retry_delay(tries, retry_after, base, cap, expected):
    assert retry_delay(tries, retry_after, base=base, cap=cap) == expected


def test_retry_delay_defaults():
    assert [retry_delay(n, None) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
