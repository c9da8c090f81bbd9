"""Whether the workers are doing their job, as monitoring asks it (`/healthz/worker`), in plain words (pure).

The web answers webhooks without any worker (they wait in the ledger), so a load balancer must not take it out
of rotation for a missing worker: that is `/healthz`. Monitoring wants to hear when nothing sends, or when
sending falls behind: each reason here is one line a person on call reads without the code.
"""

from __future__ import annotations

import math


def worker_troubles(*, last_beat_age: float | None, queue_lag: float, stale_after: float,
                    max_queue_lag: float) -> list[str]:
    """What is wrong, one sentence each; empty when a worker beat within `stale_after` seconds and the oldest due
    job waits no more than `max_queue_lag` seconds.

    `last_beat_age`: seconds since the freshest worker's beat (None: no worker ever beat); `queue_lag`: seconds
    the oldest scheduled job is past its due time (0 when none is).
    """
    troubles = []
    if last_beat_age is None:
        troubles.append("no worker ever started")
    elif last_beat_age > stale_after:
        troubles.append(f"no worker has beaten for {_seconds(last_beat_age)} (stale after {_seconds(stale_after)})")
    if queue_lag > max_queue_lag:
        troubles.append(f"queue lag {_seconds(queue_lag)} over {_seconds(max_queue_lag)}")
    return troubles


def _seconds(value: float) -> str:
    """Whole seconds, rounded up: a value just past its threshold never reads as equal to it."""
    return f"{math.ceil(value)} s"
