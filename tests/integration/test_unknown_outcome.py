"""A provider that takes the message and answers after the client's timeout: the call's outcome is unknown.

Real ledger (SQLite and PostgreSQL), the real worker, local stand-ins speaking SMS.ru's and SMSC's wire formats
whose send handler sleeps past the adapter's read timeout. Before the third outcome, each such job got the SMS
up to four times (the step retried a read timeout like a refused connection)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from connector.channels.smsc import client_id
from connector.entrypoints.worker import Worker
from connector.store.models import AuditEvent, DeliveryAttempt
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.integration.test_delivery import START, Clock, book, confirmation, run

SLOW = 0.6  # seconds the stand-in takes to answer a send, beyond the adapter's read timeout
TIMEOUT = [2, 0.2]  # connect, read


@pytest.fixture
def httpserver():
    """Threaded: a slow answer must not hold back the other jobs' requests (the provider serves them at once)."""
    server = HTTPServer(threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def smsru_send(calls: list[str], slow: bool = True):
    def handler(request: Request) -> Response:
        to = request.form["to"]
        calls.append(to)
        if slow:
            time.sleep(SLOW)  # taken, and answered too late for the client
        return Response(json.dumps({"status": "OK", "status_code": 100, "sms": {
            to: {"status": "OK", "status_code": 100, "sms_id": f"000-{len(calls)}"}}}), content_type="application/json")
    return handler


def setup(database_url, httpserver, provider: str, block: dict, *steps: CascadeStep):
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=steps,
                     providers={provider: {"base_url": httpserver.url_for("/").rstrip("/"), "timeout": TIMEOUT,
                                           **block}})
    clock = Clock(START)
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    return runtime, clock, create_app(runtime).test_client(), Worker(runtime, concurrency=4, retry_base=0.01,
                                                                      name="unknown")


def trail(runtime) -> list[str]:
    with runtime.sessions() as session:
        return [event.detail or "" for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def attempts(runtime) -> list[DeliveryAttempt]:
    with runtime.sessions() as session:
        return list(session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


def test_defaults_send_one_message_per_job_and_wait_on_the_last_step(database_url, httpserver):
    calls: list[str] = []
    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(smsru_send(calls))
    sms = CascadeStep("sms", "smsru", timedelta(hours=1))
    runtime, clock, client, worker = setup(database_url, httpserver, "smsru", {"api_id": "k"}, sms)
    try:
        for n in range(3):
            book(client, n, 9100 + n)
        run(worker, clock, 5)
        assert len(calls) == 3  # one message per job: the lost answers were not retried
        for n in range(3):
            job = confirmation(client, 9100 + n)
            assert job["status"] == "awaiting_delivery" and len(job["attempts"]) == 1
        assert all(a.status == "sent" and (a.error or "").startswith("outcome unknown") for a in attempts(runtime))
        notes = [d for d in trail(runtime) if "on_unknown=wait" in d]
        assert len(notes) == 3 and "sms via smsru: outcome unknown (" in notes[0]
        assert "read timeout" in notes[0] and "awaiting receipts until" in notes[0]
        clock.advance(3 * 24 * 3600)  # past the step and the provider's status window: never resent
        run(worker, clock, 3)
        assert len(calls) == 3
        assert {confirmation(client, 9100 + n)["status"] for n in range(3)} == {"unconfirmed"}
    finally:
        worker.close()
        runtime.engine.dispose()


def test_next_on_an_earlier_step_moves_on_at_its_deadline_without_resending(database_url, httpserver):
    calls: list[str] = []
    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(smsru_send(calls))
    first = CascadeStep("sms", "smsru", timedelta(minutes=10))
    last = CascadeStep("max", "sandbox", timedelta(minutes=10))
    runtime, clock, client, worker = setup(database_url, httpserver, "smsru", {"api_id": "k"}, first, last)
    try:
        book(client, 0, 9200)
        run(worker, clock, 3)
        assert len(calls) == 1 and confirmation(client, 9200)["status"] == "awaiting_delivery"
        assert any("on_unknown=next" in d and "then step 2 (max)" in d for d in trail(runtime))
        clock.advance(11 * 60)
        run(worker, clock, 5)
        job = confirmation(client, 9200)
        assert len(calls) == 1 and [a["channel"] for a in job["attempts"]] == ["sms", "max"]
    finally:
        worker.close()
        runtime.engine.dispose()


def test_resend_sends_exactly_one_more(database_url, httpserver):
    calls: list[str] = []
    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(smsru_send(calls))
    sms = CascadeStep("sms", "smsru", timedelta(hours=1), on_unknown="resend")
    runtime, clock, client, worker = setup(database_url, httpserver, "smsru", {"api_id": "k"}, sms)
    try:
        book(client, 1, 9300)
        run(worker, clock, 5)
        assert len(calls) == 2  # the one more call; it was lost too, and nothing more went
        assert confirmation(client, 9300)["status"] == "awaiting_delivery"
        assert any("on_unknown=resend: resent once, still unknown; as on_unknown=wait" in d for d in trail(runtime))
    finally:
        worker.close()
        runtime.engine.dispose()


def smsc_stand_in(httpserver, log: list[tuple[str, str]], status: int):
    """send.php takes the message and answers late; status.php answers `status` for the id asked about."""

    def send(request: Request) -> Response:
        log.append(("send", request.form["id"]))
        if sum(1 for what, _ in log if what == "send") == 1:
            time.sleep(SLOW)
        return Response(json.dumps({"id": int(request.form["id"]), "cnt": 1}), content_type="application/json")

    def status_php(request: Request) -> Response:
        log.append(("status", request.form["id"]))
        return Response(json.dumps({"status": status}), content_type="application/json")

    httpserver.expect_request("/send.php", method="POST").respond_with_handler(send)
    httpserver.expect_request("/status.php", method="POST").respond_with_handler(status_php)


def test_smsc_is_asked_by_our_id_and_not_found_is_sent_once_more(database_url, httpserver):
    log: list[tuple[str, str]] = []
    smsc_stand_in(httpserver, log, status=-3)
    sms = CascadeStep("sms", "smsc", timedelta(hours=1))
    runtime, clock, client, worker = setup(database_url, httpserver, "smsc", {"apikey": "k"}, sms)
    try:
        book(client, 2, 9400)
        run(worker, clock, 5)
        ours = client_id(attempts(runtime)[0].message_id)
        assert log == [("send", ours), ("status", ours), ("send", ours)]  # asked before anything was resent
        job = confirmation(client, 9400)
        assert job["status"] == "awaiting_delivery" and job["attempts"][0]["status"] == "queued"
        assert any("asked smsc by our id: not found" in d for d in trail(runtime))
    finally:
        worker.close()
        runtime.engine.dispose()


def test_smsc_found_by_our_id_is_not_resent_and_its_status_recorded(database_url, httpserver):
    log: list[tuple[str, str]] = []
    smsc_stand_in(httpserver, log, status=1)
    sms = CascadeStep("sms", "smsc", timedelta(hours=1), on_unknown="resend")
    runtime, clock, client, worker = setup(database_url, httpserver, "smsc", {"apikey": "k"}, sms)
    try:
        book(client, 3, 9500)
        run(worker, clock, 5)
        assert [what for what, _ in log] == ["send", "status"]  # found: even `resend` sends nothing more
        job = confirmation(client, 9500)
        assert job["status"] == "delivered" and job["attempts"][0]["status"] == "delivered"
        assert any("asked smsc by our id: found" in d for d in trail(runtime))
    finally:
        worker.close()
        runtime.engine.dispose()
