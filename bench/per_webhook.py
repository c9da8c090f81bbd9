"""The baseline the intake is measured against: the per-webhook path the web process ran before the intake
(issue 9), kept as it was: one webhook body becomes ledger rows (event, booking, patient, jobs, audit) in one
transaction, with a query or a flush per row. Not used by the service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from connector.core.intake import booking_change, content_hash
from connector.core.model import (
    ACCEPTED_OUTCOMES,
    AuditWhat,
    BookingFacts,
    BookingState,
    EventAction,
    ExistingJob,
    InboundOutcome,
    JobKind,
    JobStatus,
    PlanDiff,
    SourceEvent,
    Visit,
)
from connector.core.planning import plan_jobs
from connector.core.recipients import follow_booking
from connector.core.versions import is_stale, newest
from connector.store.ledger import booking_audit, record_inbound
from connector.store.mapping import copy_facts
from connector.store.models import AuditEvent, Booking, InboundEvent, NotificationJob, Patient
from connector.tenants import Tenant


@dataclass(frozen=True)
class Receipt:
    """What became of one inbound event; the web layer turns it into an answer."""

    outcome: InboundOutcome
    inbound_event_id: int
    booking_id: int | None = None
    detail: str | None = None


def ingest_event(
    session: Session,
    *,
    tenant: Tenant,
    source: str,
    event: SourceEvent | None,
    body: str | bytes,
    headers: Mapping[str, str],
    now: datetime,
    idempotency_key: str | None = None,
    confirm_new: bool = True,
) -> Receipt:
    """`confirm_new=False`: a booking seen for the first time gets no confirmation (the sync found a booking
    made long before, while nobody listened; its reminders are still planned)."""
    inbound = record_inbound(
        session, tenant_id=tenant.id, source=source, body=body, headers=headers, now=now,
        outcome=InboundOutcome.APPLIED, idempotency_key=idempotency_key,
    )
    if event is None:
        inbound.outcome = InboundOutcome.IGNORED
        inbound.error = "not a booking event"
        return Receipt(InboundOutcome.IGNORED, inbound.id, detail=inbound.error)
    inbound.external_id = event.external_id[:128]
    if idempotency_key and _seen_before(session, tenant.id, source, idempotency_key, inbound.id):
        return _settle(session, inbound, InboundOutcome.DUPLICATE, None, "this webhook id was already received", now)

    booking = session.scalars(
        select(Booking)
        .where(Booking.tenant_id == tenant.id, Booking.source == source, Booking.external_id == event.external_id)
        .with_for_update()
    ).one_or_none()

    if booking is not None and is_stale(booking.source_version, event.version):
        return _settle(session, inbound, InboundOutcome.STALE, booking, "older than the version we hold", now)
    if event.action is EventAction.DELETE:
        return _apply_delete(session, tenant, source, inbound, booking, event, now)
    assert event.facts is not None
    return _apply_upsert(session, tenant, source, inbound, booking, event, event.facts, now, confirm_new)


def _apply_upsert(session, tenant, source, inbound, booking, event, facts: BookingFacts, now,
                  confirm_new: bool = True) -> Receipt:
    digest = content_hash(facts)
    if booking is not None and booking.content_hash == digest:
        # Same facts, maybe a newer version (a confirmation flag we do not plan on): remember the version
        # so that an older update arriving later is still seen as stale.
        booking.source_version = newest(booking.source_version, event.version)
        return _settle(session, inbound, InboundOutcome.DUPLICATE, booking, "nothing changed", now)
    previous = None if booking is None else Visit(booking.starts_at, BookingState(booking.state))
    patient_id = _upsert_patient(session, tenant.id, facts, now)
    if booking is None:
        booking = Booking(tenant_id=tenant.id, source=source, external_id=event.external_id, created_at=now)
        session.add(booking)
    copy_facts(booking, facts, default_tz=tenant.timezone, patient_id=patient_id)
    booking.source_version = newest(booking.source_version, event.version)
    booking.content_hash = digest
    booking.updated_at = now
    session.flush()
    inbound.booking_id = booking.id
    session.add(booking_audit(booking, inbound, now, *_booking_change(previous, booking)))
    _replan(session, tenant, booking, inbound, previous, now, confirm_new)
    return Receipt(InboundOutcome.APPLIED, inbound.id, booking.id)


def _apply_delete(session, tenant, source, inbound, booking, event, now) -> Receipt:
    if booking is None:
        facts = event.facts
        if facts is None:
            inbound.outcome = InboundOutcome.IGNORED
            inbound.error = "delete for a booking we never held"
            return Receipt(InboundOutcome.IGNORED, inbound.id, detail=inbound.error)
        # Kept so that a late create for the same id finds it cancelled, not new. The patient first: its
        # flush would otherwise insert this booking before it has a start time.
        patient_id = _upsert_patient(session, tenant.id, facts, now)
        booking = Booking(tenant_id=tenant.id, source=source, external_id=event.external_id, created_at=now)
        copy_facts(booking, facts, default_tz=tenant.timezone, patient_id=patient_id)
        booking.content_hash = content_hash(facts)
        session.add(booking)
    elif booking.state == BookingState.CANCELLED:
        return _settle(session, inbound, InboundOutcome.DUPLICATE, booking, "already cancelled", now)
    previous = None if booking.id is None else Visit(booking.starts_at, BookingState(booking.state))
    booking.state = BookingState.CANCELLED
    booking.source_version = newest(booking.source_version, event.version)
    booking.updated_at = now
    session.flush()
    inbound.booking_id = booking.id
    session.add(booking_audit(booking, inbound, now, AuditWhat.BOOKING_CANCELLED, "deleted at the source"))
    _replan(session, tenant, booking, inbound, previous, now)
    return Receipt(InboundOutcome.APPLIED, inbound.id, booking.id)


# What re-planning reads of a booking's jobs: id, plan_key, kind, status, due_at, patient_id.
_JobRow = Row[int, str, str, str, datetime, int | None]


def _replan(session: Session, tenant: Tenant, booking: Booking, inbound: InboundEvent, previous: Visit | None,
            now: datetime, confirm_new: bool = True) -> None:
    rows = session.execute(
        select(NotificationJob.id, NotificationJob.plan_key, NotificationJob.kind, NotificationJob.status,
               NotificationJob.due_at, NotificationJob.patient_id).where(NotificationJob.booking_id == booking.id)
    ).all()
    existing = [ExistingJob(row.plan_key, JobKind(row.kind), JobStatus(row.status), row.due_at) for row in rows]
    current = Visit(booking.starts_at, BookingState(booking.state))
    # A clinic network's branch may say its own zone (generic sources): its quiet hours are its own.
    policy = replace(tenant.policy, timezone=booking.timezone or tenant.timezone,
                     confirmation=tenant.policy.confirmation and confirm_new)
    diff: PlanDiff = plan_jobs(previous, current, existing, policy, now)

    audits, cancelled = _cancel_jobs(session, booking, inbound, rows, diff, now)
    audits.extend(_follow_patient(session, booking, inbound, rows, cancelled, now))
    audits.extend(_add_jobs(session, tenant, booking, inbound, diff, now))
    session.add_all(audits)


def _cancel_jobs(session: Session, booking: Booking, inbound: InboundEvent, rows: Sequence[_JobRow], diff: PlanDiff,
                 now: datetime) -> tuple[list[AuditEvent], set[int]]:
    """The plan's cancellations of jobs still waiting; their audit lines and the ids cancelled."""
    pending_ids: dict[str, list[int]] = {}
    for row in rows:
        if row.status == JobStatus.SCHEDULED:
            pending_ids.setdefault(row.plan_key, []).append(row.id)
    audits: list[AuditEvent] = []
    cancelled: set[int] = set()
    for cancellation in diff.cancel:
        ids = pending_ids.get(cancellation.key, [])
        if not ids:
            continue
        # The status guard keeps us off a job a worker claimed a moment ago.
        session.execute(
            update(NotificationJob)
            .where(NotificationJob.id.in_(ids), NotificationJob.status == JobStatus.SCHEDULED)
            .values(status=JobStatus.CANCELLED, status_reason=cancellation.reason, updated_at=now)
        )
        audits.extend(booking_audit(booking, inbound, now, AuditWhat.JOB_CANCELLED, cancellation.reason, job_id)
                      for job_id in ids)
        cancelled.update(ids)
    return audits, cancelled


def _add_jobs(session: Session, tenant: Tenant, booking: Booking, inbound: InboundEvent, diff: PlanDiff,
              now: datetime) -> list[AuditEvent]:
    """The plan's new jobs, flushed for their ids; an audit line each (planned, or skipped and why)."""
    jobs = [
        NotificationJob(
            tenant_id=tenant.id, booking_id=booking.id, patient_id=booking.patient_id, kind=planned.kind,
            plan_key=planned.key, planned_at=planned.due_at, due_at=planned.due_at, status=planned.status,
            status_reason=planned.note,
            cascade_step=0, created_at=now, updated_at=now,
        )
        for planned in diff.add
    ]
    session.add_all(jobs)
    session.flush()
    audits: list[AuditEvent] = []
    for job, planned in zip(jobs, diff.add, strict=True):
        what = AuditWhat.JOB_SKIPPED if planned.status == JobStatus.SKIPPED else AuditWhat.JOB_PLANNED
        detail = f"{planned.kind} due {planned.due_at.isoformat()}" + (f"; {planned.note}" if planned.note else "")
        audits.append(booking_audit(booking, inbound, now, what, detail, job.id))
    return audits


def _follow_patient(session, booking: Booking, inbound, rows, cancelled: set[int], now) -> list[AuditEvent]:
    """Jobs still waiting to go follow the booking's patient now. Jobs in flight keep theirs until the worker
    prepares their next step (it checks again there), so that a late receipt for a message that went to the
    previous number is not taken as news about the new patient."""
    changes = {}
    for row in rows:
        if row.status == JobStatus.SCHEDULED and row.id not in cancelled:
            _, change = follow_booking(row.patient_id, booking.patient_id, has_booking=True)
            if change is not None:
                changes[row.id] = change
    if not changes:
        return []
    # The status guard keeps us off a job a worker claimed a moment ago; the worker re-checks it itself.
    moved = session.execute(
        update(NotificationJob)
        .where(NotificationJob.id.in_(changes), NotificationJob.status == JobStatus.SCHEDULED)
        .values(patient_id=booking.patient_id, updated_at=now)
        .returning(NotificationJob.id)
    ).scalars().all()
    return [booking_audit(booking, inbound, now, AuditWhat.JOB_RECIPIENT, changes[job_id], job_id)
            for job_id in sorted(moved)]


def _seen_before(session, tenant_id, source, key, own_id) -> bool:
    return session.scalar(
        select(InboundEvent.id).where(
            InboundEvent.tenant_id == tenant_id, InboundEvent.source == source,
            InboundEvent.idempotency_key == key, InboundEvent.id != own_id,
            InboundEvent.outcome.in_(ACCEPTED_OUTCOMES),
        ).limit(1)
    ) is not None


def _settle(session, inbound: InboundEvent, outcome: InboundOutcome, booking: Booking | None, detail: str,
            now) -> Receipt:
    inbound.outcome = outcome
    inbound.error = detail
    if booking is not None:
        inbound.booking_id = booking.id
        session.add(booking_audit(booking, inbound, now, AuditWhat.of_inbound(outcome), detail))
    return Receipt(outcome, inbound.id, booking.id if booking else None, detail)


def _upsert_patient(session: Session, tenant_id: str, facts: BookingFacts, now) -> int | None:
    person = facts.patient
    if not person.phone:
        return None
    patient = session.scalars(
        select(Patient).where(Patient.tenant_id == tenant_id, Patient.phone == person.phone)
    ).one_or_none()
    if patient is None:
        patient = Patient(tenant_id=tenant_id, phone=person.phone, opt_outs=[], created_at=now)
        session.add(patient)
    # A partial payload (a delete, a terse CRM) must not erase what a fuller one told us.
    for name in ("first_name", "last_name", "patronymic"):
        value = getattr(person, name)
        if value:
            setattr(patient, name, value)
    if person.sex.value != "unknown" or patient.sex is None:
        patient.sex = person.sex.value
    patient.updated_at = now
    session.flush()
    return patient.id


def _booking_change(previous: Visit | None, booking: Booking) -> tuple[AuditWhat, str | None]:
    return booking_change(previous, Visit(booking.starts_at, BookingState(booking.state)))
