"""`/healthz/worker`, what monitoring asks, on both databases: 200 while a worker beats and the queue keeps up,
503 naming each reason; `/healthz`, what the load balancer asks, stays 200 without any worker."""

from __future__ import annotations

import pytest

from connector.entrypoints.worker import Worker
from connector.web import create_app
from tests.conftest import make_runtime
from tests.integration.test_delivery import AUTH, START, Clock, book


@pytest.fixture
def clock(runtime):
    clock = Clock(START)
    runtime.clock = clock
    return clock


@pytest.fixture
def worker(runtime):
    worker = Worker(runtime, concurrency=2, name="health-worker")
    yield worker
    worker.close()


def test_without_a_worker_monitoring_hears_it_and_the_load_balancer_does_not(client, clock):
    worker = client.get("/healthz/worker")
    assert worker.status_code == 503
    assert worker.get_json()["status"] == "unhealthy"
    assert worker.get_json()["reasons"] == ["no worker ever started"]
    # the web still stores webhooks: taking it out of rotation would lose them
    assert client.get("/healthz").status_code == 200
    book(client, 0, 7000)
    assert client.get("/healthz").status_code == 200


def test_a_fresh_beat_and_no_overdue_job_is_healthy(client, clock, worker):
    worker.heartbeat()
    clock.advance(30)
    answer = client.get("/healthz/worker")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"status": "ok", "seconds_since_last_beat": 30, "queue_lag_seconds": 0,
                                 "stale_after_seconds": 60, "max_queue_lag_seconds": 300}


def test_a_stale_beat_is_named(client, clock, worker):
    worker.heartbeat()
    clock.advance(61)
    answer = client.get("/healthz/worker")
    assert answer.status_code == 503
    assert answer.get_json()["reasons"] == ["no worker has beaten for 61 s (stale after 60 s)"]
    assert client.get("/healthz").status_code == 200


def test_a_queue_falling_behind_is_named_though_the_worker_beats(client, clock, worker):
    book(client, 0, 7100)  # its confirmation is due now, and nothing dispatches it
    clock.advance(299)
    worker.heartbeat()
    assert client.get("/healthz/worker").status_code == 200  # late, within the threshold
    clock.advance(101)
    worker.heartbeat()
    answer = client.get("/healthz/worker")
    assert answer.status_code == 503
    assert answer.get_json()["reasons"] == ["queue lag 400 s over 300 s"]
    assert answer.get_json()["queue_lag_seconds"] == 400
    worker.dispatch()  # the worker catches up: the lag is gone
    assert client.get("/healthz/worker").status_code == 200


def test_the_threshold_is_a_setting(database_url):
    runtime = make_runtime(database_url, health_max_queue_lag_seconds=60)
    runtime.clock = clock = Clock(START)
    client = create_app(runtime).test_client()
    worker = Worker(runtime, concurrency=2, name="health-worker")
    try:
        book(client, 0, 7200)
        clock.advance(90)
        worker.heartbeat()
        answer = client.get("/healthz/worker")
        assert answer.status_code == 503 and answer.get_json()["reasons"] == ["queue lag 90 s over 60 s"]
    finally:
        worker.close()
        runtime.engine.dispose()


def test_every_reason_at_once(client, clock, worker):
    worker.heartbeat()
    book(client, 0, 7300)
    clock.advance(600)
    assert client.get("/healthz/worker").get_json()["reasons"] == [
        "no worker has beaten for 600 s (stale after 60 s)", "queue lag 600 s over 300 s"]


def test_the_workers_ids_need_the_api_token(client, clock, worker):
    worker.heartbeat()
    public = client.get("/healthz/worker").get_json()
    assert "workers" not in public and "health-worker" not in str(public)
    detail = client.get("/healthz/worker", headers=AUTH).get_json()
    assert detail["workers"] == [{"id": "health-worker", "seconds_since_beat": 0}]
    wrong = client.get("/healthz/worker", headers={"Authorization": "Bearer wrong"}).get_json()
    assert "workers" not in wrong


def test_an_unreachable_ledger_is_named():
    runtime = make_runtime("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    answer = create_app(runtime).test_client().get("/healthz/worker")
    assert answer.status_code == 503
    assert answer.get_json() == {"status": "unhealthy", "reasons": ["database unreachable"]}
