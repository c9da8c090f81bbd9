"""A warming-up sender number's allowance: today's cap, and where the work over it waits (pure).

A new number used for mass sending gets blocked, so its daily cap starts low and rises day by day
(`daily_cap`). Work over today's cap is never dropped: it waits for the next day's sending hours
(the end of quiet hours to their start), spaced evenly across them rather than sent in one burst; what does
not fit tomorrow's cap goes on to the day after.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Context, Decimal
from zoneinfo import ZoneInfo

from connector.core.model import QuietHours

_DEFAULT_WINDOW = QuietHours(time(21, 0), time(9, 0))  # sending hours 09:00-21:00 when quiet hours are off


@dataclass(frozen=True)
class Warmup:
    """A provider account's `warmup` settings, typed and checked when the tenants file is loaded."""

    start: int = 50
    growth: float = 1.5
    since: date | None = None  # the warm-up's first day; none: every day is the first (the cap stays `start`)
    ceiling: int | None = None


def daily_cap(*, start: int, growth: float, since: date, today: date, ceiling: int | None = None) -> int:
    """How many messages a warming-up sender number may send today.

    `start` on day `since` (and before it), times `growth` for each day after, rounded down, at most `ceiling`.
    """
    if start < 0:
        raise ValueError(f"start must not be negative: {start}")
    if not growth > 0 or math.isinf(growth):
        raise ValueError(f"growth must be a positive number: {growth}")
    days = max((today - since).days, 0)
    if ceiling is not None and start >= ceiling and growth >= 1:
        return ceiling
    try:
        # Decimal of the written value: growth 1.1 over 3 days is 1.331 exactly, so the cap is the number a
        # person would compute, not one less because of binary floating point.
        # A fresh context: the thread's current one may have been changed by someone else.
        context = Context()
        value = context.multiply(Decimal(start), context.power(Decimal(str(growth)), days))
    except ArithmeticError:
        # Beyond what a Decimal holds (millennia of doubling): only a ceiling gives a meaningful answer. Without
        # one it is a setting that cannot be used (ValueError, as for the others), not a crash of the whole pass.
        if ceiling is None:
            raise ValueError(f"the cap grows beyond any number ({start} × {growth} ** {days}): set a ceiling") from None
        return ceiling
    # Compared as a Decimal first: turning a number of a million digits into an int takes seconds.
    if ceiling is not None and value >= ceiling:
        return ceiling
    return int(value)


@dataclass
class Allowance:
    limit: int  # today's cap
    left: int
    tomorrow_limit: int
    window_start: datetime  # tomorrow's sending hours, in the clinic's zone
    window_end: datetime
    waiting: int = 0

    @classmethod
    def for_day(cls, *, start: int, growth: float, since: date | None, ceiling: int | None, used: int,
                now: datetime, tz: str, quiet: QuietHours | None) -> Allowance:
        zone = ZoneInfo(tz)
        today = now.astimezone(zone).date()

        def cap(day: date) -> int:
            # No start date: every day is the first, tomorrow's cap included. Held work must be spaced for the
            # cap tomorrow will really have, or it crowds into the first slots and the rest slips a day.
            return daily_cap(start=start, growth=growth, since=since or day, today=day, ceiling=ceiling)

        hours = quiet or _DEFAULT_WINDOW
        tomorrow = today + timedelta(days=1)
        opens = datetime.combine(tomorrow, hours.end, zone)
        closes = datetime.combine(tomorrow, hours.start, zone)
        if closes <= opens:  # a quiet window inside the day (e.g. 13:00-15:00): use the twelve hours after it
            closes = opens + timedelta(hours=12)
        return cls(cap(today), max(cap(today) - used, 0), max(cap(tomorrow), 1), opens, closes)

    def take(self) -> bool:
        """Use one of today's messages, if any is left."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def next_slot(self) -> datetime:
        """When the next message over the cap goes: evenly spaced over tomorrow's hours, then the day after."""
        days, position = divmod(self.waiting, self.tomorrow_limit)
        self.waiting += 1
        spacing = (self.window_end - self.window_start) / self.tomorrow_limit
        return self.window_start + timedelta(days=days) + spacing * position
