"""JSON API for integrators and support: a booking with its jobs and audit trail, inbound events, and a
patient's bot invitations and opt-outs."""

from __future__ import annotations

import base64
import re
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from connector.core.invites import BOT_LINKS, invite_link
from connector.core.phones import mask_phone, normalise_phone
from connector.core.writeback import WritebackStatus
from connector.store import views
from connector.store.models import DeliveryAttempt, InboundEvent, NotificationJob, Writeback
from connector.tenants import CHANNELS
from connector.usecases import patients
from connector.web.auth import require_scope
from connector.web.context import current_runtime
from connector.web.times import utc_iso

bp = Blueprint("api", __name__, url_prefix="/api/v1")


# The scope each route needs beyond reading (connector.web.auth); a changing route not named here needs admin.
SCOPES = {"api.opt_outs": "send"}


@bp.before_request
def _require_token():
    tenant_id = (request.view_args or {}).get("tenant_id")
    reads = request.method in ("GET", "HEAD", "OPTIONS")
    require_scope(tenant_id, "read" if reads else SCOPES.get(request.endpoint or "", "admin"))
    if tenant_id is not None and tenant_id not in current_runtime().tenants:
        abort(404, f"no tenant {tenant_id!r} is configured")


@bp.errorhandler(SQLAlchemyError)
def _database_down(_error):
    return jsonify(error="database_unavailable", message="the ledger cannot be read right now"), 503


@bp.get("/<tenant_id>/bookings/<source>/<external_id>")
def booking(tenant_id: str, source: str, external_id: str) -> Response:
    with current_runtime().sessions() as session:
        trail = views.booking_trail(session, tenant_id=tenant_id, source=source, external_id=external_id)
    if trail is None:
        abort(404, f"no booking {source}/{external_id} for tenant {tenant_id}")
    found, patient = trail.booking, trail.patient
    jobs = sorted(trail.jobs, key=lambda job: (job.due_at, job.id))  # when the worker takes each next
    return jsonify(
        id=found.id,
        source=found.source,
        external_id=found.external_id,
        starts_at=found.starts_at.astimezone(ZoneInfo(found.timezone)).isoformat(),
        timezone=found.timezone,
        state=found.state,
        doctor=found.doctor_name,
        specialty=found.doctor_specialty,
        services=found.services,
        patient=None if patient is None else {"phone": mask_phone(patient.phone)},
        updated_at=utc_iso(found.updated_at),
        jobs=[_job(job, trail.attempts.get(job.id, [])) for job in jobs],
        events=[{"at": utc_iso(e.at), "what": e.what, "detail": e.detail, "job_id": e.job_id} for e in trail.audit],
        writebacks=[_writeback(row) for row in trail.writebacks],  # what its CRM was told, oldest first
    )


@bp.get("/<tenant_id>/inbound-events")
def inbound_events(tenant_id: str) -> ResponseReturnValue:
    limit = _limit(request.args.get("limit", "50"))
    if limit is None:
        return jsonify(error="bad_request", field="limit", message="limit must be a whole number from 1 to 500"), 400
    with current_runtime().sessions() as session:
        rows = views.inbound_events(session, tenant_id=tenant_id, outcome=request.args.get("outcome"), limit=limit)
    return jsonify(events=[_inbound_event(row) for row in rows])


@bp.get("/<tenant_id>/inbound-events/<int:event_id>")
def inbound_event(tenant_id: str, event_id: int) -> ResponseReturnValue:
    """One inbound event: `pending` until the worker's intake applies it, then its outcome and booking."""
    with current_runtime().sessions() as session:
        row = views.inbound_event(session, tenant_id=tenant_id, event_id=event_id)
    if row is None:
        abort(404, "no such inbound event for this tenant")
    return jsonify(_inbound_event(row))


@bp.get("/<tenant_id>/writebacks")
def writebacks(tenant_id: str) -> ResponseReturnValue:
    """The outbox: what was (or is to be) reported to the clinic's CRM, newest first; `?status=pending|sent|failed`
    (or sending, replaced), `limit`, and `before=<id>` for the next page."""
    limit = _limit(request.args.get("limit", "50"))
    if limit is None:
        return jsonify(error="bad_request", field="limit", message="limit must be a whole number from 1 to 500"), 400
    status = request.args.get("status") or None
    if status is not None and status not in set(WritebackStatus):
        return jsonify(error="bad_request", field="status",
                       message=f"status must be one of {', '.join(WritebackStatus)}"), 400
    before = request.args.get("before")
    if before is not None and not re.fullmatch(r"[0-9]{1,12}", before):
        return jsonify(error="bad_request", field="before", message="before must be an outbox row id"), 400
    with current_runtime().sessions() as session:
        rows = views.writebacks(session, tenant_id=tenant_id, status=status, limit=limit,
                                before=int(before) if before is not None else None)
    return jsonify(writebacks=[_writeback(row) for row in rows],
                   next_before=rows[-1].id if len(rows) == limit else None)


def _writeback(row: Writeback) -> dict[str, Any]:
    return {
        "id": row.id, "target": row.target, "booking_id": row.booking_id, "job_id": row.job_id,
        "status": row.status, "text": row.text, "word": row.word, "at": utc_iso(row.at), "tries": row.tries,
        "last_error": row.last_error, "next_try_at": utc_iso(row.next_try_at) if row.status == "pending" else None,
        "sent_at": utc_iso(row.sent_at), "created_at": utc_iso(row.created_at), "details": row.details,
    }


def _inbound_event(row: InboundEvent) -> dict[str, Any]:
    return {
        "id": row.id, "source": row.source, "received_at": utc_iso(row.received_at), "outcome": row.outcome,
        "error": row.error, "external_id": row.external_id, "booking_id": row.booking_id, "booking": row.booking_id,
        "applied_at": utc_iso(row.applied_at) if row.applied_at else None,
        "body_truncated": row.body_truncated, "body": row.body,
        # The exact bytes, where the readable body is not them (not UTF-8, or a NUL): for replay.
        **({"body_base64": base64.b64encode(row.body_raw).decode()} if row.body_raw is not None else {}),
    }


def _limit(raw: str) -> int | None:
    """1 to 500 (more is read as 500); None for anything that is not plainly a positive whole number."""
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1:
        return None
    return min(int(raw), 500)


@bp.get("/<tenant_id>/patients/<phone>/invitations")
def invitations(tenant_id: str, phone: str) -> Response:
    """Deep links to the clinic's bots for one patient: opening one links their chat to their record."""
    runtime = current_runtime()
    e164 = _phone(phone)
    with runtime.sessions() as session:
        patient = views.patient_by_phone(session, tenant_id=tenant_id, phone=e164)
    if patient is None:
        abort(404, "no patient with this phone number")
    tenant = runtime.tenants[tenant_id]
    links = {provider: invite_link(provider, settings.bot_name, patient.id, runtime.settings.link_secret)
             for provider, settings in tenant.provider_settings.items() if provider in BOT_LINKS and settings.bot_name}
    return jsonify(patient={"phone": mask_phone(patient.phone)}, links=links)


@bp.put("/<tenant_id>/patients/<phone>/opt-outs")
def opt_outs(tenant_id: str, phone: str) -> Response:
    """The channels a patient asked not to be reached on (the CRM's unsubscribe flag, a «СТОП» reply)."""
    body = request.get_json(silent=True)
    channels = body.get("channels") if isinstance(body, dict) else None
    if not isinstance(channels, list) or not all(channel in CHANNELS for channel in channels):
        abort(422, f'send {{"channels": [...]}} with any of {", ".join(CHANNELS)}')
    e164 = _phone(phone)
    runtime = current_runtime()
    try:
        with runtime.sessions.begin() as session:
            patients.set_opt_outs(session, tenant_id=tenant_id, phone=e164, channels=channels, now=runtime.clock())
    except patients.UnknownPatientError:
        abort(404, "no patient with this phone number")
    return jsonify(patient={"phone": mask_phone(e164)}, opted_out=sorted(channels))


def _phone(raw: str) -> str:
    """The path's phone in E.164, or 422."""
    e164 = normalise_phone(raw)
    if e164 is None:
        abort(422, "not a phone number")
    return e164


def _job(job: NotificationJob, attempts: list[DeliveryAttempt]) -> dict[str, Any]:
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
