"""Early receipts: a status report that names no attempt yet is kept, applied when an attempt takes its id, and
given up (the callback `ignored`) only after a window.

Why: the worker writes a send's provider id when its group of answers is recorded, and a fast provider's
callback often comes first. Dropping it would lose the receipt for good where the provider only calls back
(Wahelp): the step would time out and the next channel would send a second message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from connector.core.model import InboundOutcome

# Long enough for any group of answers to land (they are recorded within seconds, or after a lease of minutes
# when a worker died), short enough that the status page does not fill up with strangers' ids.
HOLD_FOR = timedelta(hours=1)


def callback_outcome(*, matched: int, held: int, linked: int) -> InboundOutcome:
    """What became of a callback: applied when anything in it named a message or a patient we know; held while
    its other reports wait for their attempts; ignored when there was nothing for us in it."""
    if matched or linked:
        return InboundOutcome.APPLIED
    return InboundOutcome.HELD if held else InboundOutcome.IGNORED


def held_note(held: int) -> str:
    """The callback's explanation while reports of it are kept."""
    return f"{held} report(s) for message ids not known yet: kept for {_hours(HOLD_FOR)}"


def give_up_before(now: datetime, window: timedelta = HOLD_FOR) -> datetime:
    """Kept reports received at or before this have waited out their window: no attempt took their ids, so
    their callbacks are ignored."""
    return now - window


def outcome_after_release(current: InboundOutcome, *, applied: bool) -> InboundOutcome:
    """A callback's outcome once a kept report of it is settled: a held one becomes applied (its attempt took
    the id) or ignored (nobody did); any other outcome already says what the callback did and stays."""
    if current != InboundOutcome.HELD:
        return current
    return InboundOutcome.APPLIED if applied else InboundOutcome.IGNORED


def release_note(count: int, *, applied: bool) -> str:
    """The callback's explanation once its kept reports are settled."""
    if applied:
        return f"{count} report(s) applied when their attempt got its id"
    return f"{count} report(s) for message ids no attempt took within {_hours(HOLD_FOR)}: ignored"


def _hours(window: timedelta) -> str:
    return f"{window.total_seconds() / 3600:g} h"
