"""The mappings between database rows and the core's values, in one place: a due job's rows read as the core's
DueJob and Reach (and the batch they come from), a booking row read as BookingFacts (to render a message),
BookingFacts written onto a booking row (intake), and a job's visit as its fallback's time needs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from connector.core.cascade import Decision
from connector.core.model import AttemptStatus, BookingFacts, BookingState, JobKind, Sex
from connector.core.model import Patient as PatientFacts
from connector.core.preparation import DueJob
from connector.core.quiet_hours import schedule_fallback
from connector.core.unknown import UNKNOWN_MARK
from connector.store.models import Booking, DeliveryAttempt, NotificationJob, Patient, PatientChannel, PatientLink
from connector.tenants import Tenant


@dataclass
class DueBatch:
    """Claimed jobs with their booking and recipient (the booking's patient as it stands now), and what the
    ledger knows of those patients and of the jobs' unfinished sends: four queries for the whole batch."""

    rows: Sequence[tuple[NotificationJob, Booking | None, Patient | None]]
    channels: dict[int, list[PatientChannel]] = field(default_factory=dict)  # patient id → its channel memory
    links: dict[int, dict[str, str]] = field(default_factory=dict)  # patient id → provider → bot address
    unfinished: dict[int, list[DeliveryAttempt]] = field(default_factory=dict)  # job id → its queued attempts
    unknown_before: dict[int, list[int]] = field(default_factory=dict)  # job id → steps of earlier unknown calls

    def opted_out(self, patient: Patient) -> frozenset[str]:
        return frozenset(row.channel for row in self.channels.get(patient.id, ()) if row.opted_out)

    def absent(self, patient: Patient, now: datetime) -> frozenset[str]:
        """Channels the patient is remembered not to be on, while the memory lasts."""
        return frozenset(row.channel for row in self.channels.get(patient.id, ())
                         if row.not_registered_until and row.not_registered_until > now)


def load_due(session: Session, ids: Sequence[int]) -> DueBatch:
    # The recipient is the booking's patient as it stands now (connector.core.recipients), not the job's.
    recipient = case((NotificationJob.booking_id.is_(None), NotificationJob.patient_id), else_=Booking.patient_id)
    rows = session.execute(
        select(NotificationJob, Booking, Patient)
        .outerjoin(Booking, NotificationJob.booking_id == Booking.id)
        .outerjoin(Patient, Patient.id == recipient)
        .where(NotificationJob.id.in_(ids))
    ).all()
    batch = DueBatch(rows)
    patient_ids = {patient.id for _, _, patient in rows if patient is not None}
    for row in session.scalars(select(PatientChannel).where(PatientChannel.patient_id.in_(patient_ids))):
        batch.channels.setdefault(row.patient_id, []).append(row)
    for link in session.scalars(select(PatientLink).where(
            PatientLink.patient_id.in_(patient_ids), PatientLink.active.is_(True))):
        if link.patient_id is not None:
            batch.links.setdefault(link.patient_id, {})[link.provider] = link.address
    for attempt in session.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.job_id.in_(ids), DeliveryAttempt.status == AttemptStatus.QUEUED)):
        batch.unfinished.setdefault(attempt.job_id, []).append(attempt)
    for job_id, step in session.execute(select(DeliveryAttempt.job_id, DeliveryAttempt.step).where(
            DeliveryAttempt.job_id.in_(ids), DeliveryAttempt.status != AttemptStatus.QUEUED,
            DeliveryAttempt.error.startswith(UNKNOWN_MARK))):
        batch.unknown_before.setdefault(job_id, []).append(step)
    return batch


def due_job(job: NotificationJob, booking: Booking | None, unfinished: Sequence[DeliveryAttempt],
            unknown_before: Sequence[int] = ()) -> DueJob:
    return DueJob(kind=JobKind(job.kind), has_booking=booking is not None,
                  booking_state=BookingState(booking.state) if booking else None,
                  visit_start=booking.starts_at if booking else None, planned_patient=job.patient_id,
                  booking_patient=booking.patient_id if booking else None, start_step=job.cascade_step,
                  # Only a call that began may have reached the provider; one never started is withdrawn.
                  lost_steps=tuple(attempt.step for attempt in unfinished if attempt.started_at is not None),
                  unknown_before=tuple(unknown_before))


def booking_facts(booking: Booking | None, patient: Patient) -> BookingFacts:
    """What a message about the booking says, read from its rows (results and recalls are not planned yet)."""
    person = PatientFacts(phone=patient.phone, first_name=patient.first_name, last_name=patient.last_name,
                          patronymic=patient.patronymic, sex=Sex(patient.sex or "unknown"))
    if booking is None:
        raise ValueError("results and recalls are not planned yet")
    return BookingFacts(
        external_id=booking.external_id, starts_at=booking.starts_at, state=BookingState(booking.state),
        timezone=booking.timezone, patient=person, doctor_name=booking.doctor_name,
        doctor_specialty=booking.doctor_specialty, services=tuple(booking.services or ()),
        preparation=booking.preparation, comment=booking.comment, branch_id=booking.branch_id,
        address=booking.address)


def copy_facts(booking: Booking, facts: BookingFacts, *, default_tz: str, patient_id: int | None) -> None:
    """Write what a source said of a booking onto its row."""
    # YCLIENTS and the mappings send whole records: no phone now means the client was taken off the visit (or
    # never given), and keeping the previous one would send this visit's details to whoever that was.
    booking.patient_id = patient_id
    booking.starts_at = facts.starts_at
    booking.timezone = facts.timezone or default_tz
    booking.duration_s = int(facts.duration.total_seconds()) if facts.duration else None
    booking.state = facts.state
    booking.doctor_name = facts.doctor_name
    booking.doctor_specialty = facts.doctor_specialty
    booking.services = list(facts.services)
    booking.preparation = facts.preparation
    booking.comment = facts.comment
    booking.branch_id = facts.branch_id
    booking.address = facts.address


def fallback_scheduled(decision: Decision, *, job: NotificationJob, tenant: Tenant,
                       visits: Mapping[int, tuple[datetime, str]], now: datetime) -> Decision:
    """The decision with its fallback's time, from the job's visit (`visits`: booking id → start and zone, as
    `ledger.visit_times` reads them) and the tenant's quiet hours."""
    start, zone = visits.get(job.booking_id, (None, tenant.timezone)) if job.booking_id else (None, tenant.timezone)
    return schedule_fallback(decision, now=now, kind=JobKind(job.kind), visit_start=start,
                             quiet=tenant.policy.quiet_hours, tz=zone)
