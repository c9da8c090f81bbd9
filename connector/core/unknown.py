"""A call whose answer was lost: may the same step call again, and what the job does meanwhile (pure).

A call has three outcomes, not two. *Sent* (the provider answered) and *not sent* (refused, a connect timeout,
a 5xx or 429 without acceptance: retried on the same step, core.retry) are plain. *Unknown* (a read timeout, a
reset after the request went out) may have reached the patient: calling again blindly is how a patient gets
the same SMS twice. So:

- where the provider can be asked by an id we chose (SMSC), the worker asks first: "found" is the answer the
  call lost (recorded as if the call had returned it); "not found" means not sent, and one more call on the
  same step is safe;
- otherwise the step's `on_unknown` decides: `next` (every step but the last, by default) keeps the attempt as
  sent-unknown and treats it as a step that timed out: at its deadline the next step goes, unless a receipt
  concludes first; `wait` (the last step, by default) awaits receipts until the deadline and then ends
  `unconfirmed`, never another channel; `resend` (opt-in: a clinic that prefers a second SMS to silence)
  makes exactly one more call on the same step, and if that one is lost too, the step's position decides.

Pure: stdlib only, no I/O, no clock reads (`now` is a parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from connector.core.cascade import Decision, Step
from connector.core.model import JobStatus

__all__ = ["UNKNOWN_MARK", "Lookup", "after_unknown", "call_again", "is_unknown", "policy_of"]

# The attempt's error starts with this when its call's outcome is unknown: how the deadline pass tells a
# sent-unknown attempt from a plainly sent one (no column of its own).
UNKNOWN_MARK = "outcome unknown"


class Lookup(StrEnum):
    """What asking the provider by our own message id told us."""

    FOUND = "found"  # it has the message: the call went through (its answer is recorded instead)
    NOT_FOUND = "not found"  # it has no such message: the call did not go through
    NO_ANSWER = "no answer"  # asked, and it could not say (an error, a timeout)
    NOT_ASKED = "not asked"  # the provider cannot be asked by our id


def policy_of(steps: Sequence[Step], index: int) -> str:
    """The step's `on_unknown`, its default resolved: `wait` on the last step, `next` on every other."""
    step = steps[index]
    if step.on_unknown is not None:
        return step.on_unknown
    return "wait" if index == len(steps) - 1 else "next"


def call_again(policy: str | None, lookup: Lookup, *, lost: int) -> bool:
    """After the `lost`-th call on a step whose answer was lost, and what asking said: may one more call go?
    `policy` is the step's on_unknown as written (None: the default, next or wait, neither of which calls).

    Never more than one more call per step, whatever the reason: two lost answers are two messages that may
    both have reached the patient."""
    if lookup is Lookup.FOUND or lost > 1:
        return False
    if lookup is Lookup.NOT_FOUND:
        return True  # the provider says it never took it: a retry is a first message, not a second
    return policy == "resend"


def after_unknown(steps: Sequence[Step], index: int, why: str, now: datetime, *, resent: bool) -> Decision:
    """The job after a step's call (or its one resend, `resent`) ended with the outcome unknown: it awaits
    receipts until the step's deadline; the note says which policy holds and what happens at the deadline."""
    step = steps[index]
    deadline = now + step.timeout
    policy = policy_of(steps, index)
    head = f"{step.channel} via {step.provider}: {UNKNOWN_MARK} ({why}); on_unknown={policy}"
    if policy == "resend":
        # Its one more call is spent: what happens now is what the step's position would have chosen.
        fallback = "wait" if index == len(steps) - 1 else "next"
        head += f": {'resent once, still unknown' if resent else 'not resent'}; as on_unknown={fallback}"
        policy = fallback
    if policy == "wait":
        then = "then unconfirmed, no other channel"
    elif index + 1 < len(steps):
        then = f"kept as sent-unknown, then step {index + 2} ({steps[index + 1].channel}) as a timed-out step"
    else:
        then = "kept as sent-unknown; no channel left"
    return Decision(JobStatus.AWAITING_DELIVERY, deadline=deadline,
                    note=f"{head}: awaiting receipts until {deadline.isoformat()}, {then}")


def is_unknown(error: str | None) -> bool:
    """Whether an attempt's recorded error says its call's outcome is unknown (see UNKNOWN_MARK)."""
    return error is not None and error.startswith(UNKNOWN_MARK)
