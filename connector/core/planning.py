"""Planning: which notification jobs a booking wants now, as a diff against the jobs it already has.

`plan_jobs` is called whenever a booking is written. It works out the wanted jobs (confirmation, reminders,
reschedule and cancellation notices) under their stable keys, fits each into the quiet hours, and compares
them with the existing jobs: keys already held stay as they are, new keys are added, and pending jobs that
the booking no longer wants are cancelled with a reason. Pure and deterministic: `now` is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from connector.core.model import (
    PENDING_STATUSES,
    VISIT_KINDS,
    BookingState,
    Cancellation,
    ExistingJob,
    JobKind,
    JobStatus,
    PlanDiff,
    PlannedJob,
    Policy,
    Visit,
)
from connector.core.quiet_hours import fit_quiet_hours

_ENDED_REASONS = {
    BookingState.CANCELLED: "booking cancelled",
    BookingState.NO_SHOW: "patient did not come",
    BookingState.ATTENDED: "patient attended",
}

CONFIRMATION_KEY = "confirmation"


def utc_key_time(moment: datetime) -> str:
    """An instant as it appears in a key: UTC, to the second, e.g. 2026-12-03T07:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def offset_key(offset: timedelta) -> str:
    """An offset as it appears in a key, ISO 8601 style: P1D, PT2H, PT30M, P1DT12H.

    Spelled out here rather than borrowed from the config parser because keys are stored in the ledger:
    their spelling must never change, whatever the tenants file learns to accept.
    """
    seconds = int(offset.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not days and not clock:
        return "PT0S"
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")


def reminder_key(offset: timedelta, start: datetime) -> str:
    return f"reminder:{offset_key(offset)}@{utc_key_time(start)}"


def reschedule_key(start: datetime) -> str:
    return f"reschedule@{utc_key_time(start)}"


def cancellation_key(start: datetime) -> str:
    return f"cancellation@{utc_key_time(start)}"


def plan_jobs(
    previous: Visit | None,
    current: Visit,
    existing: Sequence[ExistingJob],
    policy: Policy,
    now: datetime,
) -> PlanDiff:
    """The jobs to add and the pending jobs to cancel so that `existing` matches what `current` wants.

    `previous` is the booking as held before this event (None: seen for the first time).
    """
    for name, moment in (("now", now), ("current.starts_at", current.starts_at)):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {moment!r}")

    if current.state is BookingState.ACTIVE:
        wanted, keep = _plan_active(previous, current, policy, now)
        cancel = _withdraw_for_active(current, existing, keep)
    else:
        wanted = _plan_ended(previous, current, policy, now)
        cancel = _withdraw_for_ended(current, existing)

    held = {job.key for job in existing if job.status is not JobStatus.CANCELLED}
    # A key held only by cancelled jobs is wanted again (the visit moved away and back): add it anew.
    add = [job for job in wanted if job.key not in held]
    add.sort(key=lambda job: (job.due_at, job.key))
    return PlanDiff(add=tuple(add), cancel=tuple(cancel))


def _plan_active(
    previous: Visit | None, current: Visit, policy: Policy, now: datetime
) -> tuple[list[PlannedJob], set[str]]:
    """Jobs an active booking wants now, and every key it still accepts (a superset: some are past)."""
    start = current.starts_at
    future = start > now
    wanted: list[PlannedJob] = []
    # Keys a pending job may keep even when not (re)planned this time: a confirmation stays while the
    # booking is active, a reminder whose raw time has just passed may be waiting at the end of the quiet
    # hours, and the notice of the move to this very start may not have gone yet.
    keep = {CONFIRMATION_KEY, reschedule_key(start)}

    if previous is None and policy.confirmation and future:
        wanted.append(_urgent(CONFIRMATION_KEY, JobKind.CONFIRMATION, start, policy, now))

    for offset in dict.fromkeys(policy.reminder_offsets):  # a repeated offset is one reminder
        if offset <= timedelta(0):  # nothing is ever due at or after the visit start
            continue
        key = reminder_key(offset, start)
        keep.add(key)
        raw = start - offset
        if raw < now:  # too late for this one: the booking came in (or moved) after its time
            continue
        due, note = _fit(raw, JobKind.REMINDER, start, policy, now)
        if due is None:
            # Recorded, not dropped: the clinic sees the reminder was considered and why it was not sent.
            wanted.append(
                PlannedJob(key, JobKind.REMINDER, raw.astimezone(UTC), status=JobStatus.SKIPPED, note=note)
            )
        else:
            wanted.append(PlannedJob(key, JobKind.REMINDER, due, note=note))

    moved = (
        previous is not None
        and previous.state is BookingState.ACTIVE
        and previous.starts_at != current.starts_at
    )
    if moved and policy.reschedule and future:
        wanted.append(_urgent(reschedule_key(start), JobKind.RESCHEDULE, start, policy, now))
    return wanted, keep


def _withdraw_for_active(
    current: Visit, existing: Sequence[ExistingJob], keep: set[str]
) -> list[Cancellation]:
    suffix = f"@{utc_key_time(current.starts_at)}"
    reasons: dict[str, str] = {}
    for job in _pending(existing):
        # A confirmation stays while the booking is active (its key is kept too); by kind, every other kind of
        # VISIT_KINDS is one an active booking may withdraw, and the last branch below needs no condition.
        if job.key in keep or job.kind is JobKind.CONFIRMATION:
            continue
        if job.kind is JobKind.REMINDER:
            reasons[job.key] = "no longer planned" if job.key.endswith(suffix) else "visit moved"
        elif job.kind is JobKind.RESCHEDULE:
            reasons[job.key] = "superseded by a later change"
        else:  # JobKind.CANCELLATION, the last of the VISIT_KINDS that _pending returns
            # The booking was cancelled and is active again: telling the patient otherwise would be wrong.
            reasons[job.key] = "booking active again"
    return _ordered(existing, reasons)


def _plan_ended(previous: Visit | None, current: Visit, policy: Policy, now: datetime) -> list[PlannedJob]:
    """A cancelled booking wants one notice, once, if the visit is still ahead; other states want nothing."""
    start = current.starts_at
    if (
        current.state is BookingState.CANCELLED
        and previous is not None
        and previous.state is BookingState.ACTIVE
        and policy.cancellation
        and start > now
    ):
        return [_urgent(cancellation_key(start), JobKind.CANCELLATION, start, policy, now)]
    return []


def _withdraw_for_ended(current: Visit, existing: Sequence[ExistingJob]) -> list[Cancellation]:
    reason = _ENDED_REASONS[current.state]
    reasons = {
        job.key: reason
        for job in _pending(existing)
        # A cancellation notice still waiting (e.g. for the end of the quiet hours) is what a cancelled
        # booking wants; a repeated cancel event must not withdraw it.
        if not (current.state is BookingState.CANCELLED and job.kind is JobKind.CANCELLATION)
    }
    return _ordered(existing, reasons)


def _fit(
    due: datetime, kind: JobKind, start: datetime, policy: Policy, now: datetime
) -> tuple[datetime | None, str | None]:
    return fit_quiet_hours(
        due, kind=kind, visit_start=start, now=now, quiet=policy.quiet_hours, tz=policy.timezone
    )


def _urgent(key: str, kind: JobKind, start: datetime, policy: Policy, now: datetime) -> PlannedJob:
    """An urgent notice: due now, or at the end of the quiet hours if those end before the visit."""
    due, note = _fit(now, kind, start, policy, now)
    return PlannedJob(key=key, kind=kind, due_at=due if due is not None else now.astimezone(UTC), note=note)


def _pending(existing: Sequence[ExistingJob]) -> list[ExistingJob]:
    return [job for job in existing if job.status in PENDING_STATUSES and job.kind in VISIT_KINDS]


def _ordered(existing: Sequence[ExistingJob], reasons: dict[str, str]) -> list[Cancellation]:
    """Cancellations in the order of the jobs' due times, then keys, one per key."""
    due: dict[str, datetime] = {}
    for job in _pending(existing):  # the earliest row wins, whatever order the ledger returned them in
        due[job.key] = min(due.get(job.key, job.due_at), job.due_at)
    return [Cancellation(key, reasons[key]) for key in sorted(reasons, key=lambda k: (due[k], k))]
