"""Receipts by polling on the real database, against a local server speaking SMS.ru's wire format: questions
within a step's timeout, one more at its deadline, and a silent last step that ends `unconfirmed`, not `failed`.

Time is the runtime's clock, driven one worker pass per second; nothing sleeps.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from werkzeug import Request, Response

from connector.entrypoints.worker import Worker
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.integration.test_delivery import START, Clock, book, confirmation
from tests.staff import sign_in

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


class FakeSmsRu:
    """SMS.ru's sms/send and sms/status. Each message's status code is a function of the seconds since it was
    sent (by the runtime's clock); `asked` records when each status question came."""

    def __init__(self, httpserver, clock: Clock, status):
        self.clock, self.status = clock, status
        self.sent: dict[str, object] = {}  # sms_id → when
        self.asked: list[float] = []  # seconds after the first send
        httpserver.expect_request("/sms/send", method="POST").respond_with_handler(self._send)
        httpserver.expect_request("/sms/status", method="POST").respond_with_handler(self._status)
        self.base_url = httpserver.url_for("/").rstrip("/")

    def _send(self, request: Request) -> Response:
        sms_id = f"000123-{len(self.sent) + 1:06d}"
        self.sent[sms_id] = self.clock()
        to = request.form["to"]
        return _json({"status": "OK", "status_code": 100,
                      "sms": {to: {"status": "OK", "status_code": 100, "sms_id": sms_id}}})

    def _status(self, request: Request) -> Response:
        first = min(self.sent.values())
        self.asked.append((self.clock() - first).total_seconds())
        answer = {}
        for sms_id in request.form["sms_id"].split(","):
            age = (self.clock() - self.sent[sms_id]).total_seconds()
            answer[sms_id] = {"status": "OK", "status_code": self.status(age)}
        return _json({"status": "OK", "status_code": 100, "sms": answer})


def _json(body: dict) -> Response:
    return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def clock():
    return Clock(START)


def setup(database_url, httpserver, clock, steps, status):
    smsru = FakeSmsRu(httpserver, clock, status)
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=tuple(steps),
                     providers={"smsru": {"base_url": smsru.base_url, "api_id": "k", "callback_secret": "cb-secret"},
                                "sandbox": {"delay": 2}})
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    worker = Worker(runtime, concurrency=2, name="poller")
    return smsru, runtime, create_app(runtime).test_client(), worker


@pytest.fixture
def teardown():
    held = []
    yield held.append
    for runtime, worker in held:
        worker.close()
        runtime.engine.dispose()


def run(worker: Worker, clock: Clock, seconds: int, every: int = 1) -> None:
    # Every pass each second (or `every` seconds, for hours), the poll pass included.
    for _ in range(seconds // every):
        worker.tick()
        worker.poll()
        clock.advance(every)


def sms(timeout: int) -> CascadeStep:
    return CascadeStep("sms", "smsru", timedelta(seconds=timeout))


WHATSAPP = CascadeStep("whatsapp", "sandbox", timedelta(minutes=1))  # digit 0: the sandbox delivers it


def events(client, record_id: int) -> list[tuple[str, str]]:
    view = client.get(f"/api/v1/demo/bookings/yclients/{record_id}", headers=AUTH).get_json()
    return [(e["what"], e["detail"] or "") for e in view["events"]]


def test_a_30_second_sms_step_reported_delivered_at_once_ends_delivered_with_no_second_channel(
        database_url, httpserver, clock, teardown):
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(30), WHATSAPP],
                                           status=lambda age: 103)
    teardown((runtime, worker))
    book(client, 0, 9100)
    run(worker, clock, 45)
    job = confirmation(client, 9100)
    assert job["status"] == "delivered", job["reason"]
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("sms", "delivered")]
    assert smsru.asked and smsru.asked[0] <= 10  # asked at a quarter of the step, not after it


def test_an_earlier_step_asked_at_its_deadline_and_found_delivered_does_not_fall_back(
        database_url, httpserver, clock, teardown):
    # PT2M; the SMS is delivered at +108 s: the questions within the step find it queued, the deadline's finds it
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(120), WHATSAPP],
                                           status=lambda age: 103 if age >= 108 else 100)
    teardown((runtime, worker))
    book(client, 0, 9200)
    run(worker, clock, 150)
    job = confirmation(client, 9200)
    assert job["status"] == "delivered", job["reason"]
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("sms", "delivered")]
    assert [round(t) for t in smsru.asked] == [30, 60, 90, 120]
    assert not any(what == "attempt.expired" for what, _ in events(client, 9200))


def test_a_silent_last_step_waits_for_the_status_window_then_ends_unconfirmed(
        database_url, httpserver, clock, teardown):
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(30)], status=lambda age: 100)
    teardown((runtime, worker))
    book(client, 0, 9300)
    run(worker, clock, 40)
    job = confirmation(client, 9300)
    assert job["status"] == "awaiting_delivery", job["reason"]  # sent, not yet confirmed: not failed
    assert job["attempts"][0]["status"] == "queued"
    assert "no channel left; waiting for a receipt until" in job["reason"]
    assert job["deadline"] == "2026-11-30T09:00:00Z"  # SMS.ru's status window: three days from the send
    assert job["attempts"][0]["polled_at"] == "2026-11-27T09:00:30Z"  # asked at the step's deadline
    asked = len(smsru.asked)
    clock.advance(3600)
    run(worker, clock, 2)
    assert len(smsru.asked) == asked + 1  # still asked about, more slowly, after the deadline
    clock.now = START + timedelta(days=3, seconds=5)  # the provider's status window has passed
    run(worker, clock, 2)
    job = confirmation(client, 9300)
    assert job["status"] == "unconfirmed", job["reason"]
    assert job["attempts"][0]["status"] == "expired"
    assert "never confirmed" in job["reason"]
    assert ("job.unconfirmed", job["reason"]) in events(client, 9300)
    booking_id = client.get("/api/v1/demo/bookings/yclients/9300", headers=AUTH).get_json()["id"]
    sign_in(client)
    status_page = client.get(f"/status/demo/bookings/{booking_id}").get_data(as_text=True)
    assert 'class="st st-unconfirmed" title="отправлено, но провайдер так и не сообщил, доставлено ли' in status_page
    assert ">доставка не подтверждена</span>" in status_page
    asked = len(smsru.asked)
    run(worker, clock, 3 * 3600, every=60)
    assert len(smsru.asked) == asked  # past the window, nobody asks any more

    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    jobs = {s.labels["status"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "connector_jobs" and s.labels["kind"] == "confirmation"}
    assert jobs == {"unconfirmed": 1}


def test_a_delivered_poll_after_the_last_deadline_upgrades_the_job(database_url, httpserver, clock, teardown):
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(30)],
                                           status=lambda age: 103 if age >= 2 * 3600 else 100)
    teardown((runtime, worker))
    book(client, 0, 9400)
    run(worker, clock, 40)
    assert confirmation(client, 9400)["status"] == "awaiting_delivery"
    clock.advance(2 * 3600)
    run(worker, clock, 3600, every=10)  # within the hour the slower questions find the receipt
    job = confirmation(client, 9400)
    assert job["status"] == "delivered", job["reason"]
    assert job["attempts"][0]["status"] == "delivered"


def test_a_late_receipt_of_an_earlier_timed_out_sms_reaches_the_proof_trail(database_url, httpserver, clock,
                                                                            teardown):
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(30), WHATSAPP],
                                           status=lambda age: 103 if age >= 600 else 100)
    teardown((runtime, worker))
    book(client, 0, 9500)
    run(worker, clock, 40)
    job = confirmation(client, 9500)
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("sms", "expired"), ("whatsapp", "delivered")]
    clock.advance(600)
    run(worker, clock, 120)
    job = confirmation(client, 9500)
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("sms", "delivered"), ("whatsapp", "delivered")]
    assert job["status"] == "delivered"
    assert any(what == "attempt.delivered" and "sms via smsru reports 103" in detail
               for what, detail in events(client, 9500))


def test_a_late_callback_upgrades_an_unconfirmed_job(database_url, httpserver, clock, teardown):
    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(30)], status=lambda age: 100)
    teardown((runtime, worker))
    book(client, 0, 9600)
    run(worker, clock, 40)
    clock.now = START + timedelta(days=3, seconds=5)
    run(worker, clock, 2)
    assert confirmation(client, 9600)["status"] == "unconfirmed"
    [sms_id] = smsru.sent
    answer = client.post("/callbacks/smsru/demo?secret=cb-secret", data={"data[]": f"sms_status\n{sms_id}\n103"})
    assert answer.get_data(as_text=True) == "100"
    job = confirmation(client, 9600)
    assert job["status"] == "delivered"
    assert "the job was unconfirmed, the receipt confirms it" in job["reason"]


def test_a_report_repeating_what_we_know_leaves_updated_at_alone(database_url, httpserver, clock, teardown):
    from sqlalchemy import select

    from connector.store.models import DeliveryAttempt

    smsru, runtime, client, worker = setup(database_url, httpserver, clock, [sms(120)], status=lambda age: 100)
    teardown((runtime, worker))
    book(client, 0, 9700)
    run(worker, clock, 100)
    assert len(smsru.asked) == 3  # queued, queued, queued: nothing changed
    with runtime.sessions() as session:
        attempt = session.scalars(select(DeliveryAttempt)).one()
        assert attempt.updated_at == attempt.created_at
