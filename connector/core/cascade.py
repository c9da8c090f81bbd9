"""The channel cascade as a pure state machine: given where a job stands and what a provider said, what next.

A tenant's cascade is an ordered list of steps (one channel through one provider, with a timeout). A job walks
it: the worker picks the first usable step (`choose_step`), sends, and hands the provider's immediate answer to
`after_send`; callbacks and polls go through `merge_status` (per attempt) and `after_report` (per job); a step
whose deadline passed goes through `on_timeout`. Each returns a `Decision` (the job's next status, and the step
to try or the deadline to wait for) with a note for the audit trail, or None when the job does not change.

What it promises (docs/architecture.md, "Delivery semantics"; providers.md §6):

- an attempt's status only moves forward: queued < sent < delivered < read; failures are final, except our own
  sent-timeout `expired`, which a late delivered/read still upgrades;
- a step is never sent twice: every fall back goes to a later step, and a report never restarts anything;
- a late receipt from an earlier step concludes the job (the patient has it) and withdraws a pending fall back;
- sent but never confirmed is not failed: when the last step times out still pending, the job waits on while the
  provider may still report (the step's status window), then ends `unconfirmed`; a receipt upgrades it at any time.

And what the state machine checks before it sends at all: whether a due job must be withdrawn (`withdrawal`),
and whether a visit job is too late to send (`must_expire`). The retry backoff lives in `core.retry`, the daily
cap of a warming-up number in `core.warmup`.

Pure: stdlib only, no I/O, no clock reads (`now` is a parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.core.model import VISIT_KINDS, AttemptStatus, BookingState, JobKind, JobStatus

__all__ = [
    "Decision",
    "Step",
    "after_report",
    "after_send",
    "choose_step",
    "merge_status",
    "must_expire",
    "on_timeout",
    "withdrawal",
]

_UNTIL = ("delivered", "read")
ON_UNKNOWN = ("next", "wait", "resend")  # a step's choices after a call whose outcome is unknown (core.unknown)

# Success ranks: a report only ever moves an attempt up this ladder.
_RANK = {
    AttemptStatus.QUEUED: 0,
    AttemptStatus.SENT: 1,
    AttemptStatus.DELIVERED: 2,
    AttemptStatus.READ: 3,
}
_FAILURES = frozenset(
    {AttemptStatus.FAILED, AttemptStatus.NOT_REGISTERED, AttemptStatus.REJECTED, AttemptStatus.EXPIRED,
     AttemptStatus.WITHDRAWN}
)
_PENDING = frozenset({AttemptStatus.QUEUED, AttemptStatus.SENT})
_RECEIPTS = frozenset({AttemptStatus.DELIVERED, AttemptStatus.READ})

# Jobs a report can no longer change: read is the best there is; the others were never (or no longer) sent.
# (FAILED and UNCONFIRMED are not here: a receipt tells the truth about them.)
_SETTLED_JOBS = frozenset({JobStatus.READ, JobStatus.CANCELLED, JobStatus.EXPIRED, JobStatus.SKIPPED})

@dataclass(frozen=True)
class Step:
    channel: str  # max, telegram, whatsapp, sms
    provider: str
    timeout: timedelta
    until: str = "delivered"  # or "read": the step is done only when the patient has read it
    sent_is_final: bool = False  # resolved by the caller: channels without receipts count a send as final
    # How long after a send the provider may still report on it (resolved by the caller from the provider):
    # after the last step's deadline the job waits this long from the send before it is called unconfirmed.
    status_window: timedelta = timedelta(0)
    # What a call whose answer was lost leaves behind (core.unknown): "next", "wait" or "resend"; None: "next",
    # or "wait" on the last step.
    on_unknown: str | None = None

    def __post_init__(self) -> None:
        # The tenants file validates these too; a Step built by hand must not silently mean something else.
        if self.until not in _UNTIL:
            raise ValueError(f"step until must be one of {_UNTIL}, not {self.until!r}")
        if self.on_unknown not in (None, *ON_UNKNOWN):
            raise ValueError(f"step on_unknown must be one of {ON_UNKNOWN}, not {self.on_unknown!r}")
        if self.timeout < timedelta(0):
            raise ValueError(f"step timeout must not be negative: {self.timeout}")
        if self.status_window < timedelta(0):
            raise ValueError(f"step status window must not be negative: {self.status_window}")


@dataclass(frozen=True)
class Decision:
    job_status: JobStatus  # SCHEDULED (try next_step now), AWAITING_DELIVERY, DELIVERED, READ, FAILED, UNCONFIRMED
    next_step: int | None = None  # with SCHEDULED: index of the step to try next
    deadline: datetime | None = None  # with AWAITING_DELIVERY: when the step times out
    note: str = ""  # English, for the audit trail: why
    # With SCHEDULED, once the quiet hours have been applied (quiet_hours.schedule_fallback): when the next step
    # goes (None: now), and why it waits that long, for the audit trail (None: it does not wait).
    due_at: datetime | None = None
    waiting: str | None = None


# --- one attempt -------------------------------------------------------------------------------------------


def merge_status(current: AttemptStatus, incoming: AttemptStatus) -> AttemptStatus:
    """The attempt's status after a report: never backwards, failures final (bar our own sent-timeout)."""
    if current in _FAILURES:
        # Our local `expired` only means "we stopped waiting"; a receipt arriving after it is the truth and is
        # recorded on that attempt. A provider's failure is its final word, and the first failure sticks.
        if current is AttemptStatus.EXPIRED and incoming in _RECEIPTS:
            return incoming
        return current
    if incoming in _FAILURES:
        # A failure after a receipt is logged by the caller but cannot take back what the patient got.
        return incoming if current in _PENDING else current
    return incoming if _RANK[incoming] > _RANK[current] else current


# --- choosing a step ---------------------------------------------------------------------------------------


def choose_step(
    steps: Sequence[Step],
    start: int,
    *,
    opted_out: frozenset[str],
    not_registered: frozenset[str],
    unaddressable: frozenset[int],
) -> tuple[int | None, list[tuple[int, str]]]:
    """The first usable step from `start` on, and the steps skipped on the way as (index, reason).

    `opted_out` and `not_registered` are channel names known for the patient; `unaddressable` holds the indexes
    of steps whose provider has no address for them (a bot the patient never opened). (None, skipped) when no
    step is left.
    """
    if start < 0:
        raise ValueError(f"start must not be negative: {start}")
    skipped: list[tuple[int, str]] = []
    for index in range(start, len(steps)):
        step = steps[index]
        # The patient's own wish comes first in the audit trail: it is the reason that matters to the clinic.
        if step.channel in opted_out:
            skipped.append((index, f"patient opted out of {step.channel}"))
        elif step.channel in not_registered:
            skipped.append((index, f"patient is not on {step.channel} (remembered)"))
        elif index in unaddressable:
            skipped.append((index, f"provider {step.provider} has no address for the patient"))
        else:
            return index, skipped
    return None, skipped


# --- the job after a send, a report, a timeout -------------------------------------------------------------


def after_send(steps: Sequence[Step], index: int, status: AttemptStatus, now: datetime) -> Decision:
    """The job after the provider's immediate answer to the send on step `index`."""
    step = _step(steps, index)
    if status in _PENDING:
        if step.sent_is_final and status is AttemptStatus.SENT:
            # No receipt will ever come from this channel: waiting would only end in a pointless fall back.
            return Decision(
                JobStatus.DELIVERED,
                note=f"{_label(step)}: sent; the channel has no receipts, so a send counts as final",
            )
        return _await(step, now, f"{_label(step)}: {status}")
    if status is AttemptStatus.DELIVERED:
        if step.until == "read":
            return _await(step, now, f"{_label(step)}: delivered; the step waits until read")
        return Decision(JobStatus.DELIVERED, note=f"{_label(step)}: delivered")
    if status is AttemptStatus.READ:
        return Decision(JobStatus.READ, note=f"{_label(step)}: read")
    return _fall_back(steps, index, f"{_label(step)}: {status}")


def after_report(
    steps: Sequence[Step],
    *,
    job_status: JobStatus,
    current_index: int,
    attempt_index: int,
    status: AttemptStatus,
    now: datetime,
) -> Decision | None:
    """The job after a callback or poll for the attempt made on step `attempt_index`; None when unchanged.

    `status` is the attempt's status after `merge_status`, so a failure reported after a receipt arrives here
    as the receipt. The job is at `current_index` with `job_status`. A report never restarts the cascade.
    """
    if job_status in _SETTLED_JOBS:
        return None
    if attempt_index < 0 or attempt_index > current_index or attempt_index >= len(steps):
        # A report for a step not tried yet (or not in the cascade any more, after a config change) cannot be
        # ours to act on; the attempt row still records it.
        return None
    step = steps[attempt_index]
    late = attempt_index < current_index
    where = f"late receipt from step {attempt_index + 1} ({step.channel})" if late else _label(step)

    if job_status is JobStatus.DELIVERED:
        # Delivered is already a success; only a read can improve it, whichever attempt it comes from.
        return Decision(JobStatus.READ, note=f"{where}: read") if status is AttemptStatus.READ else None
    if status in (AttemptStatus.READ, AttemptStatus.DELIVERED):
        return _after_receipt(step, job_status=job_status, status=status, where=where)
    if status in _FAILURES and not late and job_status is JobStatus.AWAITING_DELIVERY:
        return _fall_back(steps, attempt_index, f"{where}: {status}")
    # queued/sent change nothing at job level; a failure of an earlier step was already acted on (we fell back
    # from it); a failure while the job is scheduled, sending or failed is someone else's decision to make; an
    # unconfirmed job stays so (its earlier steps' messages were never confirmed either way).
    return None


def _after_receipt(step: Step, *, job_status: JobStatus, status: AttemptStatus, where: str) -> Decision | None:
    """The job after a read or delivered receipt, while it is not delivered yet."""
    if status is AttemptStatus.READ:
        return Decision(JobStatus.READ, note=_concluded(where, job_status, "read"))
    if step.until == "read" and job_status not in (JobStatus.FAILED, JobStatus.UNCONFIRMED):
        # The clinic asked for a read on this step: delivered alone does not stop the cascade (it already
        # sent us on after "not read in time", or keeps waiting for the read). A failed or unconfirmed
        # job, though, is told the truth: the patient did get it.
        return None
    return Decision(JobStatus.DELIVERED, note=_concluded(where, job_status, "delivered"))


def on_timeout(steps: Sequence[Step], index: int, attempt_status: AttemptStatus, now: datetime, *,
               sent_at: datetime | None = None, unknown: bool = False) -> Decision:
    """The job when the deadline of step `index` passed while awaiting delivery: the next step, never this one.

    `attempt_status` is the status of the attempt on that step as recorded, `sent_at` when it was sent (None:
    the step's deadline is `now`). The last step, still pending, has no next one: the job waits for a receipt
    until the step's status window has passed since the send (a new deadline), then ends unconfirmed. So does a
    step set `on_unknown: wait` whose call's outcome is `unknown`: it chose waiting over another channel.
    """
    step = _step(steps, index)
    if attempt_status in _PENDING:
        why = f"{_label(step)}: sent_timeout, still {attempt_status} after {step.timeout}"
        if index + 1 < len(steps) and not (unknown and step.on_unknown == "wait"):
            return _fall_back(steps, index, why)
        sent = sent_at if sent_at is not None else now - step.timeout
        window_end = sent + step.status_window
        if now < window_end:
            return Decision(JobStatus.AWAITING_DELIVERY, deadline=window_end,
                            note=f"{why}; no channel left; waiting for a receipt until {window_end.isoformat()}")
        if step.status_window > step.timeout:
            why = (f"{_label(step)}: still {attempt_status}, no receipt within the provider's status window "
                   f"({step.status_window})")
        return Decision(JobStatus.UNCONFIRMED, note=f"{why}; no channel left, never confirmed")
    if attempt_status is AttemptStatus.DELIVERED and step.until == "read":
        return _fall_back(steps, index, f"{_label(step)}: delivered but not read in time ({step.timeout})")
    # The job should have left AWAITING_DELIVERY already. A receipt on record is the truth: concluding beats
    # sending the patient the same text on another channel.
    if attempt_status is AttemptStatus.READ:
        return Decision(JobStatus.READ, note=f"{_label(step)}: read (recorded before the deadline)")
    if attempt_status is AttemptStatus.DELIVERED:
        return Decision(JobStatus.DELIVERED, note=f"{_label(step)}: delivered (recorded before the deadline)")
    # A failure that was not acted on: fall back rather than leave the job waiting for ever.
    return _fall_back(steps, index, f"{_label(step)}: {attempt_status} at the deadline")


# --- before a send -----------------------------------------------------------------------------------------


def must_expire(kind: JobKind, visit_start: datetime | None, now: datetime) -> bool:
    """True when a job about a visit would go out after the visit has started: it must not be sent."""
    return kind in VISIT_KINDS and visit_start is not None and visit_start <= now


def withdrawal(kind: JobKind, booking_state: BookingState | None, visit_start: datetime | None,
               now: datetime) -> tuple[JobStatus, str] | None:
    """Why a due job must not be sent now (its final status and the reason), or None when it may go.

    A booking no longer active withdraws everything but its cancellation notice; nothing about a visit goes
    out once the visit has started.
    """
    if booking_state is not None and booking_state is not BookingState.ACTIVE and kind is not JobKind.CANCELLATION:
        return JobStatus.CANCELLED, f"booking is {booking_state}"
    if must_expire(kind, visit_start, now):
        return JobStatus.EXPIRED, "the visit has started; not sent late"
    return None


# --- helpers -----------------------------------------------------------------------------------------------


def _step(steps: Sequence[Step], index: int) -> Step:
    # Negative indexes would silently pick a step from the end: a bug, not a fall back.
    if not 0 <= index < len(steps):
        raise IndexError(f"step {index} is not in a cascade of {len(steps)}")
    return steps[index]


def _label(step: Step) -> str:
    return f"{step.channel} via {step.provider}"


def _await(step: Step, now: datetime, why: str) -> Decision:
    deadline = now + step.timeout
    return Decision(JobStatus.AWAITING_DELIVERY, deadline=deadline, note=f"{why}; waiting until {deadline.isoformat()}")


def _fall_back(steps: Sequence[Step], index: int, why: str) -> Decision:
    # Always forward: the step that just failed (or timed out) is never tried again for this job. The caller
    # runs choose_step from next_step, which skips what is known to be unusable.
    following = index + 1
    if following < len(steps):
        return Decision(
            JobStatus.SCHEDULED,
            next_step=following,
            note=f"{why}; falling back to step {following + 1} ({steps[following].channel})",  # counted from 1
        )
    return Decision(JobStatus.FAILED, note=f"{why}; no channel left")


def _concluded(where: str, job_status: JobStatus, outcome: str) -> str:
    # Say what the receipt overrode, so the audit trail explains why a pending send was withdrawn.
    overridden = {
        JobStatus.SCHEDULED: "; the pending fall back is withdrawn",
        JobStatus.SENDING: "; the job is done, whatever the send in flight returns",
        JobStatus.FAILED: "; the job had failed, the receipt wins",
        JobStatus.UNCONFIRMED: "; the job was unconfirmed, the receipt confirms it",
    }
    return f"{where}: {outcome}{overridden.get(job_status, '')}"
