"""The support engineer's status page, end to end through Flask on SQLite and PostgreSQL: YCLIENTS webhooks
in, a worker pass (its intake applies them first), then the HTML pages read back, with every phone and the
patient's name masked."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from connector.entrypoints.worker import Worker
from tests.conftest import API_TOKEN, DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import accept, deliver, event_of
from tests.staff import csrf_token, sign_in

WEBHOOK = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"
START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, outside quiet hours
CLEAR_PHONE = "9161234560"  # the fixture's patient, +79161234560: sandbox path 0, MAX delivered


def load(name: str) -> dict:
    return json.loads(sample("yclients", f"{name}.json").read_text(encoding="utf-8"))


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def page(client, path: str, **kwargs) -> str:
    """The page's text as a reader sees it (entities decoded), after checking it answered 200 in HTML."""
    if "data" in kwargs:
        response = client.post(path, data={**kwargs.pop("data"), "csrf_token": csrf_token(client, path)}, **kwargs)
    else:
        response = client.get(path, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.content_type.startswith("text/html")
    return html.unescape(response.get_data(as_text=True))


def assert_no_personal_data(text: str) -> None:
    digits = "".join(ch for ch in text if ch.isdigit() or ch == "\n")
    assert CLEAR_PHONE not in text and CLEAR_PHONE not in digits
    assert "123-45-60" not in text and "123 45 60" not in text
    assert "Смирнов" not in text and "smirnov@" not in text


@pytest.fixture
def ledger(client, runtime):
    """One booking made, delivered through MAX by a worker, and one rejected webhook; returns their ids."""
    clock = Clock(START)
    runtime.clock = clock
    created_id = accept(client, WEBHOOK, json=load("record_create"))
    broken = b'{"client": {"name": "X", "phone": "+7 (916) 123-45-60"'
    rejected = client.post(WEBHOOK, data=broken, headers={"Content-Type": "application/json"}).get_json()
    assert rejected["error"] == "malformed_json"
    worker = Worker(runtime, concurrency=2, name="t")
    try:
        worker.tick()  # its intake applies the webhook, then it sends the confirmation through MAX
        clock.now += timedelta(seconds=30)
        worker.tick()  # the sandbox reports it delivered
        worker.heartbeat()
    finally:
        worker.close()
    created = event_of(client, WEBHOOK, created_id)
    assert created["outcome"] == "applied" and created["booking_id"] is not None
    sign_in(client)
    return {"booking": created["booking_id"], "event": created_id, "rejected": rejected["inbound_event_id"]}


def test_every_page_asks_signed_out_visitors_to_sign_in(app, client, ledger):
    paths = ["/status/demo", f"/status/demo/bookings/{ledger['booking']}", f"/status/demo/events/{ledger['event']}"]
    stranger = app.test_client()
    for path in paths:
        for headers in ({}, {"Authorization": f"Bearer {API_TOKEN}"}):
            response = stranger.get(path, headers=headers)
            assert response.status_code == 302, (path, headers)
            assert response.headers["Location"].startswith("/status/sign-in?next=")
            assert CLEAR_PHONE not in response.get_data(as_text=True)
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["Cache-Control"] == "no-store"
    token = csrf_token(stranger)
    assert stranger.post("/status/demo", data={"q": "89161234560", "csrf_token": token}).status_code == 401


def test_unknown_tenant_booking_or_event_is_404(app, client, ledger):
    assert client.get("/status/nowhere").status_code == 404
    assert client.get(f"/status/nowhere/bookings/{ledger['booking']}").status_code == 404
    assert client.get("/status/demo/bookings/999999").status_code == 404
    assert client.get("/status/demo/events/999999").status_code == 404
    # Signed out, an unknown tenant is not even confirmed as unknown.
    assert app.test_client().get("/status/nowhere").status_code == 302


def test_overview_lists_workers_jobs_events_and_bookings(client, ledger):
    text = page(client, "/status/demo")
    assert f"/status/demo/bookings/{ledger['booking']}" in text
    assert "yclients / 987654321" in text
    assert "03.12.2026 10:00" in text  # the visit, in Moscow time
    assert "+7 916 ***-**-60" in text
    assert "Иванов Сергей Петрович" in text
    # the worker that just beat is alive; today's confirmation is counted
    assert "работает" in text and "доставлено" in text
    # both inbound events, the rejected one with its error, and no raw body on the list
    assert f"/status/demo/events/{ledger['event']}" in text
    assert f"/status/demo/events/{ledger['rejected']}" in text
    assert "отклонено" in text and "malformed_json: the body is not valid JSON" in text
    assert "short_link" not in text and "Онлайн-запись" not in text
    assert "27.11.2026 12:00" in text
    assert_no_personal_data(text)


@pytest.mark.parametrize("typed", ["+79161234560", "89161234560", "8 (916) 123-45-60", "+7 916 123 45 60",
                                   "9161234560", "7-916-123-45-60"])
def test_search_by_phone_in_any_format_finds_the_booking(client, ledger, typed):
    text = page(client, "/status/demo", data={"q": typed})
    assert "Поиск по телефону +7 916 ***-**-60: 1" in text
    assert f"/status/demo/bookings/{ledger['booking']}" in text
    assert typed not in text  # what was typed is not echoed back in clear
    assert_no_personal_data(text)


def test_search_by_external_id_and_misses(client, ledger):
    text = page(client, "/status/demo?q=987654321")
    assert "Поиск «987654321»: 1" in text
    assert f"/status/demo/bookings/{ledger['booking']}" in text
    assert "Поиск по телефону +7 916 ***-**-99: 0" in page(client, "/status/demo", data={"q": "+7 916 123-45-99"})
    assert "Ничего не найдено" in page(client, "/status/demo", data={"q": "no-such-record"})


def test_booking_page_shows_jobs_attempts_and_the_timeline_in_russian(client, ledger):
    text = page(client, f"/status/demo/bookings/{ledger['booking']}")
    # staff see their patient's name; the phone stays masked
    assert "Смирнов Иван Петрович" in text and "+7 916 ***-**-60" in text
    assert CLEAR_PHONE not in "".join(ch for ch in text if ch.isdigit() or ch == "\n")
    assert "03.12.2026 10:00" in text and "Приём кардиолога первичный" in text and "Кардиолог" in text
    # the three jobs with their due times in Moscow; the confirmation went through MAX and was delivered
    assert "№1 Подтверждение записи · срок 27.11 12:00" in text
    assert "Напоминание · срок 02.12 10:00" in text and "Напоминание · срок 03.12 09:00" in text
    assert "перенесено из тихих часов 21:00–09:00 на 09:00" in text
    assert "Уважаемый Иван Петрович!" in text and "Вас примет кардиолог Иванов Сергей Петрович" in text
    attempts = text[text.index("№1 Подтверждение записи"):text.index("Хронология")]
    assert "MAX" in attempts and "sandbox" in attempts and "доставлено" in attempts
    # one timeline, in the order things happened, as a person would say it
    trail = text[text.index("Хронология"):text.index("Входящие события этой записи")]
    lines = ["пришло событие из yclients: применено", "запись создана",
             "подтверждение записи запланировано на 27.11 12:00", "попытка поставлена в очередь: шаг 1: MAX (sandbox)",
             "MAX (sandbox): отправлено", "MAX (sandbox) сообщает: доставлено"]
    positions = [trail.index(line) for line in lines]
    assert positions == sorted(positions), positions
    # the inbound event that made the booking, linked
    assert f"/status/demo/events/{ledger['event']}" in text[text.index("Входящие события этой записи"):]


def test_booking_page_reads_with_a_few_queries_however_many_jobs(client, runtime, ledger):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    def queries() -> int:
        statements.clear()
        page(client, f"/status/demo/bookings/{ledger['booking']}")
        return len(statements)

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        before = queries()
        runtime.clock = lambda: START + timedelta(hours=1)
        moved = load("record_update_time_moved")  # more jobs: new reminders, a reschedule notice
        assert deliver(client, runtime, WEBHOOK, json=moved)["outcome"] == "applied"
        sign_in(client)  # an hour idle has ended the session
        after = queries()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    # the booking and its trail (nine however many jobs), and the staff session (one: was it signed out?)
    assert before <= 10 and after == before, (before, after)


def test_event_page_shows_the_raw_body_pretty_with_phones_masked(client, ledger):
    text = page(client, f"/status/demo/events/{ledger['event']}")
    assert_no_personal_data(text)
    assert '"resource_id": 987654321' in text  # pretty-printed JSON
    assert '"phone": "+7 916 ***-**-60"' in text
    assert '"surname": "С***"' in text and '"name": "И***"' in text
    assert '"short_link": "https://yclients.com/c/AbCdE/FgHiJ/"' in text
    assert "применено" in text and "запись создана" in text
    assert f"/status/demo/bookings/{ledger['booking']}" in text


def test_a_rejected_webhook_is_shown_with_its_error_and_masked_body(client, ledger):
    text = page(client, f"/status/demo/events/{ledger['rejected']}")
    assert "отклонено" in text and "malformed_json: the body is not valid JSON" in text
    assert '"phone": "+7 916 ***-**-60"' in text  # not JSON, still shown as received, phone masked
    assert_no_personal_data(text)


def test_what_a_source_sent_is_escaped_never_run(client, runtime, ledger):
    hostile = b'<script>alert("x")</script><img src=x onerror=alert(1)>'
    answer = client.post(WEBHOOK, data=hostile, headers={"Content-Type": "application/json"}).get_json()
    raw = client.get(f"/status/demo/events/{answer['inbound_event_id']}").get_data(as_text=True)
    assert "<script>alert" not in raw and "<img src=x" not in raw
    assert "&lt;script&gt;alert" in raw
