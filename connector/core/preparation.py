"""What to do with one due job: send it on a step, finish it, or defer it (pure: `now` is a parameter).

The worker loads the facts in batches (the job, its booking, whom the patient can be reached through, this
pass's warm-up caps), asks `prepare`, then renders and writes what it says. The order of the questions is the
order of the audit trail: a gone tenant, a withdrawn job, whom it goes to now, a send a dead worker lost, the
steps the patient cannot be reached on, the warm-up caps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from connector.core.cascade import Step, choose_step, must_expire, withdrawal
from connector.core.model import BookingState, JobKind, JobStatus
from connector.core.recipients import follow_booking
from connector.core.unknown import policy_of
from connector.core.warmup import Allowance

# An account whose warm-up settings broke at run time: its jobs wait this long, never past an unknown cap.
UNUSABLE_RETRY = timedelta(minutes=30)


@dataclass(frozen=True)
class DueJob:
    kind: JobKind
    has_booking: bool  # results and recalls have none: they name their patient themselves
    booking_state: BookingState | None
    visit_start: datetime | None
    planned_patient: int | None  # whom the job was planned for
    booking_patient: int | None  # the booking's patient as it stands now
    start_step: int  # where the cascade stands
    lost_steps: tuple[int, ...] = ()  # steps of sends a worker stopped in the middle of (outcome unknown)
    unknown_before: tuple[int, ...] = ()  # steps whose calls already ended unknown earlier (no second resend)


@dataclass(frozen=True)
class Reach:
    """What is known of the patient, per channel and per step, before choosing one."""

    opted_out: frozenset[str] = frozenset()
    not_registered: frozenset[str] = frozenset()  # remembered as absent, still within the memory
    unaddressable: frozenset[int] = frozenset()  # step indexes whose provider has no address for them


@dataclass(frozen=True)
class Unusable:
    """A warming-up account whose settings cannot be used: why (its jobs wait rather than pass a cap unknown)."""

    reason: str


@dataclass(frozen=True)
class Broken:
    """The patient's reach could not be read: an account of the tenant cannot be used (its adapter cannot be
    built). Why, for the job's trail: that job fails, the others go on."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    patient: int | None  # whom the job goes to now
    recipient_change: str | None = None  # the audit line when that is not whom it held
    lost: bool = False  # the lost sends were given up: they are failed, and the cascade went past them
    skipped: tuple[tuple[int, str], ...] = ()  # steps passed over, as (index, reason), in order


@dataclass(frozen=True)
class SendOn(_Outcome):
    step: int


@dataclass(frozen=True)
class Finish(_Outcome):
    status: JobStatus
    reason: str


@dataclass(frozen=True)
class Defer(_Outcome):
    step: int
    until: datetime
    reason: str


@dataclass(frozen=True)
class Await(_Outcome):
    """A send a dead worker lost, on a step whose on_unknown is `wait`: no other message, the job awaits
    receipts for it (connector.core.unknown.after_unknown says until when, and what then)."""

    step: int


Outcome = SendOn | Finish | Defer | Await


def prepare(job: DueJob, steps: Sequence[Step] | None, reach: Reach | Broken | None,
            caps: Mapping[str, Allowance | Unusable], now: datetime) -> Outcome:
    """`steps` None: the tenant is gone from the configuration; `reach` None: no patient with a phone to
    reach; `caps`: this pass's warm-up counters by provider, taking one is the only effect."""
    if steps is None:
        return Finish(JobStatus.FAILED, "the tenant is no longer configured", patient=job.planned_patient)
    verdict = withdrawal(job.kind, job.booking_state, job.visit_start, now)
    if verdict is not None:
        return Finish(*verdict, patient=job.planned_patient)
    patient, change = follow_booking(job.planned_patient, job.booking_patient, has_booking=job.has_booking)
    if reach is None:
        return Finish(JobStatus.SKIPPED, "no phone number for the patient", patient=patient,
                      recipient_change=change)
    if isinstance(reach, Broken):
        return Finish(JobStatus.FAILED, f"could not be prepared: {reach.reason}", patient=patient,
                      recipient_change=change)
    if job.lost_steps and policy_of(steps, max(job.lost_steps)) == "wait":
        return Await(max(job.lost_steps), patient=patient, recipient_change=change, lost=True)
    found = _choose(job, steps, reach, caps, _start_after_lost(job, steps), now)
    return _with(found, patient=patient, recipient_change=change, lost=bool(job.lost_steps))


def _start_after_lost(job: DueJob, steps: Sequence[Step]) -> int:
    """Where the cascade goes on after the sends a dead worker lost. We never learnt how they ended: the same
    text is not risked twice on that channel, unless the step says `resend` and it has not been resent yet."""
    if not job.lost_steps:
        return job.start_step
    last = max(job.lost_steps)
    if policy_of(steps, last) == "resend" and job.lost_steps.count(last) == 1 and last not in job.unknown_before:
        return max(job.start_step, last)
    return max(job.start_step, last + 1)


def _choose(job: DueJob, steps: Sequence[Step], reach: Reach, caps: Mapping[str, Allowance | Unusable],
            start: int, now: datetime) -> Outcome:
    """The first step the patient can be reached on whose provider may still send today."""
    skipped: list[tuple[int, str]] = []
    while True:
        index, passed = choose_step(steps, start, opted_out=reach.opted_out, not_registered=reach.not_registered,
                                    unaddressable=reach.unaddressable)
        skipped += passed
        if index is None:
            return Finish(JobStatus.FAILED, "no channel left to try", patient=None, skipped=tuple(skipped))
        provider = steps[index].provider
        cap = caps.get(provider)
        if isinstance(cap, Unusable):
            until, why = now + UNUSABLE_RETRY, f"the warm-up settings of {provider} cannot be used: {cap.reason}"
            skip = why
        elif cap is None or cap.take():
            return SendOn(index, patient=None, skipped=tuple(skipped))
        else:
            until, why = cap.next_slot(), f"{provider} has sent its warm-up cap of {cap.limit} today"
            skip = f"warm-up cap of {provider} reached"
        if not job.has_booking or not must_expire(job.kind, job.visit_start, until):
            return Defer(index, until, f"{why}; waits until {until.isoformat()}", patient=None,
                         skipped=tuple(skipped))
        # Waiting for that would be too late for this visit: the next channel carries it.
        skipped.append((index, f"{skip} and the visit comes first"))
        start = index + 1


def _with(outcome: Outcome, *, patient: int | None, recipient_change: str | None, lost: bool) -> Outcome:
    return replace(outcome, patient=patient, recipient_change=recipient_change, lost=lost)
