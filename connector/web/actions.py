"""The console's actions: send a job again, cancel it, send it now, replay a rejected event, push a failed report
to the CRM again, see a phone.

Each is a POST with the CSRF token (connector.web.access: CSRFProtect checks it before the view runs). The first
POST of an action only shows what it will do and asks to confirm (no scripts on these pages, so no
`confirm()`): only a POST carrying `confirmed=1` acts. What was done goes to the audit trail with the staff
member's name (connector.usecases.staff_actions) and is said once on the page it returns to.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask import session as session_store
from flask.typing import ResponseReturnValue

from connector.core.wording import CHANNEL, JOB_KIND, said
from connector.store import console_views
from connector.store.models import Booking, InboundEvent, NotificationJob, Writeback
from connector.tenants import CHANNELS, Tenant
from connector.usecases import staff_actions
from connector.usecases.refusals import UNAUTHENTICATED
from connector.web.access import current_staff, requires
from connector.web.context import current_runtime
from connector.web.status import bp

BULK_REPLAY = 200  # rejected events replayed by one press of the button, newest first

ACTIONS = {
    "resend": ("Отправить ещё раз", "Да, отправить ещё раз"),
    "cancel": ("Отменить сообщение", "Да, отменить"),
    "send-now": ("Отправить сейчас", "Да, отправить сейчас"),
}


@bp.post("/<tenant_id>/bookings/<int:booking_id>/jobs/<int:job_id>/<any(resend, cancel, 'send-now'):action>")
@requires("operator")
def job_action(tenant_id: str, booking_id: int, job_id: int, action: str) -> ResponseReturnValue:
    runtime = current_runtime()
    with runtime.sessions() as session:
        job = session.get(NotificationJob, job_id)
        if job is None or job.tenant_id != tenant_id or job.booking_id != booking_id:
            abort(404, f"У записи №{booking_id} нет сообщения №{job_id}.")
        kind = job.kind
    tenant = runtime.tenants[tenant_id]
    step = min(max(request.form.get("step", 0, type=int) or 0, 0), len(tenant.cascade) - 1)
    if request.form.get("confirmed") != "1":
        where = f" с шага {step + 1} ({said(CHANNEL, tenant.cascade[step].channel)})" if action == "resend" else ""
        return _confirm(
            tenant, title=ACTIONS[action][0], button=ACTIONS[action][1],
            question=f"{ACTIONS[action][0]}{where}: {said(JOB_KIND, kind)} №{job_id} записи №{booking_id}?",
            back=url_for("status.booking", tenant_id=tenant_id, booking_id=booking_id),
            fields={"step": step} if action == "resend" else {})
    who = current_staff().name
    if action == "resend":
        done = staff_actions.resend(runtime, job_id, staff=who, from_step=step, tenant_id=tenant_id)
    elif action == "cancel":
        done = staff_actions.cancel(runtime, job_id, staff=who, tenant_id=tenant_id)
    else:
        done = staff_actions.send_now(runtime, job_id, staff=who, tenant_id=tenant_id)
    _said(done)
    return redirect(url_for("status.booking", tenant_id=tenant_id, booking_id=booking_id), 303)


@bp.post("/<tenant_id>/events/<int:event_id>/replay")
@requires("operator")
def replay(tenant_id: str, event_id: int) -> ResponseReturnValue:
    runtime = current_runtime()
    with runtime.sessions() as session:
        found = session.get(InboundEvent, event_id)
        if found is None or found.tenant_id != tenant_id:
            abort(404, f"У клиники {tenant_id} нет входящего события №{event_id}.")
    if request.form.get("confirmed") != "1":
        return _confirm(
            runtime.tenants[tenant_id], title="Обработать событие заново", button="Да, обработать заново",
            question=f"Разобрать событие №{event_id} заново сегодняшним кодом и применить?",
            back=url_for("status.event", tenant_id=tenant_id, event_id=event_id))
    [done] = staff_actions.replay_events(runtime, [event_id], staff=current_staff().name, tenant_id=tenant_id)
    _said(done)
    return redirect(url_for("status.event", tenant_id=tenant_id, event_id=event_id), 303)


@bp.post("/<tenant_id>/events/replay-rejected")
@requires("operator")
def replay_rejected(tenant_id: str) -> ResponseReturnValue:
    """Every rejected event (of one source) made pending again, newest first, at most BULK_REPLAY: after a fix
    (a mapping, a token, a CRM back up) support replays the lot; the worker applies them, not this request."""
    runtime = current_runtime()
    source = request.form.get("source") or None
    with runtime.sessions() as session:
        ids = console_views.rejected_ids(session, tenant_id=tenant_id, source=source, excluding=UNAUTHENTICATED,
                                         limit=BULK_REPLAY)
    back = url_for("status.events", tenant_id=tenant_id, source=source, outcome="rejected")
    if not ids:
        flash("Отклонённых событий, которые можно обработать заново, нет.", "refused")
        return redirect(back, 303)
    if request.form.get("confirmed") != "1":
        return _confirm(
            runtime.tenants[tenant_id], title="Обработать заново отклонённые", button="Да, обработать заново",
            question=f"Разобрать заново сегодняшним кодом {len(ids)} отклонённых событий"
                     f"{f' из {source}' if source else ''} (сначала новые) и отдать их воркеру?",
            back=back, fields={"source": source} if source else {})
    done = staff_actions.replay_events(runtime, ids, staff=current_staff().name, tenant_id=tenant_id,
                                       apply=lambda _runtime, _ids: None)  # the worker's intake applies them
    queued = sum(1 for item in done if item.ok)
    message = f"{queued} из {len(ids)} событий снова в очереди: воркер применит их в течение минуты"
    if queued < len(ids):
        message += "; остальные по-прежнему не разобрать (их причина — на странице события)"
    flash(message, "ok" if queued else "refused")
    return redirect(back, 303)


@bp.post("/<tenant_id>/bookings/<int:booking_id>/writebacks/<int:writeback_id>/retry")
@requires("operator")
def retry_writeback(tenant_id: str, booking_id: int, writeback_id: int) -> ResponseReturnValue:
    runtime = current_runtime()
    with runtime.sessions() as session:
        row = session.get(Writeback, writeback_id)
        if row is None or row.tenant_id != tenant_id or row.booking_id != booking_id:
            abort(404, f"У записи №{booking_id} нет записи в CRM №{writeback_id}.")
        target = row.target
    back = url_for("status.booking", tenant_id=tenant_id, booking_id=booking_id)
    if request.form.get("confirmed") != "1":
        return _confirm(
            runtime.tenants[tenant_id], title="Повторить запись в CRM", button="Да, повторить",
            question=f"Записать в {target} ещё раз отчёт №{writeback_id} записи №{booking_id}?", back=back)
    _said(staff_actions.retry_writeback(runtime, writeback_id, staff=current_staff().name, tenant_id=tenant_id))
    return redirect(back, 303)


def _confirm(tenant: Tenant, *, title: str, button: str, question: str, back: str,
             fields: dict[str, object] | None = None) -> ResponseReturnValue:
    """The page that asks before an action is done: the same form posted again with `confirmed=1`."""
    return render_template("status/confirm.html", tenant=tenant, zone=tenant.timezone, staff=current_staff(),
                           title=title, button=button, question=question, back=back, fields=fields or {})


def _said(done: staff_actions.Done) -> None:
    """What became of the action, once, on the page the browser is sent back to."""
    flash(done.message[:1].upper() + done.message[1:], "ok" if done.ok else "refused")


@bp.post("/<tenant_id>/bookings/<int:booking_id>/opt-outs")
@requires("operator")
def opt_outs(tenant_id: str, booking_id: int) -> ResponseReturnValue:
    """The channels the patient asked not to be reached on, exactly those ticked; the cascade skips them."""
    channels = [channel for channel in request.form.getlist("opt_out") if channel in CHANNELS]
    _said(staff_actions.set_opt_outs(current_runtime(), booking_id, channels, staff=current_staff().name,
                                     tenant_id=tenant_id))
    return redirect(url_for("status.booking", tenant_id=tenant_id, booking_id=booking_id), 303)


@bp.post("/<tenant_id>/bookings/<int:booking_id>/phone")
@requires("admin")
def show_phone(tenant_id: str, booking_id: int) -> ResponseReturnValue:
    """The patient's phone in full on the booking's next render; who asked is written in the trail."""
    runtime = current_runtime()
    with runtime.sessions() as session:
        found = session.get(Booking, booking_id)
        if found is None or found.tenant_id != tenant_id:
            abort(404, f"У клиники {tenant_id} нет записи №{booking_id}.")
    if staff_actions.reveal_phone(runtime, booking_id, staff=current_staff().name, tenant_id=tenant_id):
        session_store["phone_shown_for"] = booking_id
    return redirect(url_for("status.booking", tenant_id=tenant_id, booking_id=booking_id), 303)
