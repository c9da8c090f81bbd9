"""The support console's pages: server-rendered HTML in Russian, straight from the ledger, no scripts.

`/status/<tenant>` (what is wrong now: the queue, inbound events, workers; delivery figures per channel and a
chart; the latest events and bookings; a search by phone, surname or booking id, POSTed so a phone never lands
in a URL), `/status/<tenant>/events` (inbound events, filtered and paged), `/status/<tenant>/bookings/<id>` (one
timeline of everything: the clinic's proof of informing, with the actions) and `/status/<tenant>/events/<id>`
(what a source sent, as it sent it). The actions themselves are in connector.web.actions.

Signed-in staff only (connector.web.access: the guard, roles, a user's tenants). Staff see patients' names;
phones are masked everywhere (in raw bodies and free texts too, by pattern) unless an admin asks to see one,
which is audited; name-like fields of a raw JSON body are masked by key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, render_template, request
from flask import session as session_store
from sqlalchemy.exc import SQLAlchemyError

from connector.config import Settings
from connector.core.early_receipts import HOLD_FOR
from connector.core.figures import ChannelFigures, by_channel, by_step
from connector.core.interventions import RESENDABLE
from connector.core.model import AuditWhat, InboundOutcome, JobStatus
from connector.core.phones import mask_name, mask_phone
from connector.core.redaction import mask_phones, masked_body, name_parts, scrub
from connector.core.wording import (
    ATTEMPT_STATUS,
    BOOKING_STATE,
    CHANNEL,
    INBOUND_OUTCOME,
    INBOUND_REASON,
    JOB_KIND,
    JOB_STATUS,
    WRITEBACK,
    audit_line,
    channel_memory,
    duration_phrase,
    local_time,
    reason_phrase,
    said,
)
from connector.core.writeback import WritebackStatus
from connector.store import console_views, views
from connector.tenants import Tenant
from connector.web.access import current_staff, guard, secure_headers
from connector.web.chart import deliveries_svg
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
    query = (request.form.get("q") or request.args.get("q") or "").strip()[:64]
    with runtime.sessions() as session:
        seen = views.overview(session, tenant_id=tenant_id, now=now, zone=zone, query=query,
                              late_after=runtime.settings.late_after)
        groups = console_views.attempt_groups(session, tenant_id=tenant_id, now=now, zone=zone)
        daily = console_views.daily_deliveries(session, tenant_id=tenant_id, now=now, zone=zone)
        waiting = console_views.queue(session, tenant_id=tenant_id, now=now)
        writebacks = console_views.writeback_trouble(session, tenant_id=tenant_id)
    return _render("status/overview.html", tenant, zone, now=now,
                   **_overview_context(seen, now=now, query=query, settings=runtime.settings),
                   windows=[(name, label, _in_cascade_order(by_channel(groups, name), tenant), by_step(groups, name))
                            for name, label in (("today", "сегодня"), ("24h", "24 часа"), ("7d", "7 дней"))],
                   chart=deliveries_svg(daily.days, daily.by_channel), queue=waiting, writebacks=writebacks,
                   lag=None if waiting.oldest_due is None else max(now - waiting.oldest_due, timedelta(0)))


@bp.get("/<tenant_id>/events")
def events(tenant_id: str) -> str:
    """The tenant's inbound events, newest first, by source and outcome, a page at a time."""
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    source = request.args.get("source") or None
    outcome = request.args.get("outcome") or None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    with runtime.sessions() as session:
        found = console_views.events_page(session, tenant_id=tenant_id, source=source, outcome=outcome, page=page)
    return _render("status/events.html", tenant, ZoneInfo(tenant.timezone), found=found, source=source,
                   outcome=outcome, outcomes=[o.value for o in InboundOutcome],
                   events=[{"e": e, "error": scrub(e.error)} for e in found.events])


@bp.get("/<tenant_id>/bookings/<int:booking_id>")
def booking(tenant_id: str, booking_id: int) -> str:
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    with runtime.sessions() as session:
        trail = views.booking_trail_by_id(session, tenant_id=tenant_id, booking_id=booking_id)
    if trail is None:
        abort(404, f"У клиники {tenant_id} нет записи №{booking_id}.")
    # «показать»: the admin's POST was audited; the phone shows on this one render, then is masked again.
    shown = session_store.pop("phone_shown_for", None) == booking_id
    zone = ZoneInfo(tenant.timezone)
    return _render("status/booking.html", tenant, zone,
                   **_booking_context(trail, tenant, zone=zone, now=runtime.clock(), phone_shown=shown))


@bp.get("/<tenant_id>/events/<int:event_id>")
def event(tenant_id: str, event_id: int) -> str:
    runtime = current_runtime()
    tenant = runtime.tenants[tenant_id]
    with runtime.sessions() as session:
        trail = views.event_trail(session, tenant_id=tenant_id, event_id=event_id)
    if trail is None:
        abort(404, f"У клиники {tenant_id} нет входящего события №{event_id}.")
    patient = trail.patient
    names = () if patient is None else name_parts(last_name=patient.last_name, first_name=patient.first_name,
                                                   patronymic=patient.patronymic)
    body, is_json = masked_body(trail.event.body, names)
    zone, now = ZoneInfo(tenant.timezone), runtime.clock()
    return _render(
        "status/event.html", tenant, zone,
        event=trail.event, body=body, is_json=is_json, error=scrub(trail.event.error, names),
        replayable=trail.event.outcome == InboundOutcome.REJECTED,
        headers=[(str(k), scrub(str(v), names)) for k, v in sorted((trail.event.headers or {}).items())],
        trail=[{"e": e, "line": scrub(audit_line(e.what, e.detail, zone=zone, now=now), names)}
               for e in trail.audit],
    )


def _in_cascade_order(rows: list[ChannelFigures], tenant: Tenant) -> list[ChannelFigures]:
    """Channels as the cascade tries them (those it no longer has last), so the table reads like the cascade."""
    order = tenant.channels
    return sorted(rows, key=lambda row: (order.index(row.channel) if row.channel in order else len(order),
                                         row.channel))


# --- what the pages show: the read models, phones masked -------------------------------------------------------


def _overview_context(seen: views.Overview, *, now: datetime, query: str, settings: Settings) -> dict[str, Any]:
    workers = [{"id": beat.worker_id, "beat_at": beat.beat_at, "started_at": beat.started_at,
                "age": round((now - beat.beat_at).total_seconds()), "sent_total": beat.sent_total,
                "alive": (now - beat.beat_at).total_seconds() <= settings.stale_after_seconds}
               for beat in seen.heartbeats]
    search = seen.search
    return dict(
        workers=[w for w in workers if w["alive"]], dead_workers=[w for w in workers if not w["alive"]],
        stale_after=settings.stale_after_seconds, syncs=seen.syncs,
        today=_ordered_counts(seen.today), today_total=sum(seen.today.values()),
        overdue=seen.overdue, overdue_count=seen.overdue_count,
        late_after_minutes=int(settings.late_after.total_seconds() // 60),
        events=[{"e": e, "error": scrub(e.error)} for e in seen.events[:EVENTS_ON_OVERVIEW]],
        bookings=[_booking_row(row) for row in seen.bookings],
        search=None if search is None else {"phone": mask_phone(search.phone) if search.phone else None,
                                            "bookings": [_booking_row(row) for row in search.bookings]},
        query_shown="" if search is None or search.phone else query,
        held=[{"r": r, "until": r.received_at + HOLD_FOR} for r in seen.held],
    )


EVENTS_ON_OVERVIEW = 15


def _booking_row(row: views.BookingRow) -> dict[str, Any]:
    # In a list the name is masked like the phone (the full name is on the booking's own page).
    return {"b": row.booking, "phone": mask_phone(row.phone), "name": " ".join(map(mask_name, row.name.split())),
            "jobs": _ordered_counts(row.job_counts)}


def _booking_context(trail: views.BookingTrail, tenant: Tenant, *, zone: ZoneInfo, now: datetime,
                     phone_shown: bool) -> dict[str, Any]:
    found, patient = trail.booking, trail.patient
    kinds: dict[int | None, str] = {job.id: job.kind for job in trail.jobs}
    steps = [(index, f"{index + 1}. {said(CHANNEL, step.channel)}") for index, step in enumerate(tenant.cascade)]
    return dict(
        booking=found, steps=steps, now=now,
        local_zone=found.timezone if found.timezone and found.timezone != tenant.timezone else None,
        patient=None if patient is None else {
            "phone": patient.phone if phone_shown else mask_phone(patient.phone), "phone_shown": phone_shown,
            "name": " ".join(part for part in (patient.last_name, patient.first_name, patient.patronymic) if part),
            "channels": [line for line in (
                channel_memory(row.channel, opted_out=row.opted_out, not_registered_until=row.not_registered_until,
                               last_delivered_at=row.last_delivered_at, zone=zone, now=now)
                for row in trail.channels) if line],
            "others": trail.others,
            "opted_out": {row.channel for row in trail.channels if row.opted_out},
        },
        jobs=[{"job": job, "text": mask_phones(job.rendered_text or ""),
               "reason": scrub(reason_phrase(job.status_reason, zone=zone, now=now)),
               "due": job.planned_at or job.due_at,  # as planned (after quiet hours), as the API says it
               # when the worker takes it next: a fallback step, or work held back by a warm-up cap
               "next_try": job.next_try_at,
               "resendable": job.status in RESENDABLE, "waiting": job.status == JobStatus.SCHEDULED,
               "attempts": _attempt_rows(trail, job.id, zone=zone, now=now)}
              for job in trail.jobs],
        timeline=_timeline(trail, kinds, zone=zone, now=now),
        inbound=[{"e": e, "error": scrub(e.error)} for e in trail.inbound],
        writebacks=[{"w": w, "error": scrub(w.last_error), "retryable": w.status == WritebackStatus.FAILED}
                    for w in trail.writebacks],
    )


def _attempt_rows(trail: views.BookingTrail, job_id: int, *, zone: ZoneInfo, now: datetime) -> list[dict[str, Any]]:
    """A job's attempts, oldest first; where a sequence starts again (sent again by staff, or once more on the same
    step after a lost answer) the row says so, and who asked."""
    resends = [e for e in trail.audit if e.job_id == job_id and e.what == AuditWhat.STAFF_RESEND]
    rows, previous = [], None
    for attempt in trail.attempts.get(job_id, []):
        again = None
        if previous is not None and attempt.step <= previous.step:
            asked = [e for e in resends if previous.created_at <= e.at <= attempt.created_at]
            again = f"отправлено ещё раз: {asked[-1].detail}" if asked else "ещё раз тем же шагом"
        rows.append({"a": attempt, "again": again, "error": scrub(reason_phrase(attempt.error, zone=zone, now=now))})
        previous = attempt
    return rows


def _timeline(trail: views.BookingTrail, kinds: dict[int | None, str], *, zone: ZoneInfo,
              now: datetime) -> list[dict[str, Any]]:
    """Everything that happened to the booking, oldest first: each inbound event as it came, each line of the
    trail (what the intake, the worker, the providers' receipts and staff did), worded, and each report to the
    CRM with where it stands now."""
    channels: dict[int | None, str] = {a.id: a.channel for attempts in trail.attempts.values() for a in attempts}
    rows: list[dict[str, Any]] = [
        {"at": e.received_at, "order": 0, "who": "source", "event_id": e.id, "job_id": None, "kind": "",
         "channel": "", "what": "inbound", "line": f"пришло событие из {e.source}: {said(INBOUND_OUTCOME, e.outcome)}"
                                               + (f" ({scrub(e.error)})" if e.error else "")}
        for e in trail.inbound]
    rows += [{"at": w.created_at, "order": 2, "who": "crm", "event_id": None, "job_id": w.job_id,
              "kind": said(JOB_KIND, kinds.get(w.job_id)), "channel": "",
              "line": f"отчёт в CRM ({w.target}) «{w.text}»: {said(WRITEBACK, w.status)}"
                      + (f", попыток {w.tries}" if w.tries > 1 else "")
                      + (f" ({scrub(w.last_error)})" if w.last_error else ""), "what": "writeback"}
             for w in trail.writebacks]
    rows += [{"at": e.at, "order": 1, "who": e.what.split(".")[0], "event_id": e.inbound_event_id, "job_id": e.job_id,
              "kind": said(JOB_KIND, kinds.get(e.job_id)), "channel": said(CHANNEL, channels.get(e.attempt_id)),
              "what": e.what, "line": scrub(audit_line(e.what, e.detail, zone=zone, now=now))}
             for e in trail.audit]
    return sorted(rows, key=lambda row: (row["at"], row["order"]))


_STATUS_ORDER = [status.value for status in JobStatus]


def _ordered_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (_STATUS_ORDER.index(item[0])
                                                     if item[0] in _STATUS_ORDER else len(_STATUS_ORDER), item[0]))


# --- rendering ---------------------------------------------------------------------------------------------


def _render(template: str, tenant: Tenant, zone: ZoneInfo, **context: Any) -> str:
    now = context.get("now") or current_runtime().clock()

    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M")

    def when_exact(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(zone).strftime("%d.%m.%Y %H:%M:%S %Z")

    def when_in(value: datetime | None, zone_name: str) -> str:
        return "" if value is None else value.astimezone(ZoneInfo(zone_name)).strftime("%d.%m.%Y %H:%M")

    def short(value: datetime | None) -> str:
        return "" if value is None else local_time(value, zone, now)

    def short_s(value: datetime | None) -> str:
        return "" if value is None else local_time(value, zone, now, seconds=True)

    return render_template(template, tenant=tenant, zone=zone.key, when=when, when_exact=when_exact,
                           when_in=when_in, short=short, short_s=short_s, said=said, words=WORDS,
                           duration=duration_phrase, staff=current_staff(), generated_at=now, **context)


WORDS = {"job": JOB_STATUS, "attempt": ATTEMPT_STATUS, "kind": JOB_KIND, "channel": CHANNEL,
         "outcome": INBOUND_OUTCOME, "reason": INBOUND_REASON, "booking": BOOKING_STATE,
         "worker": {"alive": "работает", "dead": "молчит"}, "writeback": WRITEBACK}


from connector.web import actions  # noqa: E402,F401  (its routes join this blueprint)
