"""The worker's intake on a real database: pending events become bookings and jobs in batches, one booking's
events in the source's order whichever worker takes them, a bad event rejected alone and replayable."""

from __future__ import annotations

import copy
import json
import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.core.model import BookingFacts, EventAction, SourceEvent
from connector.core.model import Patient as PatientFacts
from connector.store.inbound import event_row, store_many
from connector.store.models import Booking, InboundEvent, NotificationJob, Patient
from connector.tenants import demo_tenant
from connector.usecases import intake
from connector.usecases.intake import drain, take_batch
from connector.usecases.replay import replay
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime, truncate_all
from tests.fixtures import sample
from tests.intake import deliver

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
TEMPLATE = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))


def record(record_id: int, version: int, *, moved_hours: int = 0, status: str = "update") -> dict:
    """Booking `record_id` as its `version`-th change made it: a visit that moves an hour per version."""
    body = copy.deepcopy(TEMPLATE)
    body["status"] = status
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = f"+7916{record_id:07d}"
    visit = datetime(2026, 12, 10, 7, 0, tzinfo=UTC) + timedelta(hours=version + moved_hours)
    body["data"]["datetime"] = visit.isoformat()
    body["data"]["last_change_date"] = (NOW - timedelta(hours=1) + timedelta(minutes=version)).isoformat()
    return body


@pytest.fixture
def two_clinics(postgres_database):
    """The same clinic twice: `demo` takes events shuffled, `ref` in the source's order (on PostgreSQL: several
    intake workers share the work there only)."""
    truncate_all(postgres_database)
    tenants = [demo_tenant(DEMO_TOKEN), replace(demo_tenant("ref-token-0123456789abcdef"), id="ref")]
    runtime = make_runtime(postgres_database, tenants)
    runtime.clock = lambda: NOW
    yield runtime
    runtime.engine.dispose()


def ledger(runtime, tenant: str) -> tuple[list, list]:
    """A tenant's bookings and jobs as facts (no ids), to compare two tenants' ledgers."""
    with runtime.sessions() as session:
        bookings = session.execute(select(Booking.external_id, Booking.starts_at, Booking.state,
                                          Booking.source_version, Patient.phone)
                                   .join(Patient, Patient.id == Booking.patient_id)
                                   .where(Booking.tenant_id == tenant)).all()
        jobs = session.execute(select(Booking.external_id, NotificationJob.kind, NotificationJob.plan_key,
                                      NotificationJob.status, NotificationJob.due_at, NotificationJob.status_reason)
                               .join(Booking, Booking.id == NotificationJob.booking_id)
                               .where(NotificationJob.tenant_id == tenant)).all()
    return sorted(map(tuple, bookings)), sorted(map(tuple, jobs))


@pytest.mark.postgres
def test_two_workers_on_shuffled_events_end_as_the_source_order_does(two_clinics):
    runtime = two_clinics
    bodies = [record(5000 + n, version) for n in range(50) for version in range(4)]
    client = create_app(runtime).test_client()
    for body in bodies:  # the reference: each event applied before the next arrives
        deliver(client, runtime, "/webhooks/yclients/ref?token=ref-token-0123456789abcdef", json=body)

    shuffled = bodies[:]
    random.Random(7).shuffle(shuffled)
    for body in shuffled:
        assert client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body).status_code == 200
    settled = [0, 0]
    start = threading.Barrier(2)

    def work(index: int) -> None:
        start.wait()
        settled[index] = drain(runtime, limit=15).settled

    workers = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()

    assert sum(settled) == 200 and min(settled) > 0, settled  # both took a share
    assert ledger(runtime, "demo") == ledger(runtime, "ref")
    pending = client.get("/api/v1/demo/inbound-events?outcome=pending", headers=AUTH).get_json()["events"]
    assert pending == []


def test_a_pending_event_is_listed_until_the_intake_applies_it(runtime, client):
    runtime.clock = lambda: NOW
    answer = client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=record(1, 0)).get_json()
    assert answer["outcome"] == "accepted"
    pending = client.get("/api/v1/demo/inbound-events?outcome=pending", headers=AUTH).get_json()["events"]
    assert [event["id"] for event in pending] == [answer["inbound_event_id"]]
    assert pending[0]["booking"] is None
    with runtime.sessions() as session:
        assert session.scalars(select(Booking)).all() == []  # nothing applied by the web process

    assert take_batch(runtime).outcomes == {"applied": 1}
    event = client.get(f"/api/v1/demo/inbound-events/{answer['inbound_event_id']}", headers=AUTH).get_json()
    assert event["outcome"] == "applied" and event["booking"] is not None and event["applied_at"]
    assert client.get("/api/v1/demo/inbound-events?outcome=pending", headers=AUTH).get_json()["events"] == []


def test_an_event_whose_planning_fails_is_rejected_alone_and_replayed_after_the_fix(runtime, client, monkeypatch):
    runtime.clock = lambda: NOW
    real_plan = intake.plan_jobs

    def broken_for_record_2(previous, current, existing, policy, now):
        if current.starts_at.hour == 9:  # record 2's visit: a planning bug that only its data reaches
            raise ArithmeticError("a planning bug")
        return real_plan(previous, current, existing, policy, now)

    monkeypatch.setattr(intake, "plan_jobs", broken_for_record_2)
    ids = [client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=record(n, 0, moved_hours=n)
                       ).get_json()["inbound_event_id"] for n in range(5)]
    assert drain(runtime).outcomes == {"applied": 4, "rejected": 1}
    with runtime.sessions() as session:
        events = {row.id: row for row in session.scalars(select(InboundEvent))}
        assert [events[i].outcome for i in ids] == ["applied", "applied", "rejected", "applied", "applied"]
        assert events[ids[2]].error == "ArithmeticError: a planning bug"
        assert sorted(session.scalars(select(Booking.external_id))) == ["0", "1", "3", "4"]

    monkeypatch.setattr(intake, "plan_jobs", real_plan)  # the fix is deployed
    [result] = replay(runtime, [ids[2]])
    assert (result.outcome, result.detail) == ("applied", None)
    view = client.get("/api/v1/demo/bookings/yclients/2", headers=AUTH).get_json()
    assert sorted(job["kind"] for job in view["jobs"]) == ["confirmation", "reminder", "reminder"]
    assert replay(runtime, [ids[2]])[0].detail == "only a rejected event is replayed; this one is applied"


def test_a_refused_stranger_is_never_replayed(runtime, client):
    answer = client.post("/webhooks/yclients/demo?token=wrong-token-000000", json=record(1, 0))
    assert answer.status_code == 401
    with runtime.sessions() as session:
        event_id = session.scalars(select(InboundEvent.id)).one()
    [result] = replay(runtime, [event_id])
    assert result.outcome == "rejected" and "nobody vouched" in (result.detail or "")
    with runtime.sessions() as session:
        assert session.scalars(select(Booking)).all() == []


@pytest.fixture
def pg_runtime(postgres_database):
    truncate_all(postgres_database)
    runtime = make_runtime(postgres_database)
    yield runtime
    runtime.engine.dispose()


@pytest.mark.postgres
def test_a_value_the_database_refuses_rejects_that_event_only(pg_runtime):
    """(PostgreSQL: SQLite keeps text of any length.)"""
    runtime, client = pg_runtime, create_app(pg_runtime).test_client()
    runtime.clock = lambda: NOW
    # The parsers fit every text to its column (connector.sources.limits); a parser that missed one is a bug
    # the batch must survive: this event carries what such a parser would have stored.
    facts = BookingFacts(external_id="2", starts_at=NOW + timedelta(days=5), doctor_name="Д" * 300,
                         patient=PatientFacts(phone="+79160000002"))
    with runtime.sessions.begin() as session:
        [bad] = store_many(session, [event_row(tenant_id="demo", source="yclients", body="{}", headers={}, now=NOW,
                                               event=SourceEvent(EventAction.UPSERT, "2", None, facts))])
    ids = [client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=record(n, 0)).get_json()["inbound_event_id"]
           for n in (1, 3)]
    assert drain(runtime).outcomes == {"applied": 2, "rejected": 1}
    with runtime.sessions() as session:
        events = {row.id: row for row in session.scalars(select(InboundEvent))}
        assert [events[i].outcome for i in (ids[0], bad, ids[1])] == ["applied", "rejected", "applied"]
        assert "StringDataRightTruncation" in (events[bad].error or "")
        assert sorted(session.scalars(select(Booking.external_id))) == ["1", "3"]


def test_repeats_in_one_batch_apply_once(runtime, client):
    runtime.clock = lambda: NOW
    body = record(1, 0, status="create")
    for _ in range(4):
        client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    assert drain(runtime).outcomes == {"applied": 1, "duplicate": 3}
    with runtime.sessions() as session:
        assert len(session.scalars(select(NotificationJob)).all()) == 3

