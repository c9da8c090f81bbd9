"""Every database write the use cases share: inbound events as received, a cascade decision on the job row, its
attempt, the patient's channel memory, and the audit trail.

Shared by the intake, the worker (after a send, after a timeout) and the receipts use case (callbacks, polling).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.core.cascade import Decision, Step, merge_status
from connector.core.model import AttemptStatus, AuditWhat, InboundOutcome, JobStatus
from connector.core.preparation import Await, Outcome, SendOn
from connector.core.unknown import UNKNOWN_MARK
from connector.store.models import AuditEvent, Booking, DeliveryAttempt, InboundEvent, NotificationJob, PatientChannel
from connector.store.queue import JOB_LEASE

# PostgreSQL text holds no NUL, and UTF-8 has no unpaired surrogates (JSON's "\\ud800" makes one).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def apply_decision(job: NotificationJob, decision: Decision, now: datetime) -> None:
    """Write the decision on the job. A fallback's time was decided with it (`Decision.due_at`, by
    connector.core.quiet_hours.schedule_fallback; None: now)."""
    job.status = decision.job_status
    job.updated_at = now
    job.lease_owner = None
    job.lease_until = None
    if decision.job_status == JobStatus.SCHEDULED:
        job.cascade_step = decision.next_step if decision.next_step is not None else job.cascade_step
        job.due_at = decision.due_at if decision.due_at is not None else now
        job.step_deadline = None
    elif decision.job_status == JobStatus.AWAITING_DELIVERY:
        job.step_deadline = decision.deadline
    else:
        job.step_deadline = None
    if decision.note:
        job.status_reason = decision.note


def finish_job(job: NotificationJob, status: JobStatus, reason: str, now: datetime) -> AuditEvent:
    """The job ends before a send (withdrawn, skipped, failed): its row, and the audit line to add."""
    job.status, job.status_reason, job.updated_at = status, reason, now
    job.lease_owner = job.lease_until = job.step_deadline = None
    return audit(job, now, AuditWhat.of_job(status), reason)


def defer_job(job: NotificationJob, *, step: int, until: datetime, reason: str, now: datetime) -> AuditEvent:
    """The job waits on `step` until `until` (a warm-up cap): its row, and the audit line to add."""
    job.status, job.due_at, job.cascade_step, job.updated_at = JobStatus.SCHEDULED, until, step, now
    job.lease_owner = job.lease_until = None
    return audit(job, now, AuditWhat.JOB_DEFERRED, reason)


def trail_of_preparation(job: NotificationJob, outcome: Outcome, unfinished: Sequence[DeliveryAttempt],
                         steps: Sequence[Step], now: datetime) -> list[AuditEvent]:
    """What the preparation found on the way (connector.core.preparation), written in its order: whom the job
    goes to now, the sends given up (a worker stopped mid-send), the steps passed over."""
    job.patient_id = outcome.patient
    trail = []
    if outcome.recipient_change is not None:
        trail.append(audit(job, now, AuditWhat.JOB_RECIPIENT, outcome.recipient_change))
    for attempt in unfinished:
        if attempt.started_at is None:  # its call never began: nothing went out, whatever the job does now
            trail.append(withdraw_attempt(job, attempt, now))
    for attempt in [attempt for attempt in unfinished if attempt.started_at is not None] if outcome.lost else ():
        trail.append(_lost_send(job, attempt, outcome, now))
    for index, reason in outcome.skipped:
        trail.append(audit(job, now, AuditWhat.STEP_SKIPPED, f"step {index + 1} ({steps[index].channel}): {reason}"))
    return trail


def _lost_send(job: NotificationJob, attempt: DeliveryAttempt, outcome: Outcome, now: datetime) -> AuditEvent:
    """A send whose worker stopped mid-call: its outcome is unknown, and its step's on_unknown said what follows
    (connector.core.preparation): await receipts for it, send once more on the same step, or move on."""
    error = f"{UNKNOWN_MARK}: the worker stopped mid-send"
    if isinstance(outcome, Await):
        update_attempt(attempt, AttemptStatus.SENT, now, error=error)  # it may have gone: receipts may come
        why = "on_unknown=wait: no other message; awaiting receipts for it"
    else:
        update_attempt(attempt, AttemptStatus.FAILED, now, error=error)
        resend = isinstance(outcome, SendOn) and outcome.step == attempt.step
        why = "on_unknown=resend: sent once more on the same step" if resend else "moving to the next channel"
    return audit(job, now, AuditWhat.ATTEMPT_UNKNOWN, f"worker stopped mid-send; {why}", attempt)


def withdraw_attempt(job: NotificationJob, attempt: DeliveryAttempt, now: datetime) -> AuditEvent:
    """A `queued` attempt whose call never began (no `started_at`): withdrawn, and its audit line."""
    update_attempt(attempt, AttemptStatus.WITHDRAWN, now, error="never started: nothing went to the provider")
    return audit(job, now, AuditWhat.ATTEMPT_WITHDRAWN, f"step {attempt.step + 1} ({attempt.channel}): the call "
                 "never began (its worker stopped or its pass failed first); nothing went out", attempt)


def mark_started(session: Session, attempt_ids: Sequence[int], now: datetime) -> None:
    """The attempts whose calls begin now, in one UPDATE: from here a dead worker leaves their outcome unknown."""
    if attempt_ids:
        session.execute(update(DeliveryAttempt).where(DeliveryAttempt.id.in_(attempt_ids)).values(started_at=now))


def release_jobs(session: Session, job_ids: Iterable[int], *, worker_id: str, reason: str,
                 now: datetime) -> list[AuditEvent]:
    """A failed pass hands back the jobs it claimed and did not send: scheduled again at once, lease cleared,
    their never-started attempts withdrawn, a line each in the trail (the caller adds them)."""
    jobs = session.scalars(select(NotificationJob).where(
        NotificationJob.id.in_(list(job_ids)), NotificationJob.lease_owner == worker_id,
        NotificationJob.status == JobStatus.SENDING).with_for_update()).all()
    attempts = session.scalars(select(DeliveryAttempt).where(
        DeliveryAttempt.job_id.in_([job.id for job in jobs]), DeliveryAttempt.status == AttemptStatus.QUEUED,
        DeliveryAttempt.started_at.is_(None))).all()
    by_id = {job.id: job for job in jobs}
    trail = [withdraw_attempt(by_id[attempt.job_id], attempt, now) for attempt in attempts]
    for job in jobs:
        job.status, job.updated_at = JobStatus.SCHEDULED, now
        job.lease_owner = job.lease_until = None
        trail.append(audit(job, now, AuditWhat.JOB_SCHEDULED, f"released: the worker's pass failed before its send "
                           f"({reason}); it goes with the next pass"))
    return trail


def queue_attempt(job: NotificationJob, *, step: int, provider_step: Step, now: datetime) -> DeliveryAttempt:
    """The job leased on `step`, and its attempt `queued` with our message id: written before the send, so a
    worker that dies mid-send leaves a trace (the caller adds and flushes it)."""
    job.cascade_step = step
    job.lease_until = now + JOB_LEASE
    job.updated_at = now
    return DeliveryAttempt(job_id=job.id, step=step, channel=provider_step.channel, provider=provider_step.provider,
                           message_id=uuid.uuid4().hex, status=AttemptStatus.QUEUED, tries=0, created_at=now,
                           updated_at=now)


def note_with(note: str | None, waiting: str | None) -> str | None:
    """A decision's note, and why its fallback waits, as one audit line."""
    return f"{note}; {waiting}" if note and waiting else (note or waiting)


def visit_times(session: Session, jobs: Iterable[NotificationJob]) -> dict[int, tuple[datetime, str]]:
    """Each job's visit start and zone, in one query: what a fallback needs to respect the quiet hours."""
    ids = {job.booking_id for job in jobs if job.booking_id is not None}
    if not ids:
        return {}
    rows = session.execute(select(Booking.id, Booking.starts_at, Booking.timezone).where(Booking.id.in_(ids)))
    return {row.id: (row.starts_at, row.timezone) for row in rows}


def update_attempt(attempt: DeliveryAttempt, status: AttemptStatus, now: datetime, *, error: str | None = None,
                   raw_status: str | None = None) -> bool:
    """Move the attempt forward (never back); stamp the times. True when its status changed.

    `updated_at` says when its status last changed: a report repeating what we know (a poll of a message still
    in flight) leaves it alone."""
    before = AttemptStatus(attempt.status)
    after = merge_status(before, status)
    if raw_status:
        attempt.raw_status = raw_status[:64]
    if error and after != before and after not in (AttemptStatus.DELIVERED, AttemptStatus.READ):
        attempt.error = error
    if after == before:
        return False
    attempt.updated_at = now
    attempt.status = after
    if after == AttemptStatus.SENT and attempt.sent_at is None:
        attempt.sent_at = now
    if after in (AttemptStatus.DELIVERED, AttemptStatus.READ) and attempt.delivered_at is None:
        attempt.delivered_at = now
    if after == AttemptStatus.READ and attempt.read_at is None:
        attempt.read_at = now
    return True


def remember_channels(session: Session, now: datetime, facts: Iterable[tuple[int | None, str, AttemptStatus]],
                      remember: timedelta) -> None:
    """Per patient and channel: known absent for a while after `not_registered`, or last delivered."""
    kept = [(pid, channel, status) for pid, channel, status in facts if pid is not None and status in (
        AttemptStatus.NOT_REGISTERED, AttemptStatus.DELIVERED, AttemptStatus.READ)]
    if not kept:
        return
    _add_channel_rows(session, {(pid, channel) for pid, channel, _ in kept if pid is not None}, now)
    rows = session.scalars(select(PatientChannel).where(
        PatientChannel.patient_id.in_({pid for pid, _, _ in kept}))).all()
    known = {(row.patient_id, row.channel): row for row in rows}
    for pid, channel, status in kept:
        row = known[(pid, channel)]
        if status == AttemptStatus.NOT_REGISTERED:
            row.not_registered_until = now + remember
        else:
            row.not_registered_until = None
            row.last_delivered_at = now
        row.updated_at = now


def _add_channel_rows(session: Session, pairs: set[tuple[int, str]], now: datetime) -> None:
    """A row for each (patient, channel) not held yet. Two receipts of one patient's first delivery on a channel
    come at once from a fast provider (two callbacks, or a callback and the worker's record): a SELECT then an
    INSERT would let both insert, and the second's unique-key error would lose its receipt."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    rows = [{"patient_id": pid, "channel": channel, "opted_out": False, "updated_at": now}
            for pid, channel in sorted(pairs)]  # one order for every writer: no deadlock between two
    session.execute(dialect.insert(PatientChannel).on_conflict_do_nothing(index_elements=["patient_id", "channel"]),
                    rows)


def audit(job: NotificationJob, now: datetime, what: AuditWhat, detail: str | None,
          attempt: DeliveryAttempt | None = None) -> AuditEvent:
    """A line of a job's trail (and of its attempt's, when there is one)."""
    return audit_row(tenant_id=job.tenant_id, at=now, what=what, detail=detail, booking_id=job.booking_id,
                     job_id=job.id, attempt_id=attempt.id if attempt is not None else None)


def booking_audit(booking: Booking, inbound: InboundEvent, now: datetime, what: AuditWhat, detail: str | None,
                  job_id: int | None = None) -> AuditEvent:
    """A line of a booking's trail caused by an inbound event (and about one of its jobs, when given)."""
    return audit_row(tenant_id=booking.tenant_id, at=now, what=what, detail=detail, booking_id=booking.id,
                     job_id=job_id, inbound_event_id=inbound.id)


_AUDIT_COLUMNS = ("tenant_id", "booking_id", "job_id", "attempt_id", "inbound_event_id", "at", "what", "detail")


def insert_trail(session: Session, lines: Sequence[AuditEvent]) -> None:
    """Append audit lines in one INSERT, outside the unit of work: the trail is append-only, nothing reads the
    rows back in the transaction, and the ORM's bookkeeping per row cost more than the row."""
    if lines:
        rows = [{name: getattr(line, name) for name in _AUDIT_COLUMNS} for line in lines]
        session.execute(insert(cast(Table, AuditEvent.__table__)), rows)


def audit_row(*, tenant_id: str, at: datetime, what: AuditWhat, detail: str | None, booking_id: int | None = None,
              job_id: int | None = None, attempt_id: int | None = None,
              inbound_event_id: int | None = None) -> AuditEvent:
    """The one place an audit line is built: append-only, named from the core's vocabulary."""
    return AuditEvent(tenant_id=tenant_id, booking_id=booking_id, job_id=job_id, attempt_id=attempt_id,
                      inbound_event_id=inbound_event_id, at=at, what=AuditWhat(what), detail=detail)


def record_inbound(
    session: Session,
    *,
    tenant_id: str,
    source: str,
    body: str | bytes,
    headers: Mapping[str, str],
    now: datetime,
    outcome: InboundOutcome,
    error: str | None = None,
    truncated: bool = False,
    idempotency_key: str | None = None,
    reason: str | None = None,
) -> InboundEvent:
    """Store one body as received (connector.store.ledger.inbound_values says how), as an ORM row."""
    event = InboundEvent(**inbound_values(
        tenant_id=tenant_id, source=source, body=body, headers=headers, now=now, outcome=outcome, error=error,
        truncated=truncated, idempotency_key=idempotency_key, reason=reason))
    session.add(event)
    session.flush()
    return event


def inbound_values(*, tenant_id: str, source: str, body: str | bytes, headers: Mapping[str, str], now: datetime,
                   outcome: InboundOutcome, error: str | None = None, truncated: bool = False,
                   idempotency_key: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """One inbound event's columns. Bytes a text column cannot hold (not UTF-8, or a NUL, which PostgreSQL
    text refuses) are kept exactly in `body_raw`, next to a readable form; the other columns are fitted
    to their sizes, so nothing a sender writes can make the insert fail."""
    data = body if isinstance(body, bytes) else body.encode("utf-8", errors="surrogatepass")
    text, exact = readable_body(data)
    return dict(
        tenant_id=storable(tenant_id, 64),
        source=storable(source, 32),
        received_at=now,
        headers={storable(str(k), 100): storable(str(v), 1000) for k, v in list(headers.items())[:50]},
        body=text,
        body_raw=exact,
        body_truncated=truncated,
        idempotency_key=storable(idempotency_key, 128) if idempotency_key else None,
        outcome=outcome,
        error=storable(error, 4000) if error else None,
        reason=storable(reason, 32) if reason else None,
    )


def readable_body(data: bytes) -> tuple[str, bytes | None]:
    """(text for people, the exact bytes when the text is not them): UTF-8 without NUL is its own record."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").replace("\x00", "\ufffd"), data
    if "\x00" in text:
        return text.replace("\x00", "\ufffd"), data
    return text, None


def received_bytes(event: InboundEvent) -> bytes:
    """The body exactly as it came (for replay and for proof), whichever column holds it."""
    if event.body_raw is not None:
        return event.body_raw
    return event.body.encode("utf-8", errors="surrogatepass")


def storable(text: str, limit: int) -> str:
    """A sender's text fitted to a column: cut to size, NULs and unpaired surrogates made visible as U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text[:limit])
