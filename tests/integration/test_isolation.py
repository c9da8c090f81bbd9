"""One tenant's broken settings, or one job that cannot be prepared, must not stop everyone else's messages."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.entrypoints.worker import Worker
from connector.tenants import CascadeStep, demo_tenant
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # 12:00 in Moscow: outside quiet hours
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
OTHER_TOKEN = "other-token-0123456789abcdef"


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def two_tenants(database_url: str, broken: dict):
    """`demo` as shipped, and `other` whose settings went bad after start-up (`broken` replaces fields)."""
    from connector.web import create_app

    other = replace(demo_tenant(OTHER_TOKEN), id="other", **broken)
    runtime = make_runtime(database_url, [demo_tenant(DEMO_TOKEN), other])
    runtime.clock = Clock(START)
    return runtime, create_app(runtime).test_client(), Worker(runtime, concurrency=4, name="isolation")


def book(client, tenant: str, token: str, record_id: int, digit: int = 0) -> None:
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = f"+7916123456{digit}"
    response = client.post(f"/webhooks/yclients/{tenant}?token={token}", json=body)
    assert response.status_code == 200, response.get_json()


def confirmation(client, tenant: str, record_id: int) -> tuple[dict, list[dict]]:
    view = client.get(f"/api/v1/{tenant}/bookings/yclients/{record_id}", headers=AUTH).get_json()
    job = next(job for job in view["jobs"] if job["kind"] == "confirmation")
    return job, [e for e in view["events"] if e["job_id"] == job["id"]]


def run(worker: Worker, runtime, passes: int) -> None:
    for _ in range(passes):
        worker.tick()
        runtime.clock.now += timedelta(seconds=1)


@pytest.mark.parametrize("interleaved", [False, True])
def test_a_tenant_whose_warm_up_broke_at_run_time_holds_only_its_own_jobs(database_url, interleaved):
    # A config changed in code after the file was validated: the file itself can no longer carry this typo.
    runtime, client, worker = two_tenants(database_url, {"providers": {"sandbox": {"warmup": {"since": "yesterday"}}}})
    order = [("other", OTHER_TOKEN, 1), ("demo", DEMO_TOKEN, 1), ("other", OTHER_TOKEN, 2), ("demo", DEMO_TOKEN, 2)]
    for tenant, token, record in (order if interleaved else sorted(order)):
        book(client, tenant, token, record)
    run(worker, runtime, 10)
    for record in (1, 2):
        job, _ = confirmation(client, "demo", record)
        assert job["status"] == "delivered", job
        job, events = confirmation(client, "other", record)
        assert job["status"] == "scheduled" and job["attempts"] == [] and job["next_try_at"], job
        [deferred] = [e["detail"] for e in events if e["what"] == "job.deferred"]
        assert "warmup.since: not a date: 'yesterday'" in deferred
    worker.close()
    runtime.engine.dispose()


def test_a_job_that_cannot_be_prepared_fails_alone_with_the_reason(database_url):
    # The adapter of `other` can no longer be built (a timeout changed to text after start-up).
    broken = {"cascade": (CascadeStep("sms", "smsru", timedelta(hours=1)),),
              "providers": {"smsru": {"api_id": "k", "timeout": "soon"}}}
    runtime, client, worker = two_tenants(database_url, broken)
    book(client, "other", OTHER_TOKEN, 1)
    book(client, "demo", DEMO_TOKEN, 1)
    run(worker, runtime, 10)
    assert confirmation(client, "demo", 1)[0]["status"] == "delivered"
    job, events = confirmation(client, "other", 1)
    assert job["status"] == "failed" and "timeout" in job["reason"], job
    assert any(e["what"] == "job.failed" and "could not be prepared" in e["detail"] for e in events)
    worker.close()
    runtime.engine.dispose()


def test_a_tenant_gone_from_the_configuration_does_not_stop_the_others_timeouts(database_url):
    runtime, client, worker = two_tenants(database_url, {})
    book(client, "other", OTHER_TOKEN, 1, digit=3)  # digit 3: MAX stays "sent", its step times out
    book(client, "demo", DEMO_TOKEN, 1, digit=3)
    run(worker, runtime, 3)
    assert confirmation(client, "other", 1)[0]["status"] == "awaiting_delivery"
    del runtime.tenants["other"]  # removed from the tenants file while its message was in flight
    runtime.clock.now += timedelta(hours=2)
    run(worker, runtime, 5)
    job, _ = confirmation(client, "demo", 1)
    assert job["status"] == "delivered" and job["attempts"][-1]["channel"] == "whatsapp", job
    worker.close()
    runtime.engine.dispose()
