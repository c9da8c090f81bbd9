"""How long to wait before trying the same step again after a transient error (pure).

A timeout, a refused connection, a 5xx or a 429 says nothing about the patient: the same step is tried again
after a growing pause, and a server that names its own pause (Retry-After) is believed within reason.
"""

from __future__ import annotations

import math

# 2**64 seconds is far beyond any cap: past it the exponent is not worth computing (and would overflow a float).
_MAX_DOUBLINGS = 64
# A server's Retry-After is honoured over our backoff, but not beyond this many caps: a misconfigured server
# asking for a day must not park a reminder past its visit.
_RETRY_AFTER_CAPS = 5

MAX_TRIES = 4  # per step, for transient errors (timeouts, 5xx, 429)
RETRY_BUDGET = 45.0  # seconds of retrying per step, well inside a claimed job's lease (store.queue.JOB_LEASE)


def retry_delay(tries: int, retry_after: float | None, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Seconds to wait before try `tries + 1` of the same step after a transient error (tries counts from 1).

    Exponential: base, 2*base, 4*base…, at most `cap`. A server's Retry-After wins, within `cap` * 5.
    """
    if retry_after is not None and not math.isnan(retry_after):
        return min(max(retry_after, 0.0), cap * _RETRY_AFTER_CAPS)
    # tries below 1 would mean "no try yet"; the first retry is the gentlest one.
    doublings = min(max(tries, 1) - 1, _MAX_DOUBLINGS)
    return min(base * 2.0**doublings, cap)


def gives_up(tries: int, *, elapsed: float, delay: float, step_timeout: float) -> bool:
    """Whether the step stops retrying: after MAX_TRIES, or when the next try would come after the retry budget
    (RETRY_BUDGET seconds, never longer than the step's own timeout) has run out."""
    return tries >= MAX_TRIES or elapsed + delay > min(RETRY_BUDGET, step_timeout)
