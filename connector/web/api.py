"""Read-only JSON API for integrators and support: a booking with its jobs and audit trail, inbound events."""

from __future__ import annotations

import hmac
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from connector.core.phones import mask_phone
from connector.store.models import AuditEvent, Booking, DeliveryAttempt, InboundEvent, NotificationJob, Patient

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.before_request
def _require_token():
    from connector.web import runtime

    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        abort(401, "send Authorization: Bearer <CONNECTOR_API_TOKEN>")
    if not hmac.compare_digest(token.strip().encode(), runtime().settings.api_token.encode()):
        abort(401, "wrong API token")
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
        updated_at=_utc(found.updated_at),
        jobs=[_job(job, by_job.get(job.id, [])) for job in jobs],
        events=[{"at": _utc(e.at), "what": e.what, "detail": e.detail, "job_id": e.job_id} for e in events],
    )


@bp.get("/<tenant_id>/inbound-events")
def inbound_events(tenant_id: str):
    from connector.web import runtime

    limit = min(int(request.args.get("limit", 50)), 500)
    query = select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
    if request.args.get("outcome"):
        query = query.where(InboundEvent.outcome == request.args["outcome"])
    with runtime().sessions() as session:
        rows = session.scalars(query.order_by(InboundEvent.id.desc()).limit(limit)).all()
    return jsonify(events=[{
        "id": row.id, "source": row.source, "received_at": _utc(row.received_at), "outcome": row.outcome,
        "error": row.error, "external_id": row.external_id, "booking_id": row.booking_id,
        "body_truncated": row.body_truncated, "body": row.body,
    } for row in rows])


def _job(job: NotificationJob, attempts: list[DeliveryAttempt]) -> dict:
    return {
        "id": job.id,
        "kind": job.kind,
        "key": job.plan_key,
        "due_at": _utc(job.due_at),
        "status": job.status,
        "reason": job.status_reason,
        "text": job.rendered_text,
        "attempts": [{
            "channel": a.channel, "provider": a.provider, "status": a.status, "error": a.error,
            "created_at": _utc(a.created_at), "sent_at": _utc(a.sent_at), "delivered_at": _utc(a.delivered_at),
            "read_at": _utc(a.read_at),
        } for a in attempts],
    }


def _utc(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
