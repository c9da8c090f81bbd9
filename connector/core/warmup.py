"""A warming-up sender number's allowance: today's cap, and where the work over it waits (pure).

A new number used for mass sending gets blocked, so its daily cap starts low and rises day by day
(`cascade.daily_cap`). Work over today's cap is never dropped: it waits for the next day's sending hours
(the end of quiet hours to their start), spaced evenly across them rather than sent in one burst; what does
not fit tomorrow's cap goes on to the day after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from connector.core.cascade import daily_cap
from connector.core.model import QuietHours

_DEFAULT_WINDOW = QuietHours(time(21, 0), time(9, 0))  # sending hours 09:00-21:00 when quiet hours are off


@dataclass(frozen=True)
class Warmup:
    """A provider account's `warmup` settings, typed and checked when the tenants file is loaded."""

    start: int = 50
    growth: float = 1.5
    since: date | None = None  # the warm-up's first day; none: every day is the first (the cap stays `start`)
    ceiling: int | None = None


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
