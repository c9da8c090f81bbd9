"""The support engineer's status page: server-rendered HTML, read-only, straight from the ledger.

`/status/<tenant>` (workers, syncs, today's jobs, the latest inbound events and bookings, a search by
booking id or phone), `/status/<tenant>/bookings/<id>` (jobs, attempts and the audit trail: the clinic's
proof of informing) and `/status/<tenant>/events/<id>` (what a source sent, as it sent it).

Signed-in staff only (connector.web.access: the guard, roles, a user's tenants). Personal data never appears in clear:
phones are masked (in raw bodies and free texts too, by pattern), the patient's name parts are masked
wherever they occur, and name-like fields of a JSON body are masked by key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from connector.config import Settings
from connector.core.early_receipts import HOLD_FOR
from connector.core.model import JobStatus
from connector.core.phones import mask_name, mask_phone
from connector.core.redaction import masked_body, name_parts, scrub
from connector.store import views
from connector.store.models import Patient
from connector.tenants import Tenant
from connector.web.access import guard, secure_headers
from connector.web.context import current_runtime

bp = Blueprint("status", __name__, url_prefix="/status")


bp.before_request(guard)  # signed out → the sign-in page; another tenant → 404; sets flask.g.staff
bp.after_request(secure_headers)


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
def overview(tenant_id: str) -> str:
    """POST carries the search, so a phone number typed in never lands in a URL, a history or a proxy log."""
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    zone = ZoneInfo(tenant.timezone)
    now = runtime.clock()
    query = (request.values.get("q") or "").strip()[:64]
    with runtime.sessions() as session:
        seen = views.overview(session, tenant_id=tenant_id, now=now, zone=zone, query=query,
                              late_after=runtime.settings.late_after)
    return _render("status/overview.html", tenant, zone, now=now,
                   **_overview_context(seen, now=now, query=query, settings=runtime.settings))


@bp.get("/<tenant_id>/bookings/<int:booking_id>")
def booking(tenant_id: str, booking_id: int) -> str:
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    with runtime.sessions() as session:
        trail = views.booking_trail_by_id(session, tenant_id=tenant_id, booking_id=booking_id)
    if trail is None:
        abort(404, f"У клиники {tenant_id} нет записи №{booking_id}.")
    return _render("status/booking.html", tenant, ZoneInfo(tenant.timezone), **_booking_context(trail, tenant))


@bp.get("/<tenant_id>/events/<int:event_id>")
def event(tenant_id: str, event_id: int) -> str:
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    with runtime.sessions() as session:
        trail = views.event_trail(session, tenant_id=tenant_id, event_id=event_id)
    if trail is None:
        abort(404, f"У клиники {tenant_id} нет входящего события №{event_id}.")
    names = _patient_names(trail.patient)
    body, is_json = masked_body(trail.event.body, names)
    return _render(
        "status/event.html", tenant, ZoneInfo(tenant.timezone),
        event=trail.event, body=body, is_json=is_json, error=scrub(trail.event.error, names),
        headers=[(str(k), scrub(str(v), names)) for k, v in sorted((trail.event.headers or {}).items())],
        trail=[{"e": e, "detail": scrub(e.detail, names)} for e in trail.audit],
    )


# --- what the pages show: the read models, masked -------------------------------------------------------------


def _overview_context(seen: views.Overview, *, now: datetime, query: str, settings: Settings) -> dict[str, Any]:
    workers = [{"id": beat.worker_id, "beat_at": beat.beat_at, "started_at": beat.started_at,
                "age": round((now - beat.beat_at).total_seconds()), "sent_total": beat.sent_total,
                "alive": (now - beat.beat_at).total_seconds() <= settings.stale_after_seconds}
               for beat in seen.heartbeats]
    search = seen.search
    return dict(
        workers=workers, stale_after=settings.stale_after_seconds, syncs=seen.syncs,
        today=_ordered_counts(seen.today), today_total=sum(seen.today.values()),
        overdue=seen.overdue, overdue_count=seen.overdue_count,
        late_after_minutes=int(settings.late_after.total_seconds() // 60),
        events=[{"e": e, "error": scrub(e.error)} for e in seen.events],
        bookings=[_booking_row(row) for row in seen.bookings],
        search=None if search is None else {"phone": mask_phone(search.phone) if search.phone else None,
                                            "bookings": [_booking_row(row) for row in search.bookings]},
        query_shown="" if search is None or search.phone else query,
        held=[{"r": r, "until": r.received_at + HOLD_FOR} for r in seen.held],
    )


def _booking_row(row: views.BookingRow) -> dict[str, Any]:
    return {"b": row.booking, "phone": mask_phone(row.phone), "jobs": _ordered_counts(row.job_counts)}


def _booking_context(trail: views.BookingTrail, tenant: Tenant) -> dict[str, Any]:
    found, patient = trail.booking, trail.patient
    names = _patient_names(patient)
    kinds: dict[int | None, str] = {job.id: job.kind for job in trail.jobs}
    channels: dict[int | None, str] = {a.id: a.channel for attempts in trail.attempts.values() for a in attempts}
    return dict(
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
               "attempts": [{"a": a, "error": scrub(a.error, names)} for a in trail.attempts.get(job.id, [])]}
              for job in trail.jobs],
        trail=[{"e": e, "detail": scrub(e.detail, names), "kind": kinds.get(e.job_id),
                "channel": channels.get(e.attempt_id)} for e in trail.audit],
        inbound=[{"e": e, "error": scrub(e.error, names)} for e in trail.inbound],
    )


_STATUS_ORDER = [status.value for status in JobStatus]


def _ordered_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (_STATUS_ORDER.index(item[0])
                                                     if item[0] in _STATUS_ORDER else len(_STATUS_ORDER), item[0]))


def _patient_names(patient: Patient | None) -> tuple[str, ...]:
    if patient is None:
        return ()
    return name_parts(last_name=patient.last_name, first_name=patient.first_name, patronymic=patient.patronymic)


# --- rendering ---------------------------------------------------------------------------------------------


def _render(template: str, tenant: Tenant, zone: ZoneInfo, **context: Any) -> str:
    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    def when_exact(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S %Z")

    def when_in(value: datetime | None, zone_name: str) -> str:
        return "" if value is None else value.astimezone(ZoneInfo(zone_name)).strftime("%d.%m.%Y %H:%M")

    return render_template(template, tenant=tenant, zone=zone.key, when=when, when_exact=when_exact,
                           when_in=when_in, **context)
