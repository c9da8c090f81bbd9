"""Requests spaced out to a rate an API allows (YCLIENTS 200/min, amoCRM 7/s, Bitrix24 2/s).

The limits are per account or per IP, so a client keeps one `Throttle` per account for the process (a module-level
dict keyed by account) and every call waits its slot; a server's "too many" holds every caller of that throttle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Throttle"]


class Throttle:
    """Requests at least `interval` seconds apart; thread-safe; the caller sleeps outside the lock."""

    def __init__(self, interval: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.interval = interval
        self._clock, self._sleep = clock, sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)

    def hold(self, seconds: float) -> None:
        """No request before `seconds` from now (a server's Retry-After), for every client sharing this throttle."""
        with self._lock:
            until = self._clock() + seconds
            self._next = until if self._next is None else max(self._next, until)
