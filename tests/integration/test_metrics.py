"""What /metrics adds for monitoring, on both databases: queue lag per tenant, fallbacks by cascade step, and the
webhook doors' latency histogram (counted in this one process: the default registry)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.entrypoints.worker import Worker
from tests.conftest import DEMO_TOKEN
from tests.fixtures import sample
from tests.integration.test_delivery import AUTH, START, Clock, book, run

WEBHOOK = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"


@pytest.fixture
def clock(runtime):
    clock = Clock(START)
    runtime.clock = clock
    return clock


@pytest.fixture
def worker(runtime):
    worker = Worker(runtime, concurrency=8, retry_base=0.01, name="metrics-worker")
    yield worker
    worker.close()


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def latency(samples, source: str, status: str, suffix: str = "count", **labels: str) -> float:
    key = tuple(sorted({"source": source, "status": status, **labels}.items()))
    return samples.get((f"connector_webhook_request_seconds_{suffix}", key), 0.0)


def test_the_histogram_counts_each_webhook_answer_by_door_and_status_class(client):
    before = scrape(client)  # the default registry lives as long as the test process: compare with before
    body = sample("yclients", "record_create.json").read_bytes()
    headers = {"Content-Type": "application/json"}
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    assert client.post(WEBHOOK, data=body, headers=headers).status_code == 200
    assert client.post("/webhooks/yclients/demo?token=wrong", data=body, headers=headers).status_code == 401
    assert client.post("/webhooks/made-up-door/demo", data=body, headers=headers).status_code == 404
    client.get("/api/v1/demo/bookings/yclients/987654321", headers=AUTH)  # not a webhook: not timed
    after = scrape(client)

    assert latency(after, "yclients", "2xx") - latency(before, "yclients", "2xx") == 2
    assert latency(after, "yclients", "4xx") - latency(before, "yclients", "4xx") == 1
    assert latency(after, "unknown", "4xx") - latency(before, "unknown", "4xx") == 1  # no label a stranger typed
    assert not any("made-up-door" in str(labels) for _, labels in after)
    # buckets: cumulative, the last (+Inf) holds every answer, the sum is a duration
    buckets = sorted((float(dict(labels)["le"]), value) for (name, labels), value in after.items()
                     if name == "connector_webhook_request_seconds_bucket"
                     and dict(labels)["source"] == "yclients" and dict(labels)["status"] == "2xx")
    assert [le for le, _ in buckets][:3] == [0.001, 0.0025, 0.005] and buckets[-1][0] == float("inf")
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)
    assert buckets[-1][1] == latency(after, "yclients", "2xx")
    assert 0 < latency(after, "yclients", "2xx", "sum") - latency(before, "yclients", "2xx", "sum") < 10


def test_fallbacks_count_each_step_that_passed_to_the_next(client, clock, worker):
    book(client, 2, 7400)  # MAX: not registered → Telegram delivered
    book(client, 5, 7401)  # MAX, Telegram not registered, WhatsApp stays "sent" → SMS delivered
    book(client, 7, 7402)  # every channel fails: the last step passes to nothing, and is no fallback
    book(client, 0, 7403)  # MAX delivered: no fallback
    run(worker, clock, 120)
    samples = scrape(client)
    fallbacks = {(dict(labels)["step"], dict(labels)["channel"]): value for (name, labels), value in samples.items()
                 if name == "connector_fallbacks_24h" and dict(labels)["tenant"] == "demo"}
    assert fallbacks == {("1", "max"): 3, ("2", "telegram"): 2, ("3", "whatsapp"): 2}
    # the messages behind them, by channel, provider and status
    assert samples[("connector_attempts_24h", (("channel", "sms"), ("provider", "sandbox"), ("status", "failed"),
                                               ("tenant", "demo")))] == 1
    clock.advance(25 * 3600)  # a day later the window has moved past them
    assert not [key for key in scrape(client) if key[0] == "connector_fallbacks_24h"]


def test_queue_lag_is_the_oldest_due_job_s_wait_per_tenant(client, clock, worker):
    assert scrape(client)[("connector_queue_lag_seconds", (("tenant", "demo"),))] == 0  # nothing due: 0
    book(client, 0, 7500)  # due now; nothing dispatches it yet
    clock.advance(200)
    book(client, 0, 7501)  # due now, younger: the oldest one decides
    clock.advance(40)
    assert scrape(client)[("connector_queue_lag_seconds", (("tenant", "demo"),))] == 240
    worker.dispatch()
    assert scrape(client)[("connector_queue_lag_seconds", (("tenant", "demo"),))] == 0
