"""How many wrong passwords a sign-in may follow: a sliding window per login and per address.

A pure rule: given when the recent failures of each key happened, say whether one more try is allowed now, and
if not, in how many seconds the oldest failure in the window leaves it (the answer's `Retry-After`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    failures: int  # this many failures within `window` …
    window: timedelta  # … and the next try waits until the oldest of them is older than this


def retry_after(failures: Sequence[datetime], limit: Limit, now: datetime) -> int | None:
    """None while fewer than `limit.failures` failed in the window; else the whole seconds to wait (at least 1)."""
    recent = sorted(at for at in failures if now - at < limit.window)
    if len(recent) < limit.failures:
        return None
    # the try is allowed once only limit.failures - 1 remain in the window
    frees_at = recent[len(recent) - limit.failures] + limit.window
    return max(1, math.ceil((frees_at - now).total_seconds()))
