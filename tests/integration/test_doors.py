"""Doors strangers can lean on: what an unauthenticated sender can make us store, count, say or read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.entrypoints.worker import Worker
from connector.store.models import InboundEvent
from connector.tenants import CascadeStep, demo_tenant
from connector.usecases.refusals import KEEP_BYTES, purge_unauthenticated
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SMS_ONLY = replace(demo_tenant(DEMO_TOKEN), id="sms-only",
                   cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                   providers={"smsru": {"api_id": "k", "callback_secret": "cb-secret-0123456789"}})


@pytest.fixture
def doors(database_url):
    runtime = make_runtime(database_url, [demo_tenant(DEMO_TOKEN), SMS_ONLY])
    runtime.clock = lambda: NOW
    yield runtime, create_app(runtime).test_client()
    runtime.engine.dispose()


def events(runtime) -> list[InboundEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(InboundEvent).order_by(InboundEvent.id)))


@pytest.mark.parametrize("url", [
    f"/webhooks/yclients/nowhere-{'x' * 80}?token={DEMO_TOKEN}",  # unknown tenant
    "/webhooks/yclients/demo?token=wrong",  # wrong token
    "/webhooks/elsewhere/demo",  # unknown source
    "/callbacks/smsru/sms-only?secret=wrong",  # wrong callback secret
    "/callbacks/smsru/nowhere",  # unknown tenant
])
def test_a_stranger_fills_at_most_a_few_kb_and_learns_no_id(doors, url):
    runtime, client = doors
    body = b'{"pad": "' + b"x" * 60_000 + b'"}'
    response = client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (401, 404)
    assert "inbound_event_id" not in response.get_data(as_text=True)
    [stored] = events(runtime)
    assert stored.body == body[:KEEP_BYTES].decode() and stored.body_truncated and stored.outcome == "rejected"
    assert stored.headers.get("Content-Type") in ("application/json", None)


def test_unknown_tenants_never_become_metric_labels(doors):
    runtime, client = doors
    client.post(f"/webhooks/yclients/intruder-42?token={DEMO_TOKEN}", data=b"{}")
    client.post("/webhooks/yclients/demo?token=wrong", data=b"{}")
    client.post("/callbacks/wahelp/intruder-43", data=b"{}")
    client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", data=b"{oops")
    metrics = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert "intruder" not in metrics
    assert 'connector_inbound_unauthenticated_24h{reason="unknown_tenant"} 2.0' in metrics
    assert 'connector_inbound_unauthenticated_24h{reason="unauthorized"} 1.0' in metrics
    assert 'connector_inbound_events_24h{outcome="rejected",source="yclients",tenant="demo"} 1.0' in metrics


def test_unauthenticated_refusals_are_purged_after_a_week_the_rest_stays(doors):
    runtime, client = doors
    client.post("/webhooks/yclients/demo?token=wrong", data=b"{}")  # unauthenticated
    client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", data=b"{oops")  # the clinic's own, malformed
    runtime.clock = lambda: NOW + timedelta(days=6)
    client.post("/webhooks/yclients/nowhere", data=b"{}")  # unauthenticated, recent
    with runtime.sessions.begin() as session:
        assert purge_unauthenticated(session, NOW + timedelta(days=8)) == 1
    assert [(e.reason, e.received_at) for e in events(runtime)] == [
        ("malformed_json", NOW), ("unknown_tenant", NOW + timedelta(days=6))]


def test_the_worker_runs_the_purge(doors):
    runtime, client = doors
    client.post("/webhooks/yclients/demo?token=wrong", data=b"{}")
    runtime.clock = lambda: NOW + timedelta(days=8)
    worker = Worker(runtime, concurrency=1, name="purger")
    try:
        assert worker.purge() == 1
    finally:
        worker.close()
    assert events(runtime) == []


def test_callback_doors_refuse_big_bodies_unread_whatever_the_secret(doors):
    runtime, client = doors
    big = b"data=" + b"x" * (8 * 1024 * 1024)
    for url in ("/callbacks/smsru/sms-only?secret=wrong", "/callbacks/smsru/sms-only?secret=cb-secret-0123456789",
                "/callbacks/sandbox/demo"):
        assert client.post(url, data=big).status_code == 413, url
    assert {(e.reason, len(e.body), e.body_truncated) for e in events(runtime)} == {
        ("body_too_large", KEEP_BYTES, True)}


def test_the_sandbox_door_is_open_only_where_a_tenant_uses_the_sandbox(doors):
    runtime, client = doors
    report = {"id": "sbx-1", "status": "delivered"}
    assert client.post("/callbacks/sandbox/sms-only", json=report).status_code == 404
    assert client.post("/callbacks/sandbox/demo", json=report).status_code == 200
    assert [(e.tenant_id, e.outcome, e.reason) for e in events(runtime)] == [
        ("sms-only", "rejected", "unknown_provider"), ("demo", "held", None)]  # sbx-1: no attempt has it yet


def test_healthz_tells_strangers_only_whether_the_service_is_up(doors):
    runtime, client = doors
    public = client.get("/healthz")
    assert public.status_code == 200 and public.get_json() == {"status": "ok", "database": "ok"}
    detail = client.get("/healthz", headers=AUTH).get_json()
    assert detail["tenants"] == ["demo", "sms-only"] and detail["worker"] == "not running"
    assert "sms-only" not in client.get("/healthz", headers={"Authorization": "Bearer wrong"}).get_data(as_text=True)


def test_callbacks_answer_503_only_when_the_database_is_unreachable():
    runtime = make_runtime("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    client = create_app(runtime).test_client()
    for url, body in (("/callbacks/sandbox/demo", b'{"id": "x", "status": "delivered"}'),
                      ("/callbacks/sandbox/nowhere", b"{}"), ("/callbacks/sandbox/demo", b"x" * 70_000)):
        response = client.post(url, data=body)
        assert response.status_code == 503 and response.get_json()["error"] == "database_unavailable"
    assert client.get("/healthz").status_code == 503
