"""When to ask a provider about a message it has not reported on: the polling cadence, as a pure rule.

A step's timeout is how long the clinic waits for a receipt before trying the next channel, so the questions
follow it: at 1/4, 1/2 and 3/4 of the timeout (a receipt found there saves waiting for the rest of it), then
once more at the deadline itself — asked by the timeout pass, before it gives up on the step (connector.usecases.polls).
Past the marks the message is still worth asking about while the provider may report (its status window): a
late receipt is the patient's proof, and upgrades the job. There the cadence slows as the message ages (half its
age, between one minute and one hour), so a three-day window costs about eighty questions, not thousands.

Pure: stdlib only, no clock reads (`now` is a parameter).
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["MIN_GAP", "next_poll", "poll_due"]

MARKS = 4  # the timeout is cut in four: questions at 1/4, 2/4, 3/4; the deadline (4/4) is the timeout pass's
# A provider needs a moment to learn anything, and one message is never asked about twice within this.
MIN_GAP = timedelta(seconds=5)
LATE_MIN = timedelta(minutes=1)  # past the marks: never more often than this ...
LATE_MAX = timedelta(hours=1)  # ... and never less often, so a late receipt shows within the hour


def next_poll(sent_at: datetime, timeout: timedelta, window: timedelta,
              polled_at: datetime | None = None) -> datetime | None:
    """When to ask next about a message sent at `sent_at` on a step of `timeout`, last asked at `polled_at`
    (None: never). None when the next question would fall outside the provider's status `window` (counted from
    the send): the provider has forgotten it, or will say nothing new."""
    last = polled_at if polled_at is not None and polled_at > sent_at else sent_at
    earliest = last + MIN_GAP
    deadline = sent_at + timeout
    end = sent_at + window
    for k in range(1, MARKS):
        mark = sent_at + timeout * k / MARKS
        if mark > last:
            when = max(mark, earliest)
            if when < deadline:
                return when if when <= end else None
            break  # the marks left are too close to the deadline, which is asked anyway
    gap = min(max((last - sent_at) / 2, LATE_MIN), LATE_MAX)
    when = last + gap
    return when if when <= end else None


def poll_due(sent_at: datetime, timeout: timedelta, window: timedelta, polled_at: datetime | None,
             now: datetime) -> bool:
    """Whether the message is due for a question at `now` (see `next_poll`)."""
    when = next_poll(sent_at, timeout, window, polled_at)
    return when is not None and when <= now
