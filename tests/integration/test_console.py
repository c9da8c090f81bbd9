"""The support console through Flask on SQLite and PostgreSQL: what staff see (figures, the chart, the queue, inbound
events, a booking's timeline, the search) and what they do (send again, cancel, send now, replay, see a phone),
each action confirmed, CSRF-protected, allowed by role and written to the trail with the staff member's name."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connector.entrypoints.worker import Worker
from connector.store.models import (
    AuditEvent,
    Booking,
    DeliveryAttempt,
    InboundEvent,
    NotificationJob,
    PatientChannel,
)
from connector.web import create_app
from tests.conftest import DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import accept, event_of
from tests.staff import admin, csrf_token, sign_in, staff_runtime, user

WEBHOOK = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, outside quiet hours
FAILING = "+7 (916) 123-45-67"  # the sandbox fails every channel for a phone ending in 7
DELIVERED = "+7 (916) 123-45-60"  # and delivers on MAX for one ending in 0


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def runtime(database_url: str) -> Iterator:
    rt = staff_runtime(database_url, staff=[
        admin(), user("olga", "operator", name="Ольга Сидорова"), user("vera", "viewer", name="Вера"),
        user("stranger", "admin", frozenset({"elsewhere"}), name="Чужой")])
    rt.clock = Clock(START)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def app(runtime):
    return create_app(runtime)


def book(client, record_id: int, phone: str, surname: str = "Смирнов", visit: datetime | None = None) -> int:
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    if visit is not None:
        body["data"]["datetime"] = visit.isoformat()
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = phone
    body["data"]["client"]["surname"] = surname
    return accept(client, WEBHOOK, json=body)


def work(runtime, passes: int = 8) -> None:
    """The worker's passes, half a minute apart: intake, sends, the sandbox's reports, fallbacks."""
    worker = Worker(runtime, concurrency=2, name="t")
    try:
        for _ in range(passes):
            worker.tick()
            runtime.clock.now += timedelta(seconds=30)
        worker.heartbeat()
    finally:
        worker.close()


@pytest.fixture
def ledger(app, runtime):
    """Two bookings: one whose confirmation every channel failed (phone …67), one delivered on MAX (…60)."""
    client = app.test_client()
    failing = book(client, 7001, FAILING, surname="Петров")
    delivered = book(client, 7000, DELIVERED)
    work(runtime)
    booking = event_of(client, WEBHOOK, failing)["booking_id"]
    with runtime.sessions() as session:
        job = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == booking,
                                                            NotificationJob.kind == "confirmation")).one()
    assert job.status == "failed"
    return {"booking": booking, "job": job.id, "delivered": event_of(client, WEBHOOK, delivered)["booking_id"]}


def signed_in(app, login: str):
    client = app.test_client()
    sign_in(client, login)
    return client


def text_of(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:800]
    return html.unescape(response.get_data(as_text=True))


def post(client, path: str, data: dict | None = None, page: str | None = None):
    """A form's POST as a browser sends it: with the CSRF token of the page it is on."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page or "/status/demo")})


def attempts(runtime, job_id: int) -> list[tuple[int, str, str]]:
    with runtime.sessions() as session:
        return [(a.step, a.channel, a.status) for a in session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.job_id == job_id).order_by(DeliveryAttempt.id))]


def trail(runtime, what: str) -> list[AuditEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.what == what)))


# --- what staff see --------------------------------------------------------------------------------------------


def test_the_overview_counts_each_channel_rates_each_step_and_draws_the_week(app, runtime, ledger):
    text = text_of(signed_in(app, "vera").get("/status/demo"))
    # a page that does not refresh itself says when its figures were read, in the clinic's time
    stamp = runtime.clock().astimezone(ZoneInfo("Europe/Moscow")).strftime("%d.%m %H:%M:%S")
    assert f"данные на {stamp}, время: Europe/Moscow" in text
    today = text[text.index('id="figures-today"'):text.index('id="figures-24h"')]
    rows = {cells[0]: cells[1:] for cells in (re.findall(r"<td[^>]*>([^<]*)</td>", row)
                                             for row in re.findall(r"<tr><td>.*?</tr>", today))}
    # sent, delivered, read, failed, fell through: MAX took one and delivered it, failed the other, which went on
    assert rows["MAX"] == ["1", "1", "0", "1", "1"], rows
    assert rows["SMS"] == ["0", "0", "0", "1", "0"], rows  # the last step: nothing after it
    assert "шаг 1 (MAX) <b>50%</b>" in today and "шаг 4 (SMS) <b>0%</b>" in today
    chart = text[text.index("<svg"):text.index("</svg>")]
    assert "<script" not in chart and "27.11" in chart and "MAX: 1" in chart  # today's bar, the legend
    assert "Пора отправлять" in text and "работает" in text


def test_dead_workers_are_collapsed_and_a_queue_lag_is_shown(app, runtime, ledger):
    runtime.clock.now += timedelta(hours=2)  # the worker fell silent; a reminder is due by now
    with runtime.sessions.begin() as session:
        job = session.get(NotificationJob, ledger["job"])
        job.status, job.due_at = "scheduled", runtime.clock.now - timedelta(minutes=40)
    text = text_of(signed_in(app, "vera").get("/status/demo"))
    assert "Ни один воркер не отмечался" in text
    assert "<details><summary class=\"muted\">Молчащие воркеры (1)</summary>" in text
    assert "40 мин" in text  # the oldest due job's wait


def test_inbound_events_newest_first_filtered_and_paged(app, ledger):
    client = signed_in(app, "vera")
    rejected = client.post(WEBHOOK, data=b"{broken", headers={"Content-Type": "application/json"}).get_json()
    text = text_of(client.get("/status/demo/events"))
    ids = [int(n) for n in re.findall(r'/status/demo/events/(\d+)">', text)]
    assert ids == sorted(ids, reverse=True) and rejected["inbound_event_id"] == ids[0]
    only = text_of(client.get("/status/demo/events?outcome=rejected&source=yclients"))
    assert re.findall(r'/status/demo/events/(\d+)">', only) == [str(rejected["inbound_event_id"])]
    assert "тело не JSON" in only
    paged = text_of(client.get("/status/demo/events?page=2"))
    assert "ничего не приходило" in paged and "← новее" in paged


def test_an_event_shows_its_headers_body_and_what_it_changed(app, ledger):
    client = signed_in(app, "vera")
    text = text_of(client.get("/status/demo/events/1"))
    assert "Заголовки" in text and "Content-Type" in text
    assert '"phone": "+7 916 ***-**-67"' in text
    assert "Что из этого вышло" in text and "запись создана" in text and "запланировано на" in text


@pytest.mark.parametrize(("typed", "found"), [("8 (916) 123-45-67", True), ("+7 916 123 45 67", True),
                                              ("9161234567", True), ("Петров", True), ("петров", True),
                                              ("ПЕТРОВ", True), ("7001", True), ("Иванов", False),
                                              ("Петр", True), ("пет", True), ("Петров Иван", True),
                                              ("петров и", True), ("Петров Олег", False), ("етров", False),
                                              ("Пе%", False), ("Пе_ров", False)])
def test_search_by_phone_surname_or_booking_id(app, ledger, typed, found):
    text = text_of(post(signed_in(app, "vera"), "/status/demo", {"q": typed}))
    results = text[text.index("<h2>Поиск"):text.index('class="grid now"')]
    assert (f"/status/demo/bookings/{ledger['booking']}\"" in results) is found
    assert "9161234567" not in re.sub(r"\D", "", text)


def test_a_booking_reads_as_one_timeline_in_russian(app, ledger):
    text = text_of(signed_in(app, "vera").get(f"/status/demo/bookings/{ledger['booking']}"))
    assert "Петров Иван Петрович" in text and "+7 916 ***-**-67" in text
    timeline = text[text.index("Хронология"):text.index("Входящие события этой записи")]
    for line in ("пришло событие из yclients: применено", "запись создана", "шаг 1: MAX (sandbox)",
                 "переходим к шагу 2 (Telegram)", "шаг 4: SMS (sandbox)", "каналов больше нет"):
        assert line in timeline, line
    assert "T09:00:00" not in text and "+00:00" not in text  # no UTC ISO times left
    assert "не доставлено" in text


def test_a_booking_shows_what_is_known_of_its_patient_and_their_other_bookings(app, runtime, ledger):
    """«Why did it go by SMS?» is answered on the booking: the patient's channels as the cascade knows them (an
    opt-out, a messenger they are not on, the last delivery), and their other visits, one click away."""
    client = app.test_client()
    later = book(client, 7002, FAILING, surname="Петров", visit=START + timedelta(days=20))
    work(runtime, passes=1)
    other = event_of(client, WEBHOOK, later)["booking_id"]
    with runtime.sessions.begin() as session:
        patient_id = session.get(Booking, ledger["booking"]).patient_id
        session.add_all([
            PatientChannel(patient_id=patient_id, channel="telegram", opted_out=True, updated_at=START),
            PatientChannel(patient_id=patient_id, channel="max", not_registered_until=START + timedelta(days=30),
                           updated_at=START),
            PatientChannel(patient_id=patient_id, channel="sms", last_delivered_at=START, updated_at=START)])
    text = text_of(signed_in(app, "vera").get(f"/status/demo/bookings/{ledger['booking']}"))
    facts = text[text.index("Каналы пациента"):text.index("Сообщения (")]
    assert "MAX: нет в мессенджере, не пробуем до 27.12 12:00" in facts
    assert "Telegram: пациент отказался от сообщений" in facts
    assert "SMS: последняя доставка 27.11 12:00" in facts
    assert f'/status/demo/bookings/{other}">№{other}</a> 17.12.2026 12:00' in facts  # its visit, Moscow time
    back = text_of(signed_in(app, "vera").get(f"/status/demo/bookings/{other}"))
    assert f'/status/demo/bookings/{ledger["booking"]}"' in back[back.index("Другие записи"):back.index("Сообщения (")]
    delivered = text_of(signed_in(app, "vera").get(f"/status/demo/bookings/{ledger['delivered']}"))
    assert "Другие записи" not in delivered  # another patient's bookings are not theirs


# --- what staff do ---------------------------------------------------------------------------------------------


def test_send_again_from_a_chosen_step_after_confirming(app, runtime, ledger):
    client = signed_in(app, "olga")
    page = f"/status/demo/bookings/{ledger['booking']}"
    assert "Отправить ещё раз" in text_of(client.get(page))
    action = f"{page}/jobs/{ledger['job']}/resend"
    asked = text_of(post(client, action, {"step": "1"}, page))
    assert "Отправить ещё раз с шага 2 (Telegram)" in asked and "Да, отправить ещё раз" in asked
    assert len(attempts(runtime, ledger["job"])) == 4  # nothing done before the confirmation
    done = post(client, action, {"step": "1", "confirmed": "1"}, page)
    assert done.status_code == 303 and done.headers["Location"].endswith(page)
    [line] = trail(runtime, "staff.resend")
    assert line.detail == "Ольга Сидорова: с шага 2 (Telegram)" and line.job_id == ledger["job"]
    work(runtime, passes=4)
    tried = attempts(runtime, ledger["job"])
    assert tried[:4] == [(0, "max", "failed"), (1, "telegram", "failed"), (2, "whatsapp", "failed"),
                         (3, "sms", "failed")]  # the old ones stay: the proof
    assert tried[4:] == [(1, "telegram", "failed"), (2, "whatsapp", "failed"), (3, "sms", "failed")]
    text = text_of(client.get(page))
    assert "Сообщение №" in text and "уйдёт ещё раз с шага 2 (Telegram)" in text  # said once, after the redirect
    assert "отправлено ещё раз по просьбе сотрудника: Ольга Сидорова" in text
    assert "уйдёт ещё раз" not in text_of(client.get(page))


def test_a_job_that_was_delivered_is_not_sent_again(app, runtime, ledger):
    with runtime.sessions() as session:
        delivered = session.scalars(select(NotificationJob).where(
            NotificationJob.booking_id == ledger["delivered"], NotificationJob.kind == "confirmation")).one()
    client = signed_in(app, "olga")
    page = f"/status/demo/bookings/{ledger['delivered']}"
    done = post(client, f"{page}/jobs/{delivered.id}/resend", {"confirmed": "1"}, page)
    assert done.status_code == 303
    assert "только недоставленное" in text_of(client.get(page))
    assert trail(runtime, "staff.resend") == []


def test_cancel_and_send_now_a_waiting_reminder(app, runtime, ledger):
    client = signed_in(app, "olga")
    page = f"/status/demo/bookings/{ledger['booking']}"
    with runtime.sessions() as session:
        first, second = session.scalars(select(NotificationJob.id).where(
            NotificationJob.booking_id == ledger["booking"], NotificationJob.kind == "reminder")
            .order_by(NotificationJob.due_at)).all()
    assert "Отправить сейчас" in text_of(client.get(page))
    assert "Да, отправить сейчас" in text_of(post(client, f"{page}/jobs/{first}/send-now", {}, page))
    post(client, f"{page}/jobs/{first}/send-now", {"confirmed": "1"}, page)
    post(client, f"{page}/jobs/{second}/cancel", {"confirmed": "1"}, page)
    with runtime.sessions() as session:
        now_due = session.get(NotificationJob, first)
        cancelled = session.get(NotificationJob, second)
        assert now_due.status == "scheduled" and now_due.due_at == runtime.clock.now
        assert cancelled.status == "cancelled"
    assert [line.detail for line in trail(runtime, "staff.send_now")] == ["Ольга Сидорова"]
    assert [line.detail for line in trail(runtime, "staff.cancel")] == ["Ольга Сидорова"]
    work(runtime, passes=1)
    assert attempts(runtime, first)[0][1] == "max"  # sent at the next pass, days before its planned time
    assert attempts(runtime, second) == []


def test_every_rejected_event_of_a_source_is_replayed_with_one_press_and_the_worker_applies_them(app, runtime, ledger):
    """After a fix, support replays the lot from the events page; a body nobody vouched for is never among them."""
    from connector.store.ledger import record_inbound

    def rejected(record_id: int, reason: str) -> int:
        body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
        body["resource_id"] = body["data"]["id"] = record_id
        with runtime.sessions.begin() as session:
            return record_inbound(session, tenant_id="demo", source="yclients", body=json.dumps(body).encode(),
                                  headers={}, now=runtime.clock(), outcome="rejected", error="a parser bug",
                                  reason=reason).id

    fixable = [rejected(7101, "unprocessable"), rejected(7102, "unprocessable")]
    forged = rejected(7103, "unauthorized")
    action, page = "/status/demo/events/replay-rejected", "/status/demo/events?outcome=rejected&source=yclients"
    viewer = signed_in(app, "vera")
    assert "Обработать заново все отклонённые" not in text_of(viewer.get(page))
    assert post(viewer, action, {"source": "yclients", "confirmed": "1"}, page).status_code == 403
    client = signed_in(app, "olga")
    assert "Обработать заново все отклонённые из yclients" in text_of(client.get(page))
    asked = text_of(post(client, action, {"source": "yclients"}, page))
    assert "Разобрать заново сегодняшним кодом 2 отклонённых событий из yclients" in asked  # the forged one is not
    done = post(client, action, {"source": "yclients", "confirmed": "1"}, page)
    assert done.status_code == 303
    assert "2 из 2 событий снова в очереди" in text_of(client.get(done.headers["Location"]))
    work(runtime, passes=2)  # the worker applies them, not the page's request
    with runtime.sessions() as session:
        outcomes = {row.id: row.outcome for row in session.scalars(
            select(InboundEvent).where(InboundEvent.id.in_([*fixable, forged])))}
    assert outcomes == {fixable[0]: "applied", fixable[1]: "applied", forged: "rejected"}
    lines = trail(runtime, "staff.replay")
    assert sorted(line.inbound_event_id for line in lines) == sorted(fixable)
    assert all(line.detail.startswith("Ольга Сидорова: ") for line in lines)
    nothing = post(client, action, {"source": "yclients", "confirmed": "1"}, page)
    assert "можно обработать заново, нет" in text_of(client.get(nothing.headers["Location"]))


def test_a_rejected_webhook_is_replayed_from_its_page(app, runtime, ledger):
    client = signed_in(app, "olga")
    body = sample("yclients", "record_create.json").read_bytes()
    with runtime.sessions.begin() as session:
        from connector.store.ledger import record_inbound

        rejected = record_inbound(session, tenant_id="demo", source="yclients", body=body, headers={},
                                  now=runtime.clock(), outcome="rejected", error="unprocessable: a parser bug",
                                  reason="unprocessable").id
    page = f"/status/demo/events/{rejected}"
    assert "Обработать заново" in text_of(client.get(page))
    assert "Да, обработать заново" in text_of(post(client, f"{page}/replay", {}, page))
    done = post(client, f"{page}/replay", {"confirmed": "1"}, page)
    assert done.status_code == 303
    text = text_of(client.get(page))
    assert "Событие №" in text and "применено" in text
    [line] = trail(runtime, "staff.replay")
    assert line.detail == "Ольга Сидорова: применено" and line.inbound_event_id == rejected


def test_an_admin_sees_a_phone_once_and_the_trail_says_who(app, runtime, ledger):
    client = signed_in(app, "admin")
    page = f"/status/demo/bookings/{ledger['booking']}"
    assert "показать" in text_of(client.get(page))
    done = post(client, f"{page}/phone", {}, page)
    assert done.status_code == 303
    assert "+79161234567" in text_of(client.get(page))
    again = text_of(client.get(page))
    assert "+79161234567" not in again and "+7 916 ***-**-67" in again
    assert "сотрудник открыл телефон пациента: Администратор" in again
    [line] = trail(runtime, "staff.phone_shown")
    assert line.detail == "Администратор" and line.booking_id == ledger["booking"]


# --- who may ---------------------------------------------------------------------------------------------------


def test_a_patients_request_not_to_be_written_to_is_set_from_the_booking_and_the_cascade_skips_it(
        app, runtime, ledger):
    """The patient calls: «не пишите мне в WhatsApp». The operator ticks it on the booking; the trail says who; the
    next sending goes past WhatsApp and says why."""
    page = f"/status/demo/bookings/{ledger['booking']}"
    client = signed_in(app, "olga")
    assert 'name="opt_out" value="whatsapp"' in text_of(client.get(page))
    done = post(client, f"{page}/opt-outs", {"opt_out": ["whatsapp", "not-a-channel"]}, page)
    assert done.status_code == 303
    text = text_of(client.get(page))
    assert "Пациент записи №" in text and "не писать в WhatsApp" in text  # what the action said
    assert 'value="whatsapp" checked' in text and 'value="max" checked' not in text
    assert "WhatsApp: пациент отказался от сообщений" in text
    [line] = trail(runtime, "staff.opt_outs")
    assert line.detail == "Ольга Сидорова: не писать в WhatsApp" and line.booking_id == ledger["booking"]
    # the failed confirmation sent again: every channel but WhatsApp is tried
    post(client, f"{page}/jobs/{ledger['job']}/resend", {"step": "0", "confirmed": "1"}, page)
    work(runtime)
    assert [channel for _, channel, _ in attempts(runtime, ledger["job"])][4:] == ["max", "telegram", "sms"]
    # and taken back: nothing ticked is «no opt-outs»
    post(client, f"{page}/opt-outs", {}, page)
    assert "WhatsApp: пациент отказался" not in text_of(client.get(page))
    assert trail(runtime, "staff.opt_outs")[-1].detail == "Ольга Сидорова: отказов нет, пишем во все каналы каскада"


def test_a_viewer_sees_no_action_and_is_refused_one(app, runtime, ledger):
    client = signed_in(app, "vera")
    page = f"/status/demo/bookings/{ledger['booking']}"
    text = text_of(client.get(page))
    assert "Отправить ещё раз" not in text and "показать" not in text
    for action in ("resend", "cancel", "send-now"):
        answer = post(client, f"{page}/jobs/{ledger['job']}/{action}", {"confirmed": "1"}, page)
        assert answer.status_code == 403 and "Недостаточно прав" in answer.get_data(as_text=True)
    assert post(client, "/status/demo/events/1/replay", {"confirmed": "1"}, page).status_code == 403
    assert post(client, f"{page}/phone", {}, page).status_code == 403
    assert post(client, f"{page}/opt-outs", {"opt_out": "max"}, page).status_code == 403
    assert 'name="opt_out"' not in text
    assert len(attempts(runtime, ledger["job"])) == 4 and trail(runtime, "staff.phone_shown") == []
    assert trail(runtime, "staff.opt_outs") == []


def test_an_operator_may_act_but_not_see_a_phone(app, runtime, ledger):
    client = signed_in(app, "olga")
    page = f"/status/demo/bookings/{ledger['booking']}"
    assert "показать" not in text_of(client.get(page))
    assert post(client, f"{page}/phone", {}, page).status_code == 403


def test_a_form_without_its_csrf_token_does_nothing(app, runtime, ledger):
    client = signed_in(app, "admin")
    page = f"/status/demo/bookings/{ledger['booking']}"
    for path in (f"{page}/jobs/{ledger['job']}/resend", f"{page}/phone", "/status/demo/events/1/replay",
                 "/status/demo/events/replay-rejected", f"{page}/opt-outs"):
        assert client.post(path, data={"confirmed": "1"}).status_code == 400
    assert trail(runtime, "staff.resend") == [] and trail(runtime, "staff.phone_shown") == []


def test_another_tenants_booking_and_actions_answer_404(app, runtime, ledger):
    client = signed_in(app, "stranger")
    page = f"/status/demo/bookings/{ledger['booking']}"
    assert client.get(page).status_code == 404
    assert client.post(f"{page}/jobs/{ledger['job']}/resend",
                       data={"confirmed": "1", "csrf_token": csrf_token(client)}).status_code == 404
    assert client.post("/status/demo/events/replay-rejected",
                       data={"confirmed": "1", "csrf_token": csrf_token(client)}).status_code == 404
    mine = signed_in(app, "admin")  # a job of another booking under this one's path is not found either
    assert post(mine, f"/status/demo/bookings/{ledger['delivered']}/jobs/{ledger['job']}/resend",
                {"confirmed": "1"}).status_code == 404


def test_signed_out_every_console_page_asks_to_sign_in_and_no_action_runs(app, runtime, ledger):
    stranger = app.test_client()
    page = f"/status/demo/bookings/{ledger['booking']}"
    for path in ("/status/demo/events", "/status/demo/events?outcome=rejected", page, "/status/demo/events/1"):
        answer = stranger.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/status/sign-in?next="), path
    token = csrf_token(stranger)  # a real token of the sign-in form: still no session
    answer = stranger.post(f"{page}/jobs/{ledger['job']}/resend", data={"confirmed": "1", "csrf_token": token})
    assert answer.status_code == 401 and trail(runtime, "staff.resend") == []
