"""The outbox's claim on the real database: the oldest unsent row of each booking and target only, a dead
worker's lease handed over, two workers never pushing one row (PostgreSQL's SKIP LOCKED)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.store.models import Booking, Writeback
from connector.store.writebacks import WRITEBACK_LEASE, Pushed, claim_writebacks, record_pushes
from tests.conftest import make_runtime

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)


def ledger(runtime, layout: list[tuple[str, str]]) -> dict[str, int]:
    """Bookings by external id, and a pending row per (booking, target) in `layout`'s order."""
    with runtime.sessions.begin() as session:
        bookings = {}
        for external_id in dict.fromkeys(external for external, _ in layout):
            booking = Booking(tenant_id="demo", source="yclients", external_id=external_id, starts_at=NOW,
                              timezone="Europe/Moscow", state="active", services=[], content_hash="-",
                              branch_id="512345", created_at=NOW, updated_at=NOW)
            session.add(booking)
            session.flush()
            bookings[external_id] = booking.id
        for index, (external_id, target) in enumerate(layout):
            session.add(Writeback(tenant_id="demo", booking_id=bookings[external_id], target=target,
                                  status="pending", text=f"report {index}", word="sent", details={}, at=NOW,
                                  tries=0, next_try_at=NOW, created_at=NOW, updated_at=NOW))
    return bookings


def claim(runtime, now=NOW, limit=100) -> list[str]:
    with runtime.sessions.begin() as session:
        return [row.text for row in claim_writebacks(session, now=now, limit=limit)]


@pytest.fixture
def runtime(database_url):
    rt = make_runtime(database_url)
    yield rt
    rt.engine.dispose()


def test_only_the_oldest_unsent_row_of_each_booking_and_target_goes(runtime):
    ledger(runtime, [("a", "yclients"), ("a", "yclients"), ("b", "yclients"), ("a", "generic")])
    assert claim(runtime) == ["report 0", "report 2", "report 3"]
    assert claim(runtime) == []  # leased; the next of booking a waits for its elder
    with runtime.sessions.begin() as session:
        record_pushes(session, [Pushed(1, 1)], NOW)
    assert claim(runtime) == ["report 1"]


def test_a_row_tried_again_later_holds_back_the_rows_after_it(runtime):
    ledger(runtime, [("a", "generic"), ("a", "generic")])
    claim(runtime)
    with runtime.sessions.begin() as session:
        record_pushes(session, [Pushed(1, 1, "generic: write-back: HTTP 503", NOW + timedelta(seconds=30))], NOW)
    assert claim(runtime) == []
    assert claim(runtime, NOW + timedelta(seconds=30)) == ["report 0"]


def test_a_dead_workers_lease_is_handed_over(runtime):
    ledger(runtime, [("a", "generic")])
    assert claim(runtime) == ["report 0"]
    assert claim(runtime, NOW + WRITEBACK_LEASE - timedelta(seconds=1)) == []
    assert claim(runtime, NOW + WRITEBACK_LEASE + timedelta(seconds=1)) == ["report 0"]


def test_a_failed_row_does_not_hold_back_the_next_one(runtime):
    ledger(runtime, [("a", "yclients"), ("a", "yclients")])
    claim(runtime)
    with runtime.sessions.begin() as session:
        record_pushes(session, [Pushed(1, 1, "yclients: record: HTTP 403")], NOW)
    assert claim(runtime) == ["report 1"]


def test_two_workers_never_take_one_row(runtime, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one worker (connector.entrypoints.worker.hold_sqlite_lock)")
    ledger(runtime, [("a", "generic"), ("a", "generic"), ("b", "generic")])
    first = runtime.sessions()
    first.begin()
    try:
        mine = [row.text for row in claim_writebacks(first, now=NOW, limit=1)]  # locked, not committed yet
        theirs = claim(runtime)
    finally:
        first.commit()
        first.close()
    assert mine == ["report 0"]
    assert theirs == ["report 2"]  # not row 0 (locked), nor row 1 (its elder is unsent)
