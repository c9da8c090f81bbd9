"""Read models shared by the API and the status page (cosmicpython's `views.py`): what one booking left in the
ledger, what one inbound event became, and a tenant's overview. Read-only; rows come back as loaded, detached once
the caller's session closes, so nothing here lazy-loads later. Masking and rendering are the web's job."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, defer

from connector.core.model import AttemptStatus, JobStatus
from connector.core.phones import normalise_phone
from connector.core.writeback import WritebackStatus
from connector.store.early_receipts import held_list
from connector.store.live import state_is
from connector.store.models import (
    AuditEvent,
    Booking,
    DeliveryAttempt,
    EarlyReceipt,
    InboundEvent,
    NotificationJob,
    Patient,
    PatientChannel,
    SyncState,
    WorkerHeartbeat,
    Writeback,
)

LIST_LIMIT = 50
OVERDUE_LIMIT = 20
SEARCH_LIMIT = 100
OTHER_BOOKINGS = 10  # a patient's other bookings shown beside one
HEARTBEAT_LIMIT = 20


@dataclass(frozen=True)
class BookingTrail:
    """One booking and everything the ledger holds about it: the clinic's proof of informing."""

    booking: Booking
    patient: Patient | None
    jobs: Sequence[NotificationJob]  # by planned time, then id
    attempts: dict[int, list[DeliveryAttempt]]  # job id → its attempts, oldest first
    audit: Sequence[AuditEvent]
    inbound: Sequence[InboundEvent]  # bodies and headers not loaded
    writebacks: Sequence[Writeback] = ()  # what was reported to its CRM, oldest first
    channels: Sequence[PatientChannel] = ()  # what the cascade knows of the patient, channel by channel
    others: Sequence[Booking] = ()  # the patient's other bookings with this tenant, latest visit first


@dataclass(frozen=True)
class EventTrail:
    """One inbound event, its booking's patient (whose name to mask) and the audit rows it caused."""

    event: InboundEvent
    patient: Patient | None
    audit: Sequence[AuditEvent]


@dataclass(frozen=True)
class BookingRow:
    """A booking in a list: its patient's phone (E.164, unmasked) and its jobs counted by status."""

    booking: Booking
    phone: str | None
    job_counts: dict[str, int]
    name: str = ""  # the patient's full name (surname first), for signed-in staff


@dataclass(frozen=True)
class Search:
    phone: str | None  # the query read as a phone (E.164), when it reads as one
    bookings: list[BookingRow]


@dataclass(frozen=True)
class Overview:
    heartbeats: Sequence[WorkerHeartbeat]
    syncs: Sequence[SyncState]
    today: dict[str, int]  # jobs planned for today (the tenant's day) by status
    overdue_count: int
    overdue: Sequence[NotificationJob]  # the oldest OVERDUE_LIMIT of them, texts not loaded
    events: Sequence[InboundEvent]  # the latest, bodies and headers not loaded
    bookings: list[BookingRow]  # the latest changed
    search: Search | None
    held: Sequence[EarlyReceipt] = ()  # receipts kept until an attempt takes their ids, oldest first


# --- one booking, one event, one patient ----------------------------------------------------------------------


def booking_trail(session: Session, *, tenant_id: str, source: str, external_id: str) -> BookingTrail | None:
    found = session.scalars(select(Booking).where(
        Booking.tenant_id == tenant_id, Booking.source == source, Booking.external_id == external_id)
    ).one_or_none()
    return None if found is None else _trail(session, found)


def booking_trail_by_id(session: Session, *, tenant_id: str, booking_id: int) -> BookingTrail | None:
    found = session.get(Booking, booking_id)
    return None if found is None or found.tenant_id != tenant_id else _trail(session, found)


def _trail(session: Session, booking: Booking) -> BookingTrail:
    """Eight queries however many jobs a booking has."""
    patient = session.get(Patient, booking.patient_id) if booking.patient_id else None
    jobs = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == booking.id)
                           .order_by(planned_time(), NotificationJob.id)).all()
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if jobs:
        for attempt in session.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.job_id.in_([job.id for job in jobs])).order_by(DeliveryAttempt.id)):
            attempts.setdefault(attempt.job_id, []).append(attempt)
    audit = session.scalars(select(AuditEvent).where(AuditEvent.booking_id == booking.id)
                            .order_by(AuditEvent.at, AuditEvent.id)).all()
    inbound = session.scalars(
        select(InboundEvent).where(InboundEvent.booking_id == booking.id)
        .options(defer(InboundEvent.body), defer(InboundEvent.headers))
        .order_by(InboundEvent.received_at, InboundEvent.id)).all()
    writebacks = session.scalars(select(Writeback).where(Writeback.booking_id == booking.id)
                                 .order_by(Writeback.id)).all()
    channels: Sequence[PatientChannel] = ()
    others: Sequence[Booking] = ()
    if patient is not None:
        channels = session.scalars(select(PatientChannel).where(PatientChannel.patient_id == patient.id)
                                   .order_by(PatientChannel.channel)).all()
        others = session.scalars(select(Booking).where(Booking.tenant_id == booking.tenant_id,
                                                       Booking.patient_id == patient.id, Booking.id != booking.id)
                                 .order_by(Booking.starts_at.desc(), Booking.id.desc()).limit(OTHER_BOOKINGS)).all()
    return BookingTrail(booking, patient, jobs, attempts, audit, inbound, writebacks, channels, others)


def event_trail(session: Session, *, tenant_id: str, event_id: int) -> EventTrail | None:
    found = session.get(InboundEvent, event_id)
    if found is None or found.tenant_id != tenant_id:
        return None
    patient = session.scalar(select(Patient).join(Booking, Booking.patient_id == Patient.id)
                             .where(Booking.id == found.booking_id)) if found.booking_id else None
    audit = session.scalars(select(AuditEvent).where(AuditEvent.inbound_event_id == found.id)
                            .order_by(AuditEvent.at, AuditEvent.id)).all()
    return EventTrail(found, patient, audit)


def inbound_events(session: Session, *, tenant_id: str, outcome: str | None, limit: int) -> Sequence[InboundEvent]:
    """The tenant's latest inbound events, newest first, raw bodies included; only one outcome's if given."""
    query = select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
    if outcome:
        query = query.where(InboundEvent.outcome == outcome)
    return session.scalars(query.order_by(InboundEvent.id.desc()).limit(limit)).all()


def writebacks(session: Session, *, tenant_id: str, status: str | None, limit: int,
               before: int | None = None) -> Sequence[Writeback]:
    """The tenant's outbox rows, newest first (ids below `before`, for the next page); one status's if given."""
    query = select(Writeback).where(Writeback.tenant_id == tenant_id)
    if status:
        query = query.where(Writeback.status == status)
    if before is not None:
        query = query.where(Writeback.id < before)
    return session.scalars(query.order_by(Writeback.id.desc()).limit(limit)).all()


def writeback_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(tenant, target, status, count) of every outbox row: what /metrics shows."""
    rows = session.execute(select(Writeback.tenant_id, Writeback.target, Writeback.status, func.count())
                           .group_by(Writeback.tenant_id, Writeback.target, Writeback.status))
    return [(tenant, target, status, count) for tenant, target, status, count in rows]


def writebacks_retrying(session: Session) -> list[tuple[str, str, int]]:
    """(tenant, target, count) of the rows a target keeps failing on, still to be tried again."""
    rows = session.execute(select(Writeback.tenant_id, Writeback.target, func.count())
                           .where(state_is(Writeback.status, WritebackStatus.PENDING), Writeback.tries > 0)
                           .group_by(Writeback.tenant_id, Writeback.target))
    return [(tenant, target, count) for tenant, target, count in rows]


def inbound_event(session: Session, *, tenant_id: str, event_id: int) -> InboundEvent | None:
    """One of the tenant's inbound events."""
    return session.scalars(select(InboundEvent).where(InboundEvent.tenant_id == tenant_id,
                                                      InboundEvent.id == event_id)).one_or_none()


def patient_by_phone(session: Session, *, tenant_id: str, phone: str) -> Patient | None:
    """The tenant's patient with this E.164 phone."""
    return session.scalars(select(Patient).where(Patient.tenant_id == tenant_id, Patient.phone == phone)
                           ).one_or_none()


def heartbeats(session: Session) -> Sequence[WorkerHeartbeat]:
    """The workers that beat last, latest first."""
    return session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.beat_at.desc())
                           .limit(HEARTBEAT_LIMIT)).all()


def sync_states(session: Session, *, tenant_id: str | None = None) -> Sequence[SyncState]:
    """How far each safety-net sync has read: one tenant's by source, or everyone's by tenant."""
    if tenant_id is None:
        return session.scalars(select(SyncState).order_by(SyncState.tenant_id)).all()
    return session.scalars(select(SyncState).where(SyncState.tenant_id == tenant_id)
                           .order_by(SyncState.source)).all()


# --- a tenant's overview ----------------------------------------------------------------------------------------


def overview(session: Session, *, tenant_id: str, now: datetime, zone: ZoneInfo, late_after: timedelta,
             query: str = "") -> Overview:
    """What the status page opens with; `query` (an external booking id or a phone) adds a search. Ten queries."""
    day_start = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    today = dict(session.execute(
        select(NotificationJob.status, func.count())
        .where(NotificationJob.tenant_id == tenant_id, planned_time() >= day_start,
               planned_time() < day_start + timedelta(days=1))
        .group_by(NotificationJob.status)).all())
    overdue_where = (NotificationJob.tenant_id == tenant_id, state_is(NotificationJob.status, JobStatus.SCHEDULED),
                     NotificationJob.due_at < now - late_after)
    overdue_count = session.scalar(select(func.count()).select_from(NotificationJob).where(*overdue_where))
    overdue = session.scalars(select(NotificationJob).where(*overdue_where)
                              .options(defer(NotificationJob.rendered_text))
                              .order_by(NotificationJob.due_at).limit(OVERDUE_LIMIT)).all()
    events = session.scalars(
        select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
        .options(defer(InboundEvent.body), defer(InboundEvent.headers))
        .order_by(InboundEvent.received_at.desc(), InboundEvent.id.desc()).limit(LIST_LIMIT)).all()
    phone = normalise_phone(query) if query else None
    found = _search(session, tenant_id=tenant_id, query=query, phone=phone) if query else []
    latest = session.scalars(select(Booking).where(Booking.tenant_id == tenant_id)
                             .order_by(Booking.updated_at.desc(), Booking.id.desc()).limit(LIST_LIMIT)).all()
    rows = _booking_rows(session, [*latest, *found])
    return Overview(
        heartbeats=heartbeats(session), syncs=sync_states(session, tenant_id=tenant_id), today=today,
        overdue_count=overdue_count or 0, overdue=overdue, events=events,
        bookings=[rows[b.id] for b in latest],
        search=Search(phone, [rows[b.id] for b in found]) if query else None,
        held=held_list(session, tenant_id=tenant_id, limit=LIST_LIMIT))


def planned_time() -> ColumnElement[Any]:
    """A job's due time as the plan chose it (`due_at` moves on with fallbacks and warm-up waits)."""
    return func.coalesce(NotificationJob.planned_at, NotificationJob.due_at)


def _search(session: Session, *, tenant_id: str, query: str, phone: str | None) -> Sequence[Booking]:
    """Bookings whose external id (or our number) is `query`; when it reads as a phone, the bookings of that
    patient; when it reads as words, those of the patients whose surname begins with the first and, given a
    second, whose first name begins with it («Смирн», «смирнов иван»): as typed, or in any one case (SQLite's
    lower() knows no Cyrillic, so the usual spellings are compared, each as a prefix)."""
    conditions = [Booking.external_id == query]
    if query.isdigit() and int(query) < 2**31:  # our number; a longer one would overflow PostgreSQL's integer
        conditions.append(Booking.id == int(query))
    if phone is not None:
        patient_ids = select(Patient.id).where(Patient.tenant_id == tenant_id, Patient.phone == phone)
        conditions.append(Booking.patient_id.in_(patient_ids))
    elif any(ch.isalpha() for ch in query):
        words = query.split()
        namesakes = select(Patient.id).where(Patient.tenant_id == tenant_id, _begins(Patient.last_name, words[0]))
        if len(words) > 1:
            namesakes = namesakes.where(_begins(Patient.first_name, words[1]))
        conditions.append(Booking.patient_id.in_(namesakes))
    return session.scalars(select(Booking).where(Booking.tenant_id == tenant_id, or_(*conditions))
                           .order_by(Booking.starts_at.desc(), Booking.id.desc()).limit(SEARCH_LIMIT)).all()


def _begins(column: Any, word: str) -> Any:
    """`column` begins with `word` in one of its usual spellings; `%` and `_` typed are letters, not wildcards."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    spellings = {escaped, escaped.lower(), escaped.upper(), escaped.capitalize()}
    return or_(*(column.like(f"{spelling}%", escape="\\") for spelling in sorted(spellings)))


def _booking_rows(session: Session, bookings: Iterable[Booking]) -> dict[int, BookingRow]:
    """Each booking with its patient's phone and its jobs counted by status: two IN queries in all."""
    by_id = {b.id: b for b in bookings}
    patient_ids = {b.patient_id for b in by_id.values() if b.patient_id}
    people = session.execute(select(Patient.id, Patient.phone, Patient.last_name, Patient.first_name,
                                    Patient.patronymic).where(Patient.id.in_(patient_ids))).all() if patient_ids else []
    phones: dict[int, str] = {row.id: row.phone for row in people}
    names = {row.id: " ".join(part for part in (row.last_name, row.first_name, row.patronymic) if part)
             for row in people}
    counts: dict[int, dict[str, int]] = {}
    if by_id:
        for booking_id, status, count in session.execute(
                select(NotificationJob.booking_id, NotificationJob.status, func.count())
                .where(NotificationJob.booking_id.in_(list(by_id)))
                .group_by(NotificationJob.booking_id, NotificationJob.status)):
            if booking_id is not None:
                counts.setdefault(booking_id, {})[status] = count
    return {b.id: BookingRow(b, phones.get(b.patient_id) if b.patient_id else None, counts.get(b.id, {}),
                             names.get(b.patient_id, "") if b.patient_id else "")
            for b in by_id.values()}


# --- what /metrics counts: configured ids, kinds, channels and statuses only, never patient data -----------------


def job_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(tenant, kind, status, jobs) over the whole ledger."""
    return [(tenant, kind, status, count) for tenant, kind, status, count in session.execute(
        select(NotificationJob.tenant_id, NotificationJob.kind, NotificationJob.status, func.count())
        .group_by(NotificationJob.tenant_id, NotificationJob.kind, NotificationJob.status))]


def overdue_counts(session: Session, *, now: datetime, late_after: timedelta) -> list[tuple[str, int]]:
    """(tenant, scheduled jobs more than `late_after` past due)."""
    return [(tenant, count) for tenant, count in session.execute(
        select(NotificationJob.tenant_id, func.count())
        .where(state_is(NotificationJob.status, JobStatus.SCHEDULED), NotificationJob.due_at < now - late_after)
        .group_by(NotificationJob.tenant_id))]


def attempt_counts(session: Session, *, since: datetime) -> list[tuple[str, str, str, str, int]]:
    """(tenant, channel, provider, status, attempts made since `since`)."""
    return [(tenant, channel, provider, status, count) for tenant, channel, provider, status, count in session.execute(
        select(NotificationJob.tenant_id, DeliveryAttempt.channel, DeliveryAttempt.provider,
               DeliveryAttempt.status, func.count())
        .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
        .where(DeliveryAttempt.created_at >= since)
        .group_by(NotificationJob.tenant_id, DeliveryAttempt.channel, DeliveryAttempt.provider,
                  DeliveryAttempt.status))]


def inbound_counts(session: Session, *, since: datetime, tenants: Collection[str],
                   unvouched: Collection[str]) -> list[tuple[str, str, str, int]]:
    """(tenant, source, outcome, events received since `since`) of the given tenants, leaving out the bodies
    refused for one of the `unvouched` reasons (nobody vouched for them)."""
    vouched = or_(InboundEvent.reason.is_(None), InboundEvent.reason.not_in(unvouched))
    return [(tenant, source, outcome, count) for tenant, source, outcome, count in session.execute(
        select(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.outcome, func.count())
        .where(InboundEvent.received_at >= since, vouched, InboundEvent.tenant_id.in_(tenants))
        .group_by(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.outcome))]


def refusal_counts(session: Session, *, since: datetime, reasons: Collection[str]) -> dict[str, int]:
    """Bodies refused since `since` for each of `reasons` (those without any left out)."""
    return {reason: count for reason, count in session.execute(
        select(InboundEvent.reason, func.count())
        .where(InboundEvent.received_at >= since, InboundEvent.reason.in_(reasons)).group_by(InboundEvent.reason))
        if reason is not None}


def heartbeats_since(session: Session, *, since: datetime) -> Sequence[WorkerHeartbeat]:
    return session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.beat_at >= since)).all()


# --- queue lag and fallbacks: /metrics and /healthz/worker ----------------------------------------------------


def oldest_overdue(session: Session, *, now: datetime) -> datetime | None:
    """The due time of the oldest scheduled job past due, of any tenant (one step along the claim's index)."""
    return session.scalar(select(func.min(NotificationJob.due_at))
                          .where(state_is(NotificationJob.status, JobStatus.SCHEDULED), NotificationJob.due_at < now))


def oldest_overdue_by_tenant(session: Session, *, now: datetime) -> dict[str, datetime]:
    """Tenant → the due time of its oldest scheduled job past due (tenants with none are left out)."""
    return {tenant: due for tenant, due in session.execute(
        select(NotificationJob.tenant_id, func.min(NotificationJob.due_at))
        .where(state_is(NotificationJob.status, JobStatus.SCHEDULED), NotificationJob.due_at < now)
        .group_by(NotificationJob.tenant_id)) if due is not None}


def fallback_counts(session: Session, *, since: datetime) -> list[tuple[str, int, str, int]]:
    """(tenant, step index from 0, channel, jobs) whose attempt on that step was made since `since` and whose
    cascade has since moved past it: the step ended without delivery (refused, failed, timed out, unknown) and
    passed to the next. Withdrawn attempts never went out; a job tried twice on one step counts once."""
    return [(tenant, step, channel, count) for tenant, step, channel, count in session.execute(
        select(NotificationJob.tenant_id, DeliveryAttempt.step, DeliveryAttempt.channel,
               func.count(func.distinct(DeliveryAttempt.job_id)))
        .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
        .where(DeliveryAttempt.created_at >= since, NotificationJob.cascade_step > DeliveryAttempt.step,
               DeliveryAttempt.status != AttemptStatus.WITHDRAWN.value)
        .group_by(NotificationJob.tenant_id, DeliveryAttempt.step, DeliveryAttempt.channel))]
