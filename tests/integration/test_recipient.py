"""A job goes to its booking's patient as the booking stands at send time, never to whom it was planned for.

Driven through the real doors: YCLIENTS webhooks in, the worker out, SMS.ru's wire format on a local server
that records every number a message went to.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.entrypoints.worker import Worker
from connector.tenants import CascadeStep, demo_tenant
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.intake import deliver, runtime_of

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow, the visit is on 3 December at 10:00
REMINDER_DAY_BEFORE = datetime(2026, 12, 2, 7, 0, 1, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
OLD, NEW = "+79161234560", "+79161234566"
RECORD = 7100


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sms(database_url, httpserver):
    """A runtime whose only step is SMS.ru on a local server; `sent` lists the numbers messages went to."""
    from werkzeug import Response

    from connector.web import create_app

    sent: list[str] = []

    def send(request):
        to = request.form["to"]
        sent.append(to)
        return Response(json.dumps({"status": "OK", "status_code": 100, "sms": {
            to: {"status": "OK", "status_code": 100, "sms_id": f"000123-{len(sent):06d}"}}}),
            content_type="application/json")

    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(send)
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                     providers={"smsru": {"base_url": httpserver.url_for("/").rstrip("/"), "api_id": "k"}})
    clock = Clock(START)
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    worker = Worker(runtime, concurrency=2, name="recipient")
    yield create_app(runtime).test_client(), worker, clock, sent, runtime
    worker.close()
    runtime.engine.dispose()


def post(client, clock, status: str, phone: str | None) -> None:
    """A YCLIENTS webhook for the record, applied by the intake at once (at the clock's now)."""
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["status"] = status
    body["resource_id"] = body["data"]["id"] = RECORD
    body["data"]["last_change_date"] = clock().isoformat()  # a newer version each time: never stale
    if phone is None:
        body["data"]["client"] = None
    else:
        body["data"]["client"]["phone"] = phone
    event = deliver(client, runtime_of(client), f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    assert event["outcome"] == "applied", event


def run(worker: Worker, clock: Clock, passes: int = 3) -> None:
    for _ in range(passes):
        worker.tick()
        clock.now += timedelta(seconds=1)


def view(client) -> dict:
    return client.get(f"/api/v1/demo/bookings/yclients/{RECORD}", headers=AUTH).get_json()


def reminder(client) -> dict:
    return next(job for job in view(client)["jobs"] if job["kind"] == "reminder" and job["due_at"].startswith(
        "2026-12-02"))


def recipient_changes(client, job_id: int) -> list[str]:
    return [e["detail"] for e in view(client)["events"] if e["job_id"] == job_id and e["what"] == "job.recipient"]


def test_a_client_given_later_gets_the_reminder(sms):
    client, worker, clock, sent, _ = sms
    post(client, clock, "create", None)  # booked with no client yet
    run(worker, clock)
    post(client, clock, "update", NEW)
    clock.now = REMINDER_DAY_BEFORE
    run(worker, clock)
    job = reminder(client)
    assert job["status"] == "awaiting_delivery", job
    assert sent == [NEW.lstrip("+")]
    assert recipient_changes(client, job["id"]) == [f"recipient changed: no patient → patient #{1}"]


def test_a_corrected_phone_gets_the_reminder_and_the_old_one_nothing_more(sms):
    client, worker, clock, sent, _ = sms
    post(client, clock, "create", OLD)
    run(worker, clock)
    assert sent == [OLD.lstrip("+")]  # the confirmation, before anyone noticed the typo
    post(client, clock, "update", NEW)
    clock.now = REMINDER_DAY_BEFORE
    run(worker, clock)
    assert sent == [OLD.lstrip("+"), NEW.lstrip("+")]
    [change] = recipient_changes(client, reminder(client)["id"])
    assert change == "recipient changed: patient #1 → patient #2"
    assert "7916" not in change


def test_a_removed_client_gets_nothing_and_nor_does_the_previous_one(sms):
    client, worker, clock, sent, _ = sms
    post(client, clock, "create", OLD)
    run(worker, clock)
    post(client, clock, "update", None)  # YCLIENTS sends whole records: the client was taken off this visit
    clock.now = REMINDER_DAY_BEFORE
    run(worker, clock)
    assert sent == [OLD.lstrip("+")]  # the confirmation only
    job = reminder(client)
    assert (job["status"], job["reason"]) == ("skipped", "no phone number for the patient")
    assert recipient_changes(client, job["id"]) == ["recipient changed: patient #1 → no patient"]
    assert view(client)["patient"] is None


def test_a_phone_corrected_while_a_worker_held_the_job_goes_to_the_new_number(sms):
    """The race: a worker claimed the reminder, the correction came, the worker died; the next one re-checks."""
    from connector.store.queue import claim_due_jobs

    client, worker, clock, sent, runtime = sms
    post(client, clock, "create", OLD)
    run(worker, clock)
    clock.now = REMINDER_DAY_BEFORE
    with runtime.sessions.begin() as session:
        # re-planning leaves a claimed job alone
        assert claim_due_jobs(session, worker_id="someone-else", now=clock(), limit=10)
    post(client, clock, "update", NEW)
    clock.now += timedelta(minutes=3)  # the other worker's lease ran out
    run(worker, clock)
    assert sent == [OLD.lstrip("+"), NEW.lstrip("+")]
    assert recipient_changes(client, reminder(client)["id"]) == ["recipient changed: patient #1 → patient #2"]
