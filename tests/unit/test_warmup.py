"""A warming-up number's allowance: today's cap, and where the work over it waits."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from connector.core.model import QuietHours
from connector.core.warmup import Allowance, daily_cap

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow


def allowance(**overrides) -> Allowance:
    values = {"start": 10, "growth": 2.0, "since": date(2026, 11, 26), "ceiling": None, "used": 0, "now": NOW,
              "tz": "Europe/Moscow", "quiet": QuietHours(time(21), time(9))}
    return Allowance.for_day(**{**values, **overrides})


@pytest.mark.parametrize(
    ("overrides", "limit", "left", "tomorrow"),
    [
        ({}, 20, 20, 40),  # day 2 of the warm-up: 10 × 2
        ({"used": 15}, 20, 5, 40),
        ({"used": 25}, 20, 0, 40),
        ({"ceiling": 30}, 20, 20, 30),
        ({"since": None}, 10, 10, 10),  # no start date: every day is the first, tomorrow's cap is today's
        ({"since": date(2026, 12, 1)}, 10, 10, 10),  # not started yet: the starting cap
    ],
)
def test_caps(overrides, limit, left, tomorrow):
    cap = allowance(**overrides)
    assert (cap.limit, cap.left, cap.tomorrow_limit) == (limit, left, tomorrow)


def test_take_until_the_cap():
    cap = allowance(used=18)
    assert [cap.take() for _ in range(4)] == [True, True, False, False]


@pytest.mark.parametrize(
    ("quiet", "tz", "first", "second"),
    [
        # tomorrow's cap 40 over 09:00-21:00 Moscow: every 18 minutes from 06:00Z
        (QuietHours(time(21), time(9)), "Europe/Moscow", "2026-11-28T06:00:00+00:00", "2026-11-28T06:18:00+00:00"),
        (QuietHours(time(22), time(8)), "Asia/Yekaterinburg", "2026-11-28T03:00:00+00:00",
         "2026-11-28T03:21:00+00:00"),
        (None, "Europe/Moscow", "2026-11-28T06:00:00+00:00", "2026-11-28T06:18:00+00:00"),
        # quiet only 13:00-15:00: the twelve hours after it, every 18 minutes from 15:00 Moscow
        (QuietHours(time(13), time(15)), "Europe/Moscow", "2026-11-28T12:00:00+00:00",
         "2026-11-28T12:18:00+00:00"),
    ],
)
def test_waiting_work_is_spread_over_tomorrows_hours(quiet, tz, first, second):
    cap = allowance(quiet=quiet, tz=tz, used=20)
    assert [cap.next_slot().astimezone(UTC).isoformat() for _ in range(2)] == [first, second]


def test_what_does_not_fit_tomorrow_goes_the_day_after():
    cap = allowance(start=1, growth=1.0, used=1)  # one a day
    slots = [cap.next_slot().astimezone(UTC).isoformat() for _ in range(3)]
    assert slots == ["2026-11-28T06:00:00+00:00", "2026-11-29T06:00:00+00:00", "2026-11-30T06:00:00+00:00"]


@pytest.mark.parametrize(
    "overrides",
    [{}, {"since": None}, {"since": None, "ceiling": 5}, {"ceiling": 30}, {"since": date(2026, 12, 1)},
     {"growth": 1.0}, {"start": 0, "since": None}],
)
def test_the_work_held_for_tomorrow_is_spaced_for_the_cap_tomorrow_really_has(overrides):
    """Spacing for a larger cap than tomorrow's would crowd tomorrow's slots and push the rest a day late."""
    today = allowance(**overrides)
    tomorrow = allowance(**overrides, now=NOW + timedelta(days=1))
    assert today.tomorrow_limit == max(tomorrow.limit, 1)


# --- daily_cap ---------------------------------------------------------------------------------------------

SINCE = date(2026, 12, 1)

CAPS = [
    # (start, growth, today, ceiling, expected)
    (50, 1.5, SINCE, None, 50),
    (50, 1.5, SINCE - timedelta(days=1), None, 50),  # before the warm-up began: the start
    (50, 1.5, SINCE - timedelta(days=400), 40, 40),  # ... within the ceiling
    (50, 1.5, SINCE + timedelta(days=1), None, 75),
    (50, 1.5, SINCE + timedelta(days=2), None, 112),  # 112.5 rounded down
    (50, 1.5, SINCE + timedelta(days=3), None, 168),  # 168.75
    (50, 1.5, SINCE + timedelta(days=3), 150, 150),
    (50, 1.5, SINCE + timedelta(days=30), 1000, 1000),
    (100, 1.1, SINCE + timedelta(days=3), None, 133),  # 133.1, not 133.09999…
    (1000, 1.1, SINCE + timedelta(days=3), None, 1331),  # exactly 1331, not 1330 through float error
    (100, 2, SINCE + timedelta(days=4), None, 1600),
    (100, 1.0, SINCE + timedelta(days=365), None, 100),  # growth 1: flat
    (100, 0.5, SINCE + timedelta(days=2), None, 25),  # a shrinking cap is arithmetic too
    (0, 2.0, SINCE + timedelta(days=10), None, 0),
    (200, 1.5, SINCE + timedelta(days=1), 100, 100),  # a start above the ceiling is capped
    (10, 2.0, date(9999, 12, 31), 5000, 5000),  # millennia of doubling: the ceiling, no overflow
]


@pytest.mark.parametrize(("start", "growth", "today", "ceiling", "expected"), CAPS)
def test_daily_cap(start, growth, today, ceiling, expected):
    assert daily_cap(start=start, growth=growth, since=SINCE, today=today, ceiling=ceiling) == expected


def test_daily_cap_beyond_any_number_is_the_ceiling():
    # 3 ** 3.6 million overflows even a Decimal: with a ceiling that is simply the ceiling
    assert daily_cap(start=10, growth=3.0, since=date(1, 1, 1), today=date(9999, 12, 31), ceiling=500) == 500


def test_daily_cap_beyond_any_number_without_a_ceiling_is_a_setting_that_cannot_be_used():
    # A ValueError, as for any unusable warm-up setting: the account's jobs wait with this reason, the rest go on.
    with pytest.raises(ValueError, match="set a ceiling"):
        daily_cap(start=10, growth=3.0, since=date(1, 1, 1), today=date(9999, 12, 31))


@pytest.mark.parametrize(("start", "growth"), [(-1, 1.5), (10, 0), (10, -1.5), (10, float("nan")),
                                               (10, float("inf"))])
def test_daily_cap_refuses_nonsense(start, growth):
    with pytest.raises(ValueError):
        daily_cap(start=start, growth=growth, since=SINCE, today=SINCE)
