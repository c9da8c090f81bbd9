"""The retry backoff after a transient error: exponential within a cap, a server's Retry-After within reason."""

from __future__ import annotations

import pytest

from connector.core.retry import gives_up, retry_delay

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


@pytest.mark.parametrize(
    ("tries", "elapsed", "delay", "step_timeout", "expected"),
    [
        (1, 0.0, 0.5, 3600.0, False),  # the first failure of a long step: try again
        (3, 10.0, 2.0, 3600.0, False),
        (4, 10.0, 2.0, 3600.0, True),  # MAX_TRIES reached
        (2, 44.0, 2.0, 3600.0, True),  # the next try would land past the 45 s budget
        (2, 40.0, 5.0, 3600.0, False),  # exactly at the budget still goes
        (2, 5.0, 8.0, 10.0, True),  # a short step's own timeout is the budget
        (1, 0.0, 0.0, 0.0, False),  # a step without a timeout may still retry at once
    ],
)
def test_when_a_step_gives_up_retrying(tries, elapsed, delay, step_timeout, expected):
    assert gives_up(tries, elapsed=elapsed, delay=delay, step_timeout=step_timeout) is expected
