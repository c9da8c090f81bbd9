"""A patient links the clinic's Telegram bot through a signed invitation, and opts out of a channel."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from connector.entrypoints.worker import Worker
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.integration.test_delivery import START, Clock, book, confirmation, run

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PHONE = "+79161234566"
TG_SECRET = "tg-webhook-secret"


@pytest.fixture
def setup(database_url, httpserver):
    sent = []

    def send_message(request):
        from werkzeug import Response

        sent.append(request.get_json())
        return Response(json.dumps({"ok": True, "result": {"message_id": 77 + len(sent), "date": 0,
                                                          "chat": {"id": 555, "type": "private"}}}),
                        content_type="application/json")

    httpserver.expect_request("/bot123:abc/sendMessage", method="POST").respond_with_handler(send_message)
    tenant = replace(
        demo_tenant(DEMO_TOKEN),
        cascade=(CascadeStep("telegram", "telegram_bot", timedelta(minutes=1)),
                 CascadeStep("sms", "sandbox", timedelta(minutes=1))),
        providers={"sandbox": {"delay": 1},
                   "telegram_bot": {"base_url": httpserver.url_for("/").rstrip("/"), "token": "123:abc",
                                    "webhook_secret": TG_SECRET, "bot_name": "ClinicBot"}},
    )
    clock = Clock(START)
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, name="links")
    yield client, clock, worker, sent
    worker.close()
    runtime.engine.dispose()


def start_bot(client, payload: str, chat_id: int = 555):
    update = {"update_id": chat_id, "message": {"message_id": 1, "date": 1764230400, "text": f"/start {payload}",
                                                "from": {"id": chat_id, "is_bot": False, "first_name": "И"},
                                                "chat": {"id": chat_id, "type": "private"}}}
    return client.post("/callbacks/telegram_bot/demo", json=update,
                       headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})


def channels(client, record_id: int) -> list[tuple[str, str, str]]:
    return [(a["channel"], a["provider"], a["status"]) for a in confirmation(client, record_id)["attempts"]]


def test_an_invited_patient_is_then_reached_through_the_bot(setup):
    client, clock, worker, sent = setup
    book(client, 6, 10)
    run(worker, clock, 5)
    assert channels(client, 10) == [("sms", "sandbox", "delivered")]  # the bot cannot reach them yet

    answer = client.get(f"/api/v1/demo/patients/{PHONE}/invitations", headers=AUTH).get_json()
    link = answer["links"]["telegram_bot"]
    assert link.startswith("https://t.me/ClinicBot?start=p") and answer["patient"]["phone"] == "+7 916 ***-**-66"
    assert start_bot(client, parse_qs(urlparse(link).query)["start"][0]).status_code == 200

    book(client, 6, 11)
    run(worker, clock, 5)
    # The Bot API has no delivery receipts: a successful send counts as final.
    assert channels(client, 11) == [("telegram", "telegram_bot", "sent")]
    assert confirmation(client, 11)["status"] == "delivered"
    assert sent[0]["chat_id"] == 555 and "Иван Петрович" in sent[0]["text"]


def test_a_forged_invitation_links_nobody(setup):
    client, clock, worker, sent = setup
    book(client, 6, 20)
    run(worker, clock, 3)
    link = client.get(f"/api/v1/demo/patients/{PHONE}/invitations", headers=AUTH).get_json()["links"]["telegram_bot"]
    payload = parse_qs(urlparse(link).query)["start"][0]
    patient_id, signature = payload[1:].split("-")
    forged = f"p{int(patient_id) + 1}-{signature}"
    assert start_bot(client, forged, chat_id=666).status_code == 200
    assert start_bot(client, "p1", chat_id=667).status_code == 200
    book(client, 6, 21)
    run(worker, clock, 5)
    assert channels(client, 21) == [("sms", "sandbox", "delivered")] and sent == []


def test_a_blocked_bot_is_not_used_again(setup):
    client, clock, worker, sent = setup
    book(client, 6, 30)
    run(worker, clock, 3)
    link = client.get(f"/api/v1/demo/patients/{PHONE}/invitations", headers=AUTH).get_json()["links"]["telegram_bot"]
    start_bot(client, parse_qs(urlparse(link).query)["start"][0])
    kicked = {"update_id": 9, "my_chat_member": {
        "chat": {"id": 555, "type": "private"}, "from": {"id": 555, "is_bot": False, "first_name": "И"}, "date": 0,
        "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True, "first_name": "B"}},
        "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True, "first_name": "B"}}}}
    response = client.post("/callbacks/telegram_bot/demo", json=kicked,
                           headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert response.status_code == 200
    book(client, 6, 31)
    run(worker, clock, 5)
    assert channels(client, 31) == [("sms", "sandbox", "delivered")] and sent == []


def test_a_callback_without_the_bot_secret_is_refused_and_kept(setup):
    client, *_ = setup
    response = client.post("/callbacks/telegram_bot/demo", json={"update_id": 1},
                           headers={"X-Telegram-Bot-Api-Secret-Token": "guess"})
    assert response.status_code == 401
    events = client.get("/api/v1/demo/inbound-events?outcome=rejected", headers=AUTH).get_json()["events"]
    assert events[0]["source"] == "callback:telegram_bot" and "unauthorized" in events[0]["error"]


def test_opting_out_of_a_channel_skips_it_and_says_why(setup):
    client, clock, worker, sent = setup
    book(client, 6, 40)
    run(worker, clock, 3)
    link = client.get(f"/api/v1/demo/patients/{PHONE}/invitations", headers=AUTH).get_json()["links"]["telegram_bot"]
    start_bot(client, parse_qs(urlparse(link).query)["start"][0])
    response = client.put(f"/api/v1/demo/patients/{PHONE}/opt-outs", json={"channels": ["telegram"]}, headers=AUTH)
    assert response.status_code == 200 and response.get_json()["opted_out"] == ["telegram"]
    book(client, 6, 41)
    run(worker, clock, 5)
    assert channels(client, 41) == [("sms", "sandbox", "delivered")] and sent == []
    view = client.get("/api/v1/demo/bookings/yclients/41", headers=AUTH).get_json()
    assert any("opted out of telegram" in (e["detail"] or "") for e in view["events"])
    bad = client.put(f"/api/v1/demo/patients/{PHONE}/opt-outs", json={"channels": ["fax"]}, headers=AUTH)
    assert bad.status_code == 422
    assert client.get("/api/v1/demo/patients/+79990000000/invitations", headers=AUTH).status_code == 404
