"""Use case: what staff do to a job or an event from the console or the command line — send a failed job again,
cancel a waiting one, send a waiting one now, replay a rejected event, push a failed report to the CRM again, see
a patient's phone — each checked by
the core's rule (connector.core.interventions) and written to the audit trail with the staff member's name.

A job sent again keeps its attempts (the proof of what was tried); it is scheduled due now on the chosen step, and
the worker's next pass starts a new sequence of attempts from there, exactly as for a fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.core.interventions import cancel_refusal, resend_refusal, retry_writeback_refusal, send_now_refusal
from connector.core.model import AuditWhat, JobStatus
from connector.core.wording import CHANNEL, INBOUND_OUTCOME, said
from connector.core.writeback import WritebackStatus
from connector.entrypoints.bootstrap import Runtime
from connector.store.ledger import audit, audit_row
from connector.store.models import Booking, InboundEvent, NotificationJob, Patient, Writeback
from connector.tenants import CHANNELS
from connector.usecases.patients import set_patient_opt_outs
from connector.usecases.replay import Replayed, replay, settle


@dataclass(frozen=True)
class Done:
    """What became of one asked action: done or not, and one line saying so (in Russian, for the page and the
    command line alike)."""

    id: int
    ok: bool
    message: str


def resend(runtime: Runtime, job_id: int, *, staff: str, from_step: int = 0, tenant_id: str | None = None) -> Done:
    """Send a failed or expired job again from `from_step` (counted from 0) of its tenant's cascade."""
    with runtime.sessions.begin() as session:
        job, visit = _job(session, job_id, tenant_id)
        if job is None:
            return Done(job_id, False, f"сообщения №{job_id} нет")
        tenant = runtime.tenants.get(job.tenant_id)
        steps = tenant.cascade if tenant is not None else ()
        now = runtime.clock()
        why = resend_refusal(job.status, kind=job.kind, visit_start=visit, step=from_step, steps=len(steps), now=now)
        if why is not None:
            return Done(job_id, False, f"сообщение №{job_id}: {why}")
        where = f"с шага {from_step + 1} ({said(CHANNEL, steps[from_step].channel)})"
        job.status, job.cascade_step, job.due_at = JobStatus.SCHEDULED, from_step, now
        job.status_reason = f"отправить ещё раз {where}: {staff}"
        job.step_deadline = job.lease_owner = job.lease_until = None
        job.updated_at = now
        session.add(audit(job, now, AuditWhat.STAFF_RESEND, f"{staff}: {where}"))
    return Done(job_id, True, f"сообщение №{job_id} уйдёт ещё раз {where}")


def cancel(runtime: Runtime, job_id: int, *, staff: str, tenant_id: str | None = None) -> Done:
    """Cancel a job still waiting to be sent."""
    with runtime.sessions.begin() as session:
        job, _visit = _job(session, job_id, tenant_id)
        if job is None:
            return Done(job_id, False, f"сообщения №{job_id} нет")
        why = cancel_refusal(job.status)
        if why is not None:
            return Done(job_id, False, f"сообщение №{job_id}: {why}")
        now = runtime.clock()
        job.status, job.status_reason, job.updated_at = JobStatus.CANCELLED, f"отменил(а) {staff}", now
        session.add(audit(job, now, AuditWhat.STAFF_CANCEL, staff))
    return Done(job_id, True, f"сообщение №{job_id} отменено")


def send_now(runtime: Runtime, job_id: int, *, staff: str, tenant_id: str | None = None) -> Done:
    """Send a waiting job at the worker's next pass, whatever its planned time and the quiet hours."""
    with runtime.sessions.begin() as session:
        job, visit = _job(session, job_id, tenant_id)
        if job is None:
            return Done(job_id, False, f"сообщения №{job_id} нет")
        now = runtime.clock()
        why = send_now_refusal(job.status, kind=job.kind, visit_start=visit, now=now)
        if why is not None:
            return Done(job_id, False, f"сообщение №{job_id}: {why}")
        job.due_at, job.updated_at = now, now
        job.status_reason = f"отправить сейчас: {staff}"
        session.add(audit(job, now, AuditWhat.STAFF_SEND_NOW, staff))
    return Done(job_id, True, f"сообщение №{job_id} уйдёт сейчас")


def replay_events(runtime: Runtime, event_ids: Sequence[int], *, staff: str, tenant_id: str | None = None,
                  apply: Callable[[Runtime, Sequence[int]], object] = lambda runtime, _ids: settle(runtime)
                  ) -> list[Done]:
    """Apply rejected inbound events again (connector.usecases.replay); a line in the trail for each that was."""
    with runtime.sessions() as session:
        known = {row.id: row.tenant_id for row in session.execute(
            select(InboundEvent.id, InboundEvent.tenant_id).where(InboundEvent.id.in_(list(event_ids))))}
    ours = [event_id for event_id in event_ids if event_id in known and tenant_id in (None, known[event_id])]
    results = {result.event_id: result for result in replay(runtime, ours, apply=apply)} if ours else {}
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        rows = {row.id: row for row in session.scalars(select(InboundEvent).where(InboundEvent.id.in_(ours)))}
        for event_id, result in results.items():
            row = rows[event_id]
            session.add(audit_row(tenant_id=row.tenant_id, at=now, what=AuditWhat.STAFF_REPLAY,
                                  detail=f"{staff}: {said(INBOUND_OUTCOME, result.outcome)}", booking_id=row.booking_id,
                                  inbound_event_id=row.id))
    return [_replayed(event_id, results.get(event_id)) for event_id in event_ids]


def retry_writeback(runtime: Runtime, writeback_id: int, *, staff: str, tenant_id: str | None = None) -> Done:
    """Push a report to the CRM again that failed for good: pending at once, with a whole new round of tries."""
    with runtime.sessions.begin() as session:
        row = session.get(Writeback, writeback_id, with_for_update=True)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
            return Done(writeback_id, False, f"записи в CRM №{writeback_id} нет")
        newer = session.scalar(select(func.count()).select_from(Writeback).where(
            Writeback.booking_id == row.booking_id, Writeback.target == row.target, Writeback.id > row.id)) or 0
        why = retry_writeback_refusal(row.status, newer=newer > 0)
        if why is not None:
            return Done(writeback_id, False, f"запись в CRM №{writeback_id}: {why}")
        now = runtime.clock()
        row.status, row.tries, row.next_try_at, row.updated_at = WritebackStatus.PENDING, 0, now, now
        session.add(audit_row(tenant_id=row.tenant_id, at=now, what=AuditWhat.STAFF_RETRY_WRITEBACK,
                              detail=f"{staff}: {row.target}", booking_id=row.booking_id, job_id=row.job_id))
    return Done(writeback_id, True, f"запись в CRM №{writeback_id} уйдёт ещё раз")


def reveal_phone(runtime: Runtime, booking_id: int, *, staff: str, tenant_id: str) -> str | None:
    """The booking's patient's phone in full (E.164), and a line in the trail saying who saw it; None: no phone."""
    with runtime.sessions.begin() as session:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.tenant_id != tenant_id or booking.patient_id is None:
            return None
        patient = session.get(Patient, booking.patient_id)
        if patient is None:  # pragma: no cover - a booking's patient is never deleted
            return None
        session.add(audit_row(tenant_id=tenant_id, at=runtime.clock(), what=AuditWhat.STAFF_PHONE_SHOWN,
                              detail=staff, booking_id=booking.id))
        return patient.phone


def set_opt_outs(runtime: Runtime, booking_id: int, channels: Collection[str], *, staff: str, tenant_id: str) -> Done:
    """The channels the booking's patient asked not to be reached on (on the phone, at the desk), exactly these;
    a line in the trail says who set which."""
    with runtime.sessions.begin() as session:
        booking = session.get(Booking, booking_id)
        if booking is None or booking.tenant_id != tenant_id or booking.patient_id is None:
            return Done(booking_id, False, f"у записи №{booking_id} нет пациента")
        now = runtime.clock()
        set_patient_opt_outs(session, patient_id=booking.patient_id, channels=channels, now=now)
        named = ", ".join(said(CHANNEL, channel) for channel in CHANNELS if channel in channels)
        which = f"не писать в {named}" if named else "отказов нет, пишем во все каналы каскада"
        session.add(audit_row(tenant_id=tenant_id, at=now, what=AuditWhat.STAFF_OPT_OUTS,
                              detail=f"{staff}: {which}", booking_id=booking.id))
    return Done(booking_id, True, f"пациент записи №{booking_id}: {which}")


def _job(session: Session, job_id: int, tenant_id: str | None) -> tuple[NotificationJob | None, datetime | None]:
    """The job, locked (a worker or a receipt may be moving it now), and its visit's start; (None, None) when
    there is none for this tenant."""
    job = session.get(NotificationJob, job_id, with_for_update=True)
    if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
        return None, None
    visit = session.scalar(select(Booking.starts_at).where(Booking.id == job.booking_id)) if job.booking_id else None
    return job, visit


def _replayed(event_id: int, result: Replayed | None) -> Done:
    if result is None:
        return Done(event_id, False, f"события №{event_id} нет")
    worded = said(INBOUND_OUTCOME, result.outcome)
    detail = f": {result.detail}" if result.detail and result.outcome != "applied" else ""
    return Done(event_id, result.outcome not in ("rejected", "missing"), f"событие №{event_id}: {worded}{detail}")
