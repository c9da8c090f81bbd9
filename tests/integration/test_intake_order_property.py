"""Property: however a booking's events arrive — shuffled, repeated, all waiting in one batch — the intake ends in
exactly the ledger that applying them one at a time in the source's order gives (the booking, and every job with
its status). Checked on SQLite and PostgreSQL with generated histories of creates, moves, cancellations and
deletes."""

from __future__ import annotations

import copy
import itertools
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connector.store.models import Booking, NotificationJob
from connector.tenants import demo_tenant
from connector.usecases.intake import drain
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.fixtures import sample

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("INTAKE_EXAMPLES", "25"))
TEMPLATE = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
REF_TOKEN = "ref-token-0123456789abcdef"
IDS = itertools.count(900_000)

# One change of a booking at the source: the visit's hour offset, and what happened.
change = st.tuples(st.integers(min_value=-30, max_value=72), st.sampled_from(["update", "update", "cancel", "delete"]))


def body(record_id: int, version: int, hours: int, what: str) -> dict:
    data = copy.deepcopy(TEMPLATE)
    data["status"] = "delete" if what == "delete" else "update"
    data["resource_id"] = data["data"]["id"] = record_id
    data["data"]["client"]["phone"] = f"+7916{record_id % 10_000_000:07d}"
    data["data"]["datetime"] = (NOW + timedelta(days=2, hours=hours)).isoformat()
    data["data"]["attendance"] = -1 if what == "cancel" else 0
    data["data"]["last_change_date"] = (NOW - timedelta(hours=1) + timedelta(minutes=version)).isoformat()
    return data


@pytest.fixture(scope="module")
def clinics(tmp_path_factory, request):
    """`demo` takes the events as they come, `ref` one at a time in the source's order."""
    from connector.store.migrate import upgrade
    from tests.conftest import truncate_all

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('order') / 'ledger.db'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("postgres_database")
        truncate_all(url)
    runtime = make_runtime(url, [demo_tenant(DEMO_TOKEN), replace(demo_tenant(REF_TOKEN), id="ref")])
    runtime.clock = lambda: NOW
    yield runtime, create_app(runtime).test_client()
    runtime.engine.dispose()


def ledger_of(runtime, tenant: str, ids: set[str]):
    with runtime.sessions() as session:
        bookings = session.execute(select(Booking.external_id, Booking.starts_at, Booking.state)
                                   .where(Booking.tenant_id == tenant, Booking.external_id.in_(ids))).all()
        jobs = session.execute(select(Booking.external_id, NotificationJob.plan_key, NotificationJob.status,
                                      NotificationJob.due_at)
                               .join(Booking, Booking.id == NotificationJob.booking_id)
                               .where(Booking.tenant_id == tenant, Booking.external_id.in_(ids))).all()
    return sorted(map(tuple, bookings)), sorted(map(tuple, jobs))


@pytest.mark.parametrize("clinics", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories=st.lists(st.lists(change, min_size=1, max_size=4), min_size=1, max_size=4),
       order=st.randoms(use_true_random=False), repeats=st.lists(st.integers(min_value=0, max_value=15), max_size=3))
def test_any_arrival_order_ends_as_the_source_order(clinics, histories, order, repeats):
    runtime, client = clinics
    events = []  # (record id, version, body) in the source's order per booking
    for history in histories:
        record_id = next(IDS)
        events += [(record_id, version, body(record_id, version, hours, what))
                   for version, (hours, what) in enumerate(history)]
    for _, _, data in sorted(events, key=lambda event: (event[0], event[1])):
        assert client.post(f"/webhooks/yclients/ref?token={REF_TOKEN}", json=data).status_code == 200
        drain(runtime)
    arriving = events + [events[index % len(events)] for index in repeats]  # some come twice
    order.shuffle(arriving)
    for _, _, data in arriving:
        assert client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=data).status_code == 200
    drain(runtime, limit=3)
    ids = {str(record_id) for record_id, _, _ in events}
    assert ledger_of(runtime, "demo", ids) == ledger_of(runtime, "ref", ids)
