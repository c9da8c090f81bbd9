"""A send lost with its worker (killed mid-call) is resolved by its step's on_unknown, never shown «failed» when it
may have reached the patient: the last step's default `wait` awaits receipts, then ends unconfirmed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from connector.entrypoints.worker import Worker
from connector.store.queue import claim_due_jobs
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.integration.test_delivery import AUTH, START, Clock, book, confirmation, run


@pytest.fixture
def one_step(database_url):
    """The demo tenant with MAX alone: its only step is its last."""
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=(CascadeStep("max", "sandbox", timedelta(minutes=10)),))
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock = Clock(START)
    worker = Worker(runtime, concurrency=2, retry_base=0.01, name="survivor")
    yield runtime, create_app(runtime).test_client(), clock, worker
    worker.close()
    runtime.engine.dispose()


def kill_mid_call(runtime, clock) -> None:
    """A worker claims the job, writes its attempt, begins the call, and dies before the answer."""
    dead = Worker(runtime, concurrency=1, name="dead-worker")
    with runtime.sessions.begin() as session:
        ids = claim_due_jobs(session, worker_id=dead.id, now=clock(), limit=10)
    with runtime.sessions.begin() as session:
        sends = dead.dispatcher._prepare(session, ids, clock())
    dead.dispatcher._start(sends)
    dead.close()


def test_a_last_step_lost_with_its_worker_awaits_receipts_then_ends_unconfirmed(one_step):
    runtime, client, clock, worker = one_step
    book(client, 0, 7100)
    kill_mid_call(runtime, clock)
    clock.advance(150)  # the dead worker's lease runs out
    run(worker, clock, 5)
    job = confirmation(client, 7100)
    # Not «failed» (the SMS may well have gone), and not sent again: one attempt, its outcome unknown.
    assert job["status"] == "awaiting_delivery", job
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("max", "sent")]
    assert job["attempts"][0]["error"].startswith("outcome unknown")
    view = client.get("/api/v1/demo/bookings/yclients/7100", headers=AUTH).get_json()
    details = [e["detail"] for e in view["events"] if e["job_id"] == job["id"] and e["what"] == "attempt.unknown"]
    assert details == ["worker stopped mid-send; on_unknown=wait: no other message; awaiting receipts for it"]
    clock.advance(timedelta(days=2).total_seconds())  # past the sandbox's status window
    run(worker, clock, 3)
    job = confirmation(client, 7100)
    assert job["status"] == "unconfirmed", job
    assert len(job["attempts"]) == 1


def test_resend_sends_a_lost_send_once_more_on_its_step(database_url):
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=(
        CascadeStep("max", "sandbox", timedelta(minutes=10), on_unknown="resend"),
        CascadeStep("telegram", "sandbox", timedelta(minutes=10))))
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock = Clock(START)
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, retry_base=0.01, name="survivor")
    try:
        book(client, 0, 7200)
        kill_mid_call(runtime, clock)
        clock.advance(150)
        run(worker, clock, 10)
        job = confirmation(client, 7200)
        assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("max", "failed"), ("max", "delivered")]
        assert job["status"] == "delivered"
    finally:
        worker.close()
        runtime.engine.dispose()


def test_an_answer_recorded_after_another_worker_took_the_job_leaves_the_job_to_that_worker(one_step):
    runtime, client, clock, worker = one_step
    book(client, 0, 7300)
    slow = Worker(runtime, concurrency=1, name="slow-worker")
    try:
        with runtime.sessions.begin() as session:
            ids = claim_due_jobs(session, worker_id=slow.id, now=clock(), limit=10)
        with runtime.sessions.begin() as session:
            sends = slow.dispatcher._prepare(session, ids, clock())
        slow.dispatcher._start(sends)
        answers = [slow.dispatcher._send(send) for send in sends]
        # The database was away past the lease: another worker claimed the job before the answer could land.
        clock.advance(150)
        with runtime.sessions.begin() as session:
            assert claim_due_jobs(session, worker_id="other-worker", now=clock(), limit=10) == ids
        slow.dispatcher._record_now(answers, held=ids)
    finally:
        slow.close()
    job = confirmation(client, 7300)
    assert job["status"] == "sending"  # still the other worker's to decide, not overwritten by the late answer
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("max", "sent")]  # the answer is kept
