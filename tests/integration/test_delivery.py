"""The delivery engine on the real database: the sandbox's ten paths, leases, a dead worker, late receipts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.entrypoints.worker import Worker
from connector.store.models import DeliveryAttempt, NotificationJob
from tests.conftest import API_TOKEN, DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import deliver, runtime_of

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow: outside quiet hours
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

# last digit → (the confirmation's final status, [(channel, attempt status), ...])
EXPECTED = {
    0: ("delivered", [("max", "delivered")]),
    1: ("read", [("max", "read")]),
    2: ("delivered", [("max", "not_registered"), ("telegram", "delivered")]),
    3: ("delivered", [("max", "expired"), ("telegram", "not_registered"), ("whatsapp", "delivered")]),
    4: ("delivered", [("max", "not_registered"), ("telegram", "not_registered"), ("whatsapp", "delivered")]),
    5: ("delivered", [("max", "not_registered"), ("telegram", "not_registered"), ("whatsapp", "expired"),
                      ("sms", "delivered")]),
    6: ("delivered", [("max", "not_registered"), ("telegram", "not_registered"), ("whatsapp", "not_registered"),
                      ("sms", "delivered")]),
    7: ("failed", [("max", "failed"), ("telegram", "failed"), ("whatsapp", "failed"), ("sms", "failed")]),
    8: ("delivered", [("max", "delivered")]),
    9: ("delivered", [("max", "delivered"), ("telegram", "delivered")]),
}


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def book(client, digit: int, record_id: int, visit: str = "2026-12-03T10:00:00+03:00") -> dict:
    """A new booking, applied by the intake at once (as a worker running beside the web would): its jobs are
    planned at the clock's now. The inbound event as the API shows it."""
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = f"+7916123456{digit}"
    body["data"]["datetime"] = visit
    event = deliver(client, runtime_of(client), f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    assert event["outcome"] == "applied", event
    return event


def confirmation(client, record_id: int) -> dict:
    view = client.get(f"/api/v1/demo/bookings/yclients/{record_id}", headers=AUTH).get_json()
    return next(job for job in view["jobs"] if job["kind"] == "confirmation")


def run(worker: Worker, clock: Clock, seconds: int) -> None:
    for _ in range(seconds):
        worker.tick()
        clock.advance(1)


@pytest.fixture
def clock(runtime):
    clock = Clock(START)
    runtime.clock = clock
    return clock


@pytest.fixture
def worker(runtime):
    worker = Worker(runtime, concurrency=8, retry_base=0.01, name="test-worker")
    yield worker
    worker.close()


def test_each_last_digit_walks_its_cascade_path(client, clock, worker):
    for digit in range(10):
        book(client, digit, 1000 + digit)
    run(worker, clock, 120)
    for digit, (status, path) in EXPECTED.items():
        job = confirmation(client, 1000 + digit)
        assert job["status"] == status, (digit, job)
        assert [(a["channel"], a["status"]) for a in job["attempts"]] == path, digit
        assert "Смирнов" not in job["text"] and "Иван Петрович" in job["text"]


def test_late_receipt_is_recorded_and_restarts_nothing(client, clock, worker, runtime):
    book(client, 9, 2009)
    run(worker, clock, 120)
    job = confirmation(client, 2009)
    max_attempt, telegram_attempt = job["attempts"]
    assert max_attempt["delivered_at"] > telegram_attempt["delivered_at"]  # MAX's receipt came after the fallback
    view = client.get("/api/v1/demo/bookings/yclients/2009", headers=AUTH).get_json()
    sends = [e for e in view["events"] if e["job_id"] == job["id"] and e["what"] == "attempt.queued"]
    assert len(sends) == 2  # no third message went out because of the late receipt


def test_reminder_due_after_the_visit_started_expires(client, clock, worker):
    # 3 h ahead: confirmation + the 2 h reminder, planned by the intake as the webhook came
    book(client, 0, 3000, visit="2026-11-27T15:00:00+03:00")
    clock.now = datetime(2026, 11, 27, 12, 1, tzinfo=UTC)  # then the worker was down until after the visit began
    run(worker, clock, 3)
    view = client.get("/api/v1/demo/bookings/yclients/3000", headers=AUTH).get_json()
    assert {job["kind"]: job["status"] for job in view["jobs"]} == {"confirmation": "expired", "reminder": "expired"}
    assert all(not job["attempts"] for job in view["jobs"])


def test_a_job_cancelled_after_it_was_claimed_is_not_sent(client, clock, worker, runtime):
    book(client, 0, 4000)
    with runtime.sessions.begin() as session:
        from connector.store.queue import claim_due_jobs

        assert claim_due_jobs(session, worker_id="someone-else", now=clock(), limit=10)
    body = json.loads(sample("yclients", "record_delete.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = 4000
    clock.advance(1)
    cancelled = deliver(client, runtime, f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    assert cancelled["outcome"] == "applied", cancelled
    clock.advance(200)  # the other worker died; its lease ran out
    run(worker, clock, 5)
    job = confirmation(client, 4000)
    assert job["status"] == "cancelled" and job["attempts"] == []


@pytest.mark.parametrize(("started", "path"), [
    # it died with the call begun: the outcome is unknown, and MAX is never tried twice
    (True, [("max", "failed"), ("telegram", "delivered")]),
    # it died before the call began: nothing went out, so MAX goes as if nothing happened (it used to be
    # counted unknown too, and the patient got the next channel, or nothing on the last step)
    (False, [("max", "withdrawn"), ("max", "delivered")]),
])
def test_a_worker_killed_mid_send_loses_nothing_and_never_resends_on_that_channel(client, clock, worker, runtime,
                                                                                  started, path):
    book(client, 0, 5000)
    # A worker claimed the job and wrote its attempt as queued, then died before the provider answered.
    dead = Worker(runtime, concurrency=1, name="dead-worker")
    with runtime.sessions.begin() as session:
        from connector.store.queue import claim_due_jobs

        ids = claim_due_jobs(session, worker_id=dead.id, now=clock(), limit=10)
    with runtime.sessions.begin() as session:
        sends = dead.dispatcher._prepare(session, ids, clock())
    if started:
        dead.dispatcher._start(sends)
    dead.close()
    run(worker, clock, 5)
    assert confirmation(client, 5000)["status"] == "sending"  # still leased to the dead worker
    clock.advance(150)
    run(worker, clock, 30)
    job = confirmation(client, 5000)
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == path
    assert job["status"] == "delivered"
    view = client.get("/api/v1/demo/bookings/yclients/5000", headers=AUTH).get_json()
    trail = [e["what"] for e in view["events"] if e["job_id"] == job["id"]]
    assert ("attempt.withdrawn" in trail) is not started and ("attempt.unknown" in trail) is started


def test_not_registered_is_remembered_for_the_patient(client, clock, worker, runtime):
    book(client, 2, 6000)
    run(worker, clock, 30)
    # A second booking of the same patient: MAX is skipped at once, and the audit trail says why.
    book(client, 2, 6001)
    run(worker, clock, 30)
    job = confirmation(client, 6001)
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [("telegram", "delivered")]
    view = client.get("/api/v1/demo/bookings/yclients/6001", headers=AUTH).get_json()
    assert any(e["what"] == "step.skipped" and "max" in e["detail"] for e in view["events"])


def test_unknown_message_ids_in_callbacks_are_kept(client, runtime, clock):
    response = client.post("/callbacks/sandbox/demo", json={"id": "sbx-nobody", "status": "delivered"})
    assert response.status_code == 200
    events = client.get("/api/v1/demo/inbound-events", headers=AUTH).get_json()["events"]
    assert events[0]["source"] == "callback:sandbox" and events[0]["outcome"] == "held"
    assert "message ids not known yet" in events[0]["error"]


@pytest.mark.postgres
def test_two_workers_send_each_job_exactly_once(postgres_database):
    from concurrent.futures import ThreadPoolExecutor

    from connector.core.model import BookingFacts, EventAction, Patient, SourceEvent
    from connector.store.inbound import event_row, outcomes_of, store_many
    from connector.usecases.intake import drain
    from tests.conftest import make_runtime, truncate_all

    truncate_all(postgres_database)
    runtime = make_runtime(postgres_database)
    clock = Clock(START)
    runtime.clock = clock
    rows = []
    for n in range(1500):
        facts = BookingFacts(external_id=str(n), starts_at=datetime(2026, 12, 3, 7, tzinfo=UTC),
                             patient=Patient(phone=f"+7916{n:06d}0"))
        rows.append(event_row(tenant_id="demo", source="yclients", body="{}", headers={}, now=clock(),
                              event=SourceEvent(EventAction.UPSERT, str(n), None, facts)))
    with runtime.sessions.begin() as session:
        ids = store_many(session, rows)
    drain(runtime)  # the intake plans the 1500 confirmations before either worker dispatches
    with runtime.sessions() as session:
        assert outcomes_of(session, ids) == {"applied": 1500}
    workers = [Worker(runtime, concurrency=8, name=f"w{i}") for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        handled = list(pool.map(lambda w: w.dispatcher.run_until_idle(max_passes=100), workers))
    with runtime.sessions() as session:
        attempts = session.scalars(select(DeliveryAttempt.job_id)).all()
        confirmations = session.scalars(select(NotificationJob.id).where(NotificationJob.kind == "confirmation")).all()
    per_job = {}
    for job_id in attempts:
        per_job[job_id] = per_job.get(job_id, 0) + 1
    assert len(confirmations) == 1500
    assert sum(handled) == 1500 and min(handled) > 0  # both took a share, none took the same job
    assert set(per_job) == set(confirmations) and set(per_job.values()) == {1}
    for w in workers:
        w.close()
    runtime.engine.dispose()


def warming_runtime(database_url: str, clock: Clock):
    from dataclasses import replace

    from connector.tenants import demo_tenant
    from tests.conftest import make_runtime

    tenant = demo_tenant(DEMO_TOKEN)
    warm = {"delay": 2, "warmup": {"start": 3, "growth": 2, "since": "2026-11-27"}}
    runtime = make_runtime(database_url, [replace(tenant, providers={"sandbox": warm})])
    runtime.clock = clock
    return runtime


def test_warm_up_cap_holds_the_rest_until_tomorrow_spread_over_the_day(database_url):
    from connector.web import create_app

    clock = Clock(START)
    runtime = warming_runtime(database_url, clock)
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=4, name="warm")
    for n in range(5):
        book(client, 0, 8000 + n, visit="2026-12-03T10:00:00+03:00")
    run(worker, clock, 10)
    jobs = [confirmation(client, 8000 + n) for n in range(5)]
    assert sorted(job["status"] for job in jobs) == ["delivered"] * 3 + ["scheduled"] * 2
    waiting = sorted(job["next_try_at"] for job in jobs if job["status"] == "scheduled")
    # Tomorrow's cap is 6: the day's sending hours (09:00-21:00 Moscow) are split in six, two slots taken.
    assert waiting == ["2026-11-28T06:00:00Z", "2026-11-28T08:00:00Z"]
    clock.now = datetime(2026, 11, 28, 8, 0, 1, tzinfo=UTC)
    run(worker, clock, 10)
    assert all(confirmation(client, 8000 + n)["status"] == "delivered" for n in range(5))
    worker.close()
    runtime.engine.dispose()


def test_over_the_cap_a_visit_before_tomorrow_goes_by_the_next_channel(database_url):
    from connector.web import create_app

    clock = Clock(START)
    runtime = warming_runtime(database_url, clock)
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=4, name="warm")
    for n in range(4):
        book(client, 0, 8100 + n, visit="2026-11-27T20:00:00+03:00")  # this evening
    run(worker, clock, 10)
    channels = sorted(tuple(a["channel"] for a in confirmation(client, 8100 + n)["attempts"]) for n in range(4))
    # All four steps are the same sandbox account: three go today; the fourth cannot wait until tomorrow and
    # finds no other account, so it fails, and the audit trail says why.
    assert channels.count(("max",)) == 3
    [failed] = [n for n in range(4) if confirmation(client, 8100 + n)["status"] != "delivered"]
    assert confirmation(client, 8100 + failed)["status"] == "failed"
    view = client.get(f"/api/v1/demo/bookings/yclients/{8100 + failed}", headers=AUTH).get_json()
    reasons = [e["detail"] for e in view["events"] if e["what"] == "step.skipped"]
    assert len(reasons) == 4 and all("warm-up cap of sandbox reached" in r for r in reasons)
    worker.close()
    runtime.engine.dispose()


def test_health_shows_whether_a_worker_is_beating(client, clock, worker):
    assert client.get("/healthz", headers=AUTH).get_json()["worker"] == "not running"
    worker.heartbeat()
    answer = client.get("/healthz", headers=AUTH).get_json()
    assert answer["worker"] == "running" and answer["workers"][0]["id"] == "test-worker"
    clock.advance(120)
    assert client.get("/healthz", headers=AUTH).get_json()["worker"] == "not running"


def test_a_provider_without_callbacks_is_polled_until_delivered(database_url, httpserver):
    """SMS.ru with no callback configured: the worker asks `sms/status` and the job ends delivered."""
    from dataclasses import replace

    from connector.tenants import CascadeStep, demo_tenant
    from connector.web import create_app
    from tests.conftest import make_runtime

    sent = {}

    def send(request):
        from werkzeug import Response

        to = request.form["to"]
        sent["to"] = to
        return Response(json.dumps({"status": "OK", "status_code": 100, "sms": {
            to: {"status": "OK", "status_code": 100, "sms_id": "000123-000001"}}}), content_type="application/json")

    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(send)
    httpserver.expect_request("/sms/status", method="POST").respond_with_json(
        {"status": "OK", "status_code": 100, "sms": {"000123-000001": {"status": "OK", "status_code": 103}}})
    tenant = replace(demo_tenant(DEMO_TOKEN), cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                     providers={"smsru": {"base_url": httpserver.url_for("/").rstrip("/"), "api_id": "k"}})
    clock = Clock(START)
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, name="poller")
    book(client, 6, 9000)
    run(worker, clock, 3)
    assert confirmation(client, 9000)["status"] == "awaiting_delivery"
    clock.advance(14 * 60)
    assert worker.poll() == 0  # the first question comes at a quarter of the step's hour
    clock.advance(60)
    assert worker.poll() == 1
    job = confirmation(client, 9000)
    assert job["status"] == "delivered" and job["attempts"][0]["status"] == "delivered"
    assert sent["to"] == "79161234566"
    worker.close()
    runtime.engine.dispose()


def test_only_one_worker_runs_on_a_sqlite_file(tmp_path):
    from connector.entrypoints.worker import SecondWorkerError, hold_sqlite_lock
    from tests.conftest import make_runtime

    url = f"sqlite:///{tmp_path / 'one.db'}"
    first, second = make_runtime(url), make_runtime(url)
    held = hold_sqlite_lock(first)
    with pytest.raises(SecondWorkerError, match="on SQLite run one worker"):
        hold_sqlite_lock(second)
    held.close()
    assert hold_sqlite_lock(second) is not None


def test_not_registered_is_believed_only_for_the_configured_time(database_url):
    from dataclasses import replace

    from connector.tenants import demo_tenant
    from connector.web import create_app
    from tests.conftest import make_runtime

    clock = Clock(START)
    runtime = make_runtime(database_url, [replace(demo_tenant(DEMO_TOKEN), remember_not_registered=timedelta(hours=1))])
    runtime.clock = clock
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, name="memory")
    book(client, 2, 6100)
    run(worker, clock, 10)
    clock.advance(2 * 3600)  # past the hour: MAX is worth asking again (the patient may have joined it)
    book(client, 2, 6101)
    run(worker, clock, 10)
    assert [a["channel"] for a in confirmation(client, 6101)["attempts"]] == ["max", "telegram"]
    worker.close()
    runtime.engine.dispose()


def test_the_tenants_preparation_text_reaches_the_message(database_url):
    from dataclasses import replace

    from connector.tenants import demo_tenant
    from connector.web import create_app
    from tests.conftest import make_runtime

    tenant = replace(demo_tenant(DEMO_TOKEN), preparations={"Приём кардиолога первичный": "Возьмите результаты ЭКГ."})
    clock = Clock(START)
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = clock
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, name="prep")
    book(client, 0, 6200)
    run(worker, clock, 3)
    assert "Подготовка: Возьмите результаты ЭКГ." in confirmation(client, 6200)["text"]
    worker.close()
    runtime.engine.dispose()


def test_metrics_come_from_the_ledger(client, clock, worker):
    from prometheus_client.parser import text_string_to_metric_families

    assert client.get("/metrics").status_code == 401
    book(client, 2, 6300)
    run(worker, clock, 10)
    clock.advance(600)
    book(client, 0, 6301)  # due now; no worker dispatches it: overdue after five minutes
    clock.advance(400)
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("connector_attempts_24h", (("channel", "max"), ("provider", "sandbox"),
                                               ("status", "not_registered"), ("tenant", "demo")))] == 1
    assert samples[("connector_jobs", (("kind", "confirmation"), ("status", "delivered"), ("tenant", "demo")))] == 1
    assert samples[("connector_jobs_overdue", (("tenant", "demo"),))] == 1
    assert samples[("connector_inbound_events_24h", (("outcome", "applied"), ("source", "yclients"),
                                                     ("tenant", "demo")))] == 2
    assert "+7916" not in text and "Смирнов" not in text


def test_a_fallback_inside_the_quiet_hours_waits_for_their_end(client, clock, worker):
    clock.now = datetime(2026, 11, 27, 17, 59, 50, tzinfo=UTC)  # 20:59:50 in Moscow
    book(client, 3, 6400)  # MAX stays "sent": its 20-second step runs out at 21:00:10, inside the quiet hours
    run(worker, clock, 60)
    job = confirmation(client, 6400)
    assert job["status"] == "scheduled" and [a["channel"] for a in job["attempts"]] == ["max"]
    assert job["next_try_at"] == "2026-11-28T06:00:00Z"  # 09:00 in Moscow
    clock.now = datetime(2026, 11, 28, 6, 0, 1, tzinfo=UTC)
    run(worker, clock, 10)
    job = confirmation(client, 6400)
    assert [(a["channel"], a["status"]) for a in job["attempts"]] == [
        ("max", "expired"), ("telegram", "not_registered"), ("whatsapp", "delivered")]
    view = client.get("/api/v1/demo/bookings/yclients/6400", headers=AUTH).get_json()
    assert any("quiet hours" in (e["detail"] or "") for e in view["events"] if e["what"] == "job.scheduled")
