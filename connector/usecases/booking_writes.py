"""The intake's write phase for one round of judged events: patients, bookings, their jobs, the trail and each
event's outcome, with one statement per kind of row (connector.store.intake), never one per event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from connector.core.intake import Change, booking_change, content_hash
from connector.core.model import AuditWhat, BookingState, InboundOutcome, JobStatus
from connector.core.recipients import follow_booking
from connector.core.versions import newest
from connector.store.intake import HeldJobs, cancel_jobs, hand_jobs, upsert_patients
from connector.store.mapping import copy_facts
from connector.store.models import AuditEvent, Booking, InboundEvent, NotificationJob

if TYPE_CHECKING:
    from connector.usecases.intake import Plan

_SOON = timedelta(seconds=5)  # a job due within this is "due now": the dispatcher is woken for it


class BookingWrites:
    def __init__(self, session: Session, now: datetime):
        self.session, self.now = session, now
        self.trail: list[dict[str, Any]] = []  # audit rows, inserted in one statement at the end

    def apply(self, plans: Sequence[Plan], jobs: HeldJobs) -> bool:
        """Write the round; whether a job due at once was planned."""
        changed = [plan for plan in plans if plan.verdict.change is not None]
        self._bookings(plans, changed)
        self._settle(plans)
        self._cancel(changed, jobs)
        self._follow(changed, jobs)
        due_now = self._add(changed)
        if self.trail:
            self.session.execute(insert(AuditEvent), self.trail)
        self.session.flush()
        return due_now

    def _line(self, booking: Booking, row: InboundEvent, now: datetime, what: AuditWhat, detail: str | None,
              job_id: int | None = None) -> dict[str, Any]:
        return {"tenant_id": booking.tenant_id, "booking_id": booking.id, "job_id": job_id, "attempt_id": None,
                "inbound_event_id": row.id, "at": now, "what": AuditWhat(what).value, "detail": detail}

    def _bookings(self, plans: Sequence[Plan], changed: Sequence[Plan]) -> None:
        """Patients upserted, bookings written (new ones inserted): one flush for all."""
        patients = upsert_patients(self.session, [(plan.tenant.id, plan.event.facts.patient) for plan in changed
                                                  if plan.event.facts is not None], self.now)
        for plan in plans:
            if plan.booking is not None and plan.verdict.touches_booking:
                plan.booking.source_version = newest(plan.booking.source_version, plan.event.version)
        for plan in changed:
            booking = plan.booking
            if booking is None:
                booking = plan.booking = Booking(tenant_id=plan.tenant.id, source=plan.row.source,
                                                 external_id=plan.event.external_id, created_at=self.now)
                self.session.add(booking)
            facts = plan.event.facts
            if plan.verdict.change is not Change.CANCEL and facts is not None:
                copy_facts(booking, facts, default_tz=plan.tenant.timezone,
                           patient_id=patients.get((plan.tenant.id, facts.patient.phone or "")))
                booking.content_hash = content_hash(facts)
            if plan.verdict.change is not Change.UPSERT:
                booking.state = BookingState.CANCELLED
            booking.source_version = newest(booking.source_version, plan.event.version)
            booking.updated_at = self.now
        self.session.flush()

    def _settle(self, plans: Sequence[Plan]) -> None:
        """Each event's outcome, and the booking's trail line for it."""
        for plan in plans:
            row, verdict, booking = plan.row, plan.verdict, plan.booking
            row.outcome, row.error, row.applied_at = verdict.outcome, verdict.detail, self.now
            if booking is None or not (verdict.touches_booking or verdict.change):
                continue
            row.booking_id = booking.id
            if verdict.change is Change.UPSERT:
                assert plan.current is not None
                what, detail = booking_change(plan.previous, plan.current)
            elif verdict.change is not None:
                what, detail = AuditWhat.BOOKING_CANCELLED, "deleted at the source"
            else:
                what, detail = AuditWhat.of_inbound(InboundOutcome(verdict.outcome)), verdict.detail
            self.trail.append(self._line(booking, row, self.now, what, detail))

    def _cancel(self, changed: Sequence[Plan], jobs: HeldJobs) -> None:
        """The plans' cancellations of jobs still waiting, one UPDATE per reason (a job a worker claimed
        meanwhile goes on)."""
        by_reason: dict[str, list[int]] = {}
        whose: dict[int, Plan] = {}
        for plan in changed:
            if not plan.diff.cancel or plan.booking is None:
                continue
            waiting: dict[str, list[int]] = {}
            for row in jobs.of(plan.booking.id):
                if row.status == JobStatus.SCHEDULED:
                    waiting.setdefault(row.plan_key, []).append(row.id)
            for cancellation in plan.diff.cancel:
                for job_id in waiting.get(cancellation.key, ()):
                    by_reason.setdefault(cancellation.reason, []).append(job_id)
                    whose[job_id] = plan
        for reason, ids in by_reason.items():
            for job_id in sorted(cancel_jobs(self.session, ids, reason=reason, now=self.now)):
                plan = whose[job_id]
                assert plan.booking is not None
                self.trail.append(self._line(plan.booking, plan.row, self.now, AuditWhat.JOB_CANCELLED, reason,
                                                job_id))
                jobs.cancelled.add(job_id)

    def _follow(self, changed: Sequence[Plan], jobs: HeldJobs) -> None:
        """Jobs still waiting follow their booking's patient now. Jobs in flight keep theirs until the worker
        prepares their next step (it checks again there), so that a late receipt for a message that went to
        the previous number is not taken as news about the new patient."""
        for plan in changed:
            booking = plan.booking
            assert booking is not None
            notes = {}
            for row in jobs.of(booking.id):
                if row.status == JobStatus.SCHEDULED and row.id not in jobs.cancelled:
                    _, note = follow_booking(row.patient_id, booking.patient_id, has_booking=True)
                    if note is not None:
                        notes[row.id] = note
            if notes:
                for job_id in sorted(hand_jobs(self.session, list(notes), patient_id=booking.patient_id,
                                               now=self.now)):
                    self.trail.append(self._line(booking, plan.row, self.now, AuditWhat.JOB_RECIPIENT,
                                                    notes[job_id], job_id))

    def _add(self, changed: Sequence[Plan]) -> bool:
        """The plans' new jobs, flushed together for their ids; an audit line each (planned, or skipped and why)."""
        added = []
        for plan in changed:
            booking = plan.booking
            assert booking is not None
            for planned in plan.diff.add:
                job = dict(
                    tenant_id=booking.tenant_id, booking_id=booking.id, patient_id=booking.patient_id,
                    kind=planned.kind.value, plan_key=planned.key, planned_at=planned.due_at, due_at=planned.due_at,
                    status=planned.status.value, status_reason=planned.note, cascade_step=0, created_at=self.now,
                    updated_at=self.now, step_deadline=None, rendered_text=None, lease_owner=None, lease_until=None)
                added.append((plan, planned, job))
        ids = list(self.session.scalars(insert(NotificationJob).returning(
            NotificationJob.id, sort_by_parameter_order=True), [job for _, _, job in added])) if added else []
        for (plan, planned, _), job_id in zip(added, ids, strict=True):
            what = AuditWhat.JOB_SKIPPED if planned.status == JobStatus.SKIPPED else AuditWhat.JOB_PLANNED
            detail = f"{planned.kind} due {planned.due_at.isoformat()}" + (f"; {planned.note}" if planned.note else "")
            assert plan.booking is not None
            self.trail.append(self._line(plan.booking, plan.row, self.now, what, detail, job_id))
        soon = self.now + _SOON
        return any(planned.status == JobStatus.SCHEDULED and planned.due_at <= soon for _, planned, _ in added)

