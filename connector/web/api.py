"""JSON API for integrators and support: a booking with its jobs and audit trail, inbound events, and a
patient's bot invitations and opt-outs."""

from __future__ import annotations

import base64
import re
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connector.core.invites import BOT_LINKS, invite_link
from connector.core.phones import mask_phone, normalise_phone
from connector.store.models import (
    AuditEvent,
    Booking,
    DeliveryAttempt,
    InboundEvent,
    NotificationJob,
    Patient,
    PatientChannel,
)
from connector.web.auth import require_api_token
from connector.web.times import utc_iso

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _require_token():
    from connector.web import runtime

    require_api_token()
    tenant_id = (request.view_args or {}).get("tenant_id")
    if tenant_id is not None and tenant_id not in runtime().tenants:
        abort(404, f"no tenant {tenant_id!r} is configured")


@bp.errorhandler(SQLAlchemyError)
def _database_down(_error):
    return jsonify(error="database_unavailable", message="the ledger cannot be read right now"), 503


@bp.get("/<tenant_id>/bookings/<source>/<external_id>")
def booking(tenant_id: str, source: str, external_id: str):
    from connector.web import runtime

    with runtime().sessions() as session:
        found = session.scalars(select(Booking).where(
            Booking.tenant_id == tenant_id, Booking.source == source, Booking.external_id == external_id)
        ).one_or_none()
        if found is None:
            abort(404, f"no booking {source}/{external_id} for tenant {tenant_id}")
        patient = session.get(Patient, found.patient_id) if found.patient_id else None
        jobs = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == found.id)
                               .order_by(NotificationJob.due_at, NotificationJob.id)).all()
        attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.job_id.in_([j.id for j in jobs]))
                                   .order_by(DeliveryAttempt.id)).all()
        events = session.scalars(select(AuditEvent).where(AuditEvent.booking_id == found.id)
                                 .order_by(AuditEvent.at, AuditEvent.id)).all()
    by_job: dict[int, list[DeliveryAttempt]] = {}
    for attempt in attempts:
        by_job.setdefault(attempt.job_id, []).append(attempt)
    zone = ZoneInfo(found.timezone)
    return jsonify(
        id=found.id,
        source=found.source,
        external_id=found.external_id,
        starts_at=found.starts_at.astimezone(zone).isoformat(),
        timezone=found.timezone,
        state=found.state,
        doctor=found.doctor_name,
        specialty=found.doctor_specialty,
        services=found.services,
        patient=None if patient is None else {"phone": mask_phone(patient.phone)},
        updated_at=utc_iso(found.updated_at),
        jobs=[_job(job, by_job.get(job.id, [])) for job in jobs],
        events=[{"at": utc_iso(e.at), "what": e.what, "detail": e.detail, "job_id": e.job_id} for e in events],
    )


@bp.get("/<tenant_id>/inbound-events")
def inbound_events(tenant_id: str):
    from connector.web import runtime

    limit = _limit(request.args.get("limit", "50"))
    if limit is None:
        return jsonify(error="bad_request", field="limit", message="limit must be a whole number from 1 to 500"), 400
    query = select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
    if request.args.get("outcome"):
        query = query.where(InboundEvent.outcome == request.args["outcome"])
    with runtime().sessions() as session:
        rows = session.scalars(query.order_by(InboundEvent.id.desc()).limit(limit)).all()
    return jsonify(events=[{
        "id": row.id, "source": row.source, "received_at": utc_iso(row.received_at), "outcome": row.outcome,
        "error": row.error, "external_id": row.external_id, "booking_id": row.booking_id,
        "body_truncated": row.body_truncated, "body": row.body,
        # The exact bytes, where the readable body is not them (not UTF-8, or a NUL): for replay.
        **({"body_base64": base64.b64encode(row.body_raw).decode()} if row.body_raw is not None else {}),
    } for row in rows])


def _limit(raw: str) -> int | None:
    """1 to 500 (more is read as 500); None for anything that is not plainly a positive whole number."""
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1:
        return None
    return min(int(raw), 500)


@bp.get("/<tenant_id>/patients/<phone>/invitations")
def invitations(tenant_id: str, phone: str):
    """Deep links to the clinic's bots for one patient: opening one links their chat to their record."""
    from connector.web import runtime

    rt = runtime()
    with rt.sessions() as session:
        patient = _patient(session, tenant_id, phone)
    tenant = rt.tenants[tenant_id]
    links = {provider: invite_link(provider, settings.bot_name, patient.id, rt.settings.link_secret)
             for provider, settings in tenant.provider_settings.items() if provider in BOT_LINKS and settings.bot_name}
    return jsonify(patient={"phone": mask_phone(patient.phone)}, links=links)


@bp.put("/<tenant_id>/patients/<phone>/opt-outs")
def opt_outs(tenant_id: str, phone: str):
    """The channels a patient asked not to be reached on (the CRM's unsubscribe flag, a «СТОП» reply)."""
    from connector.web import runtime

    body = request.get_json(silent=True)
    channels = body.get("channels") if isinstance(body, dict) else None
    known = ("max", "telegram", "whatsapp", "sms")
    if not isinstance(channels, list) or not all(channel in known for channel in channels):
        abort(422, f'send {{"channels": [...]}} with any of {", ".join(known)}')
    rt = runtime()
    now = rt.clock()
    with rt.sessions.begin() as session:
        patient = _patient(session, tenant_id, phone)
        rows = {row.channel: row for row in session.scalars(
            select(PatientChannel).where(PatientChannel.patient_id == patient.id))}
        for channel in known:
            row = rows.get(channel)
            if row is None and channel not in channels:
                continue
            if row is None:
                row = PatientChannel(patient_id=patient.id, channel=channel)
                session.add(row)
            row.opted_out = channel in channels
            row.updated_at = now
    return jsonify(patient={"phone": mask_phone(patient.phone)}, opted_out=sorted(channels))


def _patient(session, tenant_id: str, phone: str) -> Patient:
    e164 = normalise_phone(phone)
    if e164 is None:
        abort(422, "not a phone number")
    query = select(Patient).where(Patient.tenant_id == tenant_id, Patient.phone == e164)
    patient = session.scalars(query).one_or_none()
    if patient is None:
        abort(404, "no patient with this phone number")
    return patient


def _job(job: NotificationJob, attempts: list[DeliveryAttempt]) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "key": job.plan_key,
        "due_at": utc_iso(job.planned_at or job.due_at),  # as planned (after quiet hours)
        # when the worker takes it next: a fallback step, or work held back by a warm-up cap
        "next_try_at": utc_iso(job.next_try_at),
        "status": job.status,
        # awaiting_delivery: when the step times out; on the last step, past its timeout, when the wait for a
        # receipt ends (then `unconfirmed`)
        "deadline": utc_iso(job.step_deadline),
        "reason": job.status_reason,
        "text": job.rendered_text,
        "attempts": [{
            "channel": a.channel, "provider": a.provider, "status": a.status, "error": a.error,
            "created_at": utc_iso(a.created_at), "sent_at": utc_iso(a.sent_at), "delivered_at": utc_iso(a.delivered_at),
            "read_at": utc_iso(a.read_at), "polled_at": utc_iso(a.polled_at),  # when the provider was last asked
        } for a in attempts],
    }
