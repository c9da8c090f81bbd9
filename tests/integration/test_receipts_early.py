"""Early receipts on the real database: a provider that calls back before its send's answer is recorded (Wahelp,
which can only call back) ends `delivered`, not ignored; a report no attempt ever takes is ignored after an hour,
and the status page shows it meanwhile.

The Wahelp stand-in speaks its wire format (tests/integration/channels/test_wahelp.py) and posts the delivered
callback to our /callbacks/wahelp door before it answers the send. Time is the runtime's clock; nothing sleeps.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Request, Response

from connector.channels.base import StatusReport
from connector.core.model import AttemptStatus, InboundOutcome
from connector.entrypoints.worker import Worker
from connector.store.early_receipts import hold
from connector.store.models import EarlyReceipt, InboundEvent
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.integration.test_delivery import START, Clock, book, confirmation
from tests.staff import sign_in

PROJECT, SECRET = "4242", "cb-secret-0123456789"
UUIDS = {"whatsapp": "uuid-wa"}
CASCADE = (CascadeStep("whatsapp", "wahelp", timedelta(minutes=1)),
           CascadeStep("sms", "sandbox", timedelta(minutes=1)))  # digit 6: the sandbox's SMS is delivered


class FakeWahelp:
    """Login, users and send_message; `early` posts the message's delivered callback before the send's answer."""

    def __init__(self, httpserver, early: bool):
        self.client = None
        self.early = early
        self.sends = 0
        httpserver.expect_request("/api/app/user/login", method="POST").respond_with_json(
            {"success": True, "data": {"access_token": "t-1"}})
        base = f"/api/app/projects/{PROJECT}/channels/{UUIDS['whatsapp']}"
        httpserver.expect_request(f"{base}/users", method="POST").respond_with_json(
            {"success": True, "data": {"id": 101}})
        httpserver.expect_request(f"{base}/send_message/101", method="POST").respond_with_handler(self._send)
        self.base_url = httpserver.url_for("/api")

    def _send(self, request: Request) -> Response:
        self.sends += 1
        message_id = f"m-{self.sends}"
        if self.early:
            answer = self.client.post(f"/callbacks/wahelp/demo?secret={SECRET}", json={
                "event": "channel.message.updated", "data": {"id": message_id, "status": "delivered"}})
            assert answer.status_code == 200
        return Response(json.dumps({"success": True, "data": {"id": message_id, "status": "sent"}}),
                        content_type="application/json")


@pytest.fixture
def setup(database_url, httpserver):
    held = []

    def build(early: bool):
        wahelp = FakeWahelp(httpserver, early)
        tenant = replace(demo_tenant(DEMO_TOKEN), cascade=CASCADE, providers={
            "wahelp": {"base_url": wahelp.base_url, "login": "clinic", "password": "pw", "project_id": PROJECT,
                       "channels": UUIDS, "callback_secret": SECRET, "timeout": 2},
            "sandbox": {"delay": 2}})
        runtime = make_runtime(database_url, [tenant])
        clock = runtime.clock = Clock(START)
        client = wahelp.client = create_app(runtime).test_client()
        worker = Worker(runtime, concurrency=2, name="early")
        held.append((runtime, worker))
        return wahelp, runtime, clock, client, worker

    yield build
    for runtime, worker in held:
        worker.close()
        runtime.engine.dispose()


def run(worker: Worker, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        worker.tick()
        clock.advance(1)


def callbacks(runtime) -> list[tuple[str, str | None]]:
    with runtime.sessions() as session:
        return [(e.outcome, e.error) for e in session.scalars(
            select(InboundEvent).where(InboundEvent.source == "callback:wahelp").order_by(InboundEvent.id))]


def test_a_receipt_before_its_send_is_recorded_ends_delivered_with_no_second_channel(setup):
    wahelp, runtime, clock, client, worker = setup(early=True)
    book(client, 6, 7100)
    run(worker, clock, 90)  # past the step's minute: a lost receipt would have sent the SMS
    job = confirmation(client, 7100)
    assert job["status"] == "delivered", job["reason"]
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("whatsapp", "delivered")]
    assert wahelp.sends == 1
    assert callbacks(runtime) == [("applied", "1 report(s) applied when their attempt got its id")]
    with runtime.sessions() as session:
        assert session.scalars(select(EarlyReceipt)).all() == []


def test_a_receipt_kept_after_its_groups_lookup_is_applied_by_the_next_pass(setup):
    # The race the worker pass is for: the callback's report is kept just after the record step looked.
    wahelp, runtime, clock, client, worker = setup(early=False)
    book(client, 6, 7200)
    run(worker, clock, 2)
    assert confirmation(client, 7200)["status"] == "awaiting_delivery"
    with runtime.sessions.begin() as session:
        inbound = InboundEvent(tenant_id="demo", source="callback:wahelp", received_at=clock(), headers={},
                               body="{}", outcome=InboundOutcome.HELD)
        session.add(inbound)
        session.flush()
        hold(session, [StatusReport(AttemptStatus.DELIVERED, provider_message_id="m-1", raw_status="delivered")],
             tenant_id="demo", provider="wahelp", inbound=inbound, now=clock())
    run(worker, clock, 1)
    job = confirmation(client, 7200)
    assert (job["status"], [(a["channel"], a["status"]) for a in job["attempts"]]) == (
        "delivered", [("whatsapp", "delivered")])
    assert callbacks(runtime)[-1][0] == "applied"


def test_a_receipt_no_attempt_takes_is_shown_then_ignored_after_an_hour(setup):
    wahelp, runtime, clock, client, worker = setup(early=False)
    answer = client.post(f"/callbacks/wahelp/demo?secret={SECRET}", json={
        "event": "channel.message.updated", "data": {"id": "m-nobody", "status": "delivered"}})
    assert answer.status_code == 200
    assert callbacks(runtime) == [("held", "1 report(s) for message ids not known yet: kept for 1 h")]
    sign_in(client)
    page = client.get("/status/demo").get_data(as_text=True)
    assert "m-nobody" in page
    clock.advance(59 * 60)
    run(worker, clock, 1)
    assert callbacks(runtime)[0][0] == "held"
    clock.advance(60)
    run(worker, clock, 1)
    assert callbacks(runtime) == [("ignored", "1 report(s) for message ids no attempt took within 1 h: ignored")]
    sign_in(client)  # an hour idle has ended the session
    page = client.get("/status/demo").get_data(as_text=True)
    assert "/status/sign-out" in page and "m-nobody" not in page


class RacingWahelp(FakeWahelp):
    """Every send answered at once, its delivered callback posted from another thread a few ms later: it races
    the worker's record step, as a fast provider's does (17 of 20 came first in the issue's trial)."""

    def __init__(self, httpserver, app):
        super().__init__(httpserver, early=False)
        self.app, self.threads = app, []
        self.lock = threading.Lock()

    def _send(self, request: Request) -> Response:
        with self.lock:
            self.sends += 1
            message_id = f"m-{self.sends}"
        thread = threading.Thread(target=self._call_back, args=(message_id, random.uniform(0, 0.6)))
        self.threads.append(thread)
        thread.start()
        return Response(json.dumps({"success": True, "data": {"id": message_id, "status": "sent"}}),
                        content_type="application/json")

    def _call_back(self, message_id: str, delay: float) -> None:
        time.sleep(delay)
        self.app.test_client().post(f"/callbacks/wahelp/demo?secret={SECRET}", json={
            "event": "channel.message.updated", "data": {"id": message_id, "status": "delivered"}})


@pytest.mark.postgres
def test_a_hundred_racing_callbacks_none_lost_none_sent_twice(postgres_database, httpserver):
    from tests.conftest import truncate_all

    truncate_all(postgres_database)
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=CASCADE, providers={
        "wahelp": {"base_url": httpserver.url_for("/api"), "login": "clinic", "password": "pw",
                   "project_id": PROJECT, "channels": UUIDS, "callback_secret": SECRET, "timeout": 2},
        "sandbox": {"delay": 2}})
    runtime = make_runtime(postgres_database, [tenant])
    clock = runtime.clock = Clock(START)
    app = create_app(runtime)
    wahelp = RacingWahelp(httpserver, app)
    worker = Worker(runtime, concurrency=8, name="racing")
    try:
        jobs = 100
        for n in range(jobs):
            book(app.test_client(), 6, 8000 + n)
        worker.dispatch()
        for thread in wahelp.threads:
            thread.join()
        with runtime.sessions() as session:
            outcomes = Counter(e.outcome for e in session.scalars(
                select(InboundEvent).where(InboundEvent.source == "callback:wahelp")))
            held_at_end_of_pass = len(session.scalars(select(EarlyReceipt)).all())
        run(worker, clock, 90)  # past the step's minute: a lost receipt would send the SMS
        client = app.test_client()
        finals = Counter(confirmation(client, 8000 + n)["status"] for n in range(jobs))
        second = sum(len(confirmation(client, 8000 + n)["attempts"]) - 1 for n in range(jobs))
        with runtime.sessions() as session:
            settled = Counter(e.outcome for e in session.scalars(
                select(InboundEvent).where(InboundEvent.source == "callback:wahelp")))
        print(f"\nfault run: {jobs} jobs, {wahelp.sends} wahelp sends, {sum(outcomes.values())} callbacks "
              f"(at the end of the send pass: {dict(outcomes)}; still held then: {held_at_end_of_pass}); "
              f"after 90 s: callbacks {dict(settled)}, jobs {dict(finals)}, second-channel sends {second}")
        assert wahelp.sends == jobs
        assert finals == {"delivered": jobs}
        assert second == 0
        assert settled == {"applied": jobs}
    finally:
        worker.close()
        runtime.engine.dispose()
