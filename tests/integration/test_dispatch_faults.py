"""The worker's pass under database faults, on the real database: answers are never dropped (a record that
failed is written after the reconnect, nothing is sent twice), a pass that breaks hands its unsent jobs back at
once with an audit line, and an attempt whose call never began is withdrawn, not counted unknown."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from werkzeug import Response

from connector.entrypoints.worker import Worker
from connector.store.models import AuditEvent, DeliveryAttempt, NotificationJob
from connector.tenants import CascadeStep, demo_tenant
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime, truncate_all
from tests.integration.test_delivery import START, Clock, book, run
from tests.sockets import TcpProxy


def jobs_and_attempts(runtime):
    with runtime.sessions() as session:
        jobs = session.scalars(select(NotificationJob).where(NotificationJob.kind == "confirmation")
                               .order_by(NotificationJob.id)).all()
        attempts = session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)).all()
        trail = session.scalars(select(AuditEvent).where(AuditEvent.job_id.is_not(None))).all()
    return jobs, attempts, trail


@pytest.mark.postgres
def test_a_connection_dropped_while_recording_loses_no_answer_and_sends_nothing_twice(postgres_database, httpserver):
    # SMS.ru stand-in first, the sandbox's MAX after it: an answer dropped would look like a dead worker's send
    # once the lease ran out, and go again by MAX.
    truncate_all(postgres_database)
    url = make_url(postgres_database)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def send(request):
        to = request.form["to"]
        with lock:
            calls[to] = calls.get(to, 0) + 1
            proxy.arm(down_for=1.5)  # the worker's next statement (the record) loses its connection
        return Response(json.dumps({"status": "OK", "status_code": 100, "sms": {
            to: {"status": "OK", "status_code": 100, "sms_id": f"id-{to}"}}}), content_type="application/json")

    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(send)
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=(CascadeStep("sms", "smsru", timedelta(minutes=10)),
                                                       CascadeStep("max", "sandbox", timedelta(minutes=10))),
                     providers={**demo_tenant(DEMO_TOKEN).providers,
                                "smsru": {"base_url": httpserver.url_for("/").rstrip("/"), "api_id": "k"}})
    clock = Clock(START)
    runtime = make_runtime(url.set(port=proxy.port).render_as_string(hide_password=False), [tenant])
    runtime.clock = clock
    client = create_app(runtime).test_client()
    for digit in range(5):
        book(client, digit, 7000 + digit)
    worker = Worker(runtime, concurrency=8, retry_base=0.01, name="blipped")
    try:
        assert worker.dispatcher.run_once() == 5  # the record failed, was tried again, and landed
        assert proxy.cuts >= 1
        jobs, attempts, _ = jobs_and_attempts(runtime)
        assert {job.status for job in jobs} == {"awaiting_delivery"}
        # SMS.ru's code 100 is its queue: accepted, with its id
        assert [(a.channel, a.status) for a in attempts] == [("sms", "queued")] * 5
        assert {a.provider_message_id for a in attempts} == {f"id-7916123456{d}" for d in range(5)}
        clock.advance(150)  # the claim's lease would have run out by now
        run(worker, clock, 5)
        jobs, attempts, _ = jobs_and_attempts(runtime)
        assert len(attempts) == 5 and set(calls.values()) == {1} and len(calls) == 5  # nobody got a second one
    finally:
        worker.close()
        runtime.engine.dispose()
        proxy.close()


CLOSERS: list = []


def close_under(runtime, statement: str, nth: int | range = 1) -> list[int]:
    """Close the database connection under the session at the `nth` statement starting with `statement` (each
    of a range of them: a database that stays away)."""
    seen = [0]

    def hook(conn, cursor, sql, parameters, context, executemany):
        if sql.lstrip().upper().startswith(statement):
            seen[0] += 1
            if seen[0] == nth or (isinstance(nth, range) and seen[0] in nth):
                conn.connection.dbapi_connection.close()

    event.listen(runtime.engine, "before_cursor_execute", hook)
    CLOSERS.append(hook)
    return seen


@pytest.fixture
def sandboxed(database_url):
    clock = Clock(START)
    runtime = make_runtime(database_url)
    runtime.clock = clock
    worker = Worker(runtime, concurrency=2, retry_base=0.01, name="faulty")
    yield runtime, clock, worker, create_app(runtime).test_client()
    worker.close()
    runtime.engine.dispose()


def test_a_pass_whose_prepare_broke_releases_its_jobs_at_once_with_an_audit_line(sandboxed):
    runtime, clock, worker, client = sandboxed
    for n in range(3):
        book(client, 0, 8000 + n)
    close_under(runtime, "INSERT INTO DELIVERY_ATTEMPT")
    with pytest.raises(Exception):  # noqa: B017 - whichever the driver says; the jobs are what matter
        worker.dispatcher.run_once()
    jobs, attempts, trail = jobs_and_attempts(runtime)
    # not left `sending` under a lease for two minutes in silence: back at once, and the trail says why
    assert [(job.status, job.lease_owner) for job in jobs] == [("scheduled", None)] * 3 and attempts == []
    released = [e for e in trail if e.what == "job.scheduled"]
    assert len(released) == 3 and all("released: the worker's pass failed" in e.detail for e in released)
    run(worker, clock, 10)
    jobs, attempts, _ = jobs_and_attempts(runtime)
    assert {job.status for job in jobs} == {"delivered"} and [a.status for a in attempts] == ["delivered"] * 3


def test_a_pass_broken_mid_send_records_what_went_and_releases_the_rest(sandboxed):
    runtime, clock, worker, client = sandboxed
    for n in range(6):
        book(client, 0, 8100 + n)
    # the window is 2 (the pool's size), its groups of one: the second group's start breaks for good (every
    # try), the first group's answer is kept
    close_under(runtime, "UPDATE DELIVERY_ATTEMPT SET STARTED_AT", nth=range(2, 100))
    with pytest.raises(Exception):  # noqa: B017
        worker.dispatcher.run_once()
    event.remove(runtime.engine, "before_cursor_execute", CLOSERS.pop())
    jobs, attempts, trail = jobs_and_attempts(runtime)
    assert sorted(job.status for job in jobs) == ["awaiting_delivery"] * 1 + ["scheduled"] * 5
    assert sorted(a.status for a in attempts) == ["sent"] * 1 + ["withdrawn"] * 5
    assert len([e for e in trail if e.what == "attempt.withdrawn"]) == 5
    run(worker, clock, 10)
    jobs, attempts, _ = jobs_and_attempts(runtime)
    assert {job.status for job in jobs} == {"delivered"}
    per_job: dict[int, list[str]] = {}
    for attempt in attempts:
        per_job.setdefault(attempt.job_id, []).append(attempt.status)
    # each job got exactly one message: the withdrawn ones never went out
    assert sorted(per_job.values()) == [["delivered"]] * 1 + [["withdrawn", "delivered"]] * 5
