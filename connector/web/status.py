"""The support engineer's status page: server-rendered HTML, read-only, straight from the ledger.

`/status/<tenant>` (workers, syncs, today's jobs, the latest inbound events and bookings, a search by
booking id or phone), `/status/<tenant>/bookings/<id>` (jobs, attempts and the audit trail: the clinic's
proof of informing) and `/status/<tenant>/events/<id>` (what a source sent, as it sent it).

HTTP Basic: any user name, the password is CONNECTOR_API_TOKEN. Personal data never appears in clear:
phones are masked (in raw bodies and free texts too, by pattern), the patient's name parts are masked
wherever they occur, and name-like fields of a JSON body are masked by key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import defer

from connector.core.model import JobStatus
from connector.core.phones import mask_name, mask_phone, normalise_phone
from connector.core.redaction import masked_body, name_parts, scrub
from connector.store.models import (
    AuditEvent,
    Booking,
    DeliveryAttempt,
    InboundEvent,
    NotificationJob,
    Patient,
    SyncState,
    WorkerHeartbeat,
)
from connector.web.context import current_runtime

bp = Blueprint("status", __name__, url_prefix="/status")

REALM = 'Basic realm="connector status"'
LIST_LIMIT = 50
OVERDUE_LIMIT = 20
SEARCH_LIMIT = 100



@bp.before_request
def _require_password():
    rt = current_runtime()
    auth = request.authorization
    password = auth.password if auth is not None and auth.type == "basic" else None
    if not password or not hmac.compare_digest(password.encode(), rt.settings.api_token.encode()):
        body = render_template("status/error.html", title="Нужен пароль",
                               message="Войдите с любым именем и паролем CONNECTOR_API_TOKEN.")
        return Response(body, 401, {"WWW-Authenticate": REALM}, content_type="text/html; charset=utf-8")
    tenant_id = (request.view_args or {}).get("tenant_id")
    if tenant_id is not None and tenant_id not in rt.tenants:
        abort(404, f"Клиника {tenant_id!r} не настроена.")
    return None


@bp.after_request
def _private(response: Response) -> Response:
    # Personal data: never cached, never framed, no referrer leaking ids, no scripts at all.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
    return response


@bp.errorhandler(404)
def _not_found(error):
    return _error_page(404, "Не найдено", getattr(error, "description", None) or "Такой страницы нет.")


@bp.errorhandler(SQLAlchemyError)
def _database_down(_error):
    return _error_page(503, "База недоступна", "Журнал сейчас не читается; попробуйте через минуту.")


def _error_page(status: int, title: str, message: str):
    return render_template("status/error.html", title=title, message=message), status


# --- pages -------------------------------------------------------------------------------------------------


@bp.route("/<tenant_id>", methods=["GET", "POST"])
def overview(tenant_id: str):
    """POST carries the search, so a phone number typed in never lands in a URL, a history or a proxy log."""
    rt = current_runtime()
    tenant = rt.tenants[tenant_id]
    zone = ZoneInfo(tenant.timezone)
    now = rt.clock()
    day_start = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    query = (request.values.get("q") or "").strip()[:64]

    with rt.sessions() as session:
        beats = session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.beat_at.desc()).limit(20)).all()
        syncs = session.scalars(select(SyncState).where(SyncState.tenant_id == tenant_id)
                                .order_by(SyncState.source)).all()
        planned = _planned_time()
        today = dict(session.execute(
            select(NotificationJob.status, func.count())
            .where(NotificationJob.tenant_id == tenant_id, planned >= day_start,
                   planned < day_start + timedelta(days=1))
            .group_by(NotificationJob.status)).all())
        overdue_where = (NotificationJob.tenant_id == tenant_id, NotificationJob.status == JobStatus.SCHEDULED,
                         NotificationJob.due_at < now - rt.settings.late_after)
        overdue_count = session.scalar(select(func.count()).select_from(NotificationJob).where(*overdue_where))
        overdue = session.scalars(select(NotificationJob).where(*overdue_where)
                                  .options(defer(NotificationJob.rendered_text))
                                  .order_by(NotificationJob.due_at).limit(OVERDUE_LIMIT)).all()
        events = session.scalars(
            select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
            .options(defer(InboundEvent.body), defer(InboundEvent.headers))
            .order_by(InboundEvent.received_at.desc(), InboundEvent.id.desc()).limit(LIST_LIMIT)).all()
        search = _search(session, tenant_id, query) if query else None
        latest = session.scalars(select(Booking).where(Booking.tenant_id == tenant_id)
                                 .order_by(Booking.updated_at.desc(), Booking.id.desc()).limit(LIST_LIMIT)).all()
        shown = list(latest) + (search["bookings"] if search else [])
        rows = _booking_rows(session, shown)

    workers = [{"id": beat.worker_id, "beat_at": beat.beat_at, "started_at": beat.started_at,
                "age": round((now - beat.beat_at).total_seconds()), "sent_total": beat.sent_total,
                "alive": (now - beat.beat_at).total_seconds() <= rt.settings.stale_after_seconds} for beat in beats]
    return _render(
        "status/overview.html", tenant, zone,
        now=now, workers=workers, stale_after=rt.settings.stale_after_seconds, syncs=syncs,
        today=_ordered_counts(today), today_total=sum(today.values()),
        overdue=overdue, overdue_count=overdue_count or 0,
        late_after_minutes=int(rt.settings.late_after.total_seconds() // 60),
        events=[{"e": e, "error": scrub(e.error)} for e in events], bookings=[rows[b.id] for b in latest],
        search=None if search is None else {**search, "bookings": [rows[b.id] for b in search["bookings"]]},
        query_shown="" if search is None or search["phone"] else query,
    )


@bp.get("/<tenant_id>/bookings/<int:booking_id>")
def booking(tenant_id: str, booking_id: int):
    rt = current_runtime()
    tenant = rt.tenants[tenant_id]
    with rt.sessions() as session:
        found = session.get(Booking, booking_id)
        if found is None or found.tenant_id != tenant_id:
            abort(404, f"У клиники {tenant_id} нет записи №{booking_id}.")
        patient = session.get(Patient, found.patient_id) if found.patient_id else None
        jobs = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == found.id)
                               .order_by(_planned_time(), NotificationJob.id)).all()
        attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.job_id.in_([j.id for j in jobs]))
                                   .order_by(DeliveryAttempt.id)).all() if jobs else []
        trail = session.scalars(select(AuditEvent).where(AuditEvent.booking_id == found.id)
                                .order_by(AuditEvent.at, AuditEvent.id)).all()
        inbound = session.scalars(
            select(InboundEvent).where(InboundEvent.booking_id == found.id)
            .options(defer(InboundEvent.body), defer(InboundEvent.headers))
            .order_by(InboundEvent.received_at, InboundEvent.id)).all()

    names = _patient_names(patient)
    by_job: dict[int, list[DeliveryAttempt]] = {}
    for attempt in attempts:
        by_job.setdefault(attempt.job_id, []).append(attempt)
    kinds = {job.id: job.kind for job in jobs}
    channels = {attempt.id: attempt.channel for attempt in attempts}
    return _render(
        "status/booking.html", tenant, ZoneInfo(tenant.timezone),
        booking=found,
        local_zone=found.timezone if found.timezone and found.timezone != tenant.timezone else None,
        patient=None if patient is None else {
            "phone": mask_phone(patient.phone),
            "name": " ".join(mask_name(part) for part in
                             (patient.last_name, patient.first_name, patient.patronymic) if part),
        },
        jobs=[{"job": job, "text": scrub(job.rendered_text, names), "reason": scrub(job.status_reason, names),
               "due": job.planned_at or job.due_at,  # as planned (after quiet hours), as the API says it
               # when the worker takes it next: a fallback step, or work held back by a warm-up cap
               "next_try": job.next_try_at,
               "attempts": [{"a": a, "error": scrub(a.error, names)} for a in by_job.get(job.id, [])]}
              for job in jobs],
        trail=[{"e": e, "detail": scrub(e.detail, names), "kind": kinds.get(e.job_id),
                "channel": channels.get(e.attempt_id)} for e in trail],
        inbound=[{"e": e, "error": scrub(e.error, names)} for e in inbound],
    )


@bp.get("/<tenant_id>/events/<int:event_id>")
def event(tenant_id: str, event_id: int):
    rt = current_runtime()
    tenant = rt.tenants[tenant_id]
    with rt.sessions() as session:
        found = session.get(InboundEvent, event_id)
        if found is None or found.tenant_id != tenant_id:
            abort(404, f"У клиники {tenant_id} нет входящего события №{event_id}.")
        patient = session.scalar(select(Patient).join(Booking, Booking.patient_id == Patient.id)
                                 .where(Booking.id == found.booking_id)) if found.booking_id else None
        trail = session.scalars(select(AuditEvent).where(AuditEvent.inbound_event_id == found.id)
                                .order_by(AuditEvent.at, AuditEvent.id)).all()
    names = _patient_names(patient)
    body, is_json = masked_body(found.body, names)
    return _render(
        "status/event.html", tenant, ZoneInfo(tenant.timezone),
        event=found, body=body, is_json=is_json, error=scrub(found.error, names),
        headers=[(str(k), scrub(str(v), names)) for k, v in sorted((found.headers or {}).items())],
        trail=[{"e": e, "detail": scrub(e.detail, names)} for e in trail],
    )


# --- reading helpers ---------------------------------------------------------------------------------------


def _planned_time():
    """A job's due time as the plan chose it (`due_at` moves on with fallbacks and warm-up waits)."""
    return func.coalesce(NotificationJob.planned_at, NotificationJob.due_at)


def _search(session, tenant_id: str, query: str) -> dict[str, Any]:
    """Bookings whose external id is `query`, and, when it reads as a phone, the bookings of that patient."""
    phone = normalise_phone(query)
    conditions = [Booking.external_id == query]
    if phone is not None:
        patient_ids = select(Patient.id).where(Patient.tenant_id == tenant_id, Patient.phone == phone)
        conditions.append(Booking.patient_id.in_(patient_ids))
    found = session.scalars(select(Booking).where(Booking.tenant_id == tenant_id, or_(*conditions))
                            .order_by(Booking.starts_at.desc(), Booking.id.desc()).limit(SEARCH_LIMIT)).all()
    return {"phone": mask_phone(phone) if phone else None, "bookings": list(found)}


def _booking_rows(session, bookings: Iterable[Booking]) -> dict[int, dict[str, Any]]:
    """Each booking with its patient's masked phone and its jobs counted by status: two IN queries in all."""
    bookings = {b.id: b for b in bookings}
    patient_ids = {b.patient_id for b in bookings.values() if b.patient_id}
    phones = dict(session.execute(select(Patient.id, Patient.phone).where(Patient.id.in_(patient_ids))).all()) \
        if patient_ids else {}
    counts: dict[int, dict[str, int]] = {}
    if bookings:
        for booking_id, status, count in session.execute(
                select(NotificationJob.booking_id, NotificationJob.status, func.count())
                .where(NotificationJob.booking_id.in_(list(bookings)))
                .group_by(NotificationJob.booking_id, NotificationJob.status)):
            counts.setdefault(booking_id, {})[status] = count
    return {b.id: {"b": b, "phone": mask_phone(phones.get(b.patient_id)),
                   "jobs": _ordered_counts(counts.get(b.id, {}))} for b in bookings.values()}


_STATUS_ORDER = [status.value for status in JobStatus]


def _ordered_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (_STATUS_ORDER.index(item[0])
                                                     if item[0] in _STATUS_ORDER else len(_STATUS_ORDER), item[0]))


def _patient_names(patient: Patient | None) -> tuple[str, ...]:
    if patient is None:
        return ()
    return name_parts(last_name=patient.last_name, first_name=patient.first_name, patronymic=patient.patronymic)


# --- rendering ---------------------------------------------------------------------------------------------


def _render(template: str, tenant, zone: ZoneInfo, **context) -> str:
    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    def when_exact(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S %Z")

    def when_in(value: datetime | None, zone_name: str) -> str:
        return "" if value is None else value.astimezone(ZoneInfo(zone_name)).strftime("%d.%m.%Y %H:%M")

    return render_template(template, tenant=tenant, zone=zone.key, when=when, when_exact=when_exact,
                           when_in=when_in, **context)
