"""Bookings into a bench's ledger the way the service takes them: stored as pending inbound events (what the web
process does, one row each, here in bulk), then applied by the worker's intake."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connector.core.model import BookingFacts, EventAction, SourceEvent
from connector.entrypoints.bootstrap import Runtime
from connector.store.inbound import event_row, store_many
from connector.tenants import Tenant
from connector.usecases.intake import drain


def apply_bookings(runtime: Runtime, tenant: Tenant, bookings: Sequence[BookingFacts], now: datetime,
                   source: str = "generic") -> None:
    """Stored, then applied here by one intake (no worker runs beside it)."""
    store_bookings(runtime, tenant, bookings, now, source)
    drain(runtime)


def store_bookings(runtime: Runtime, tenant: Tenant, bookings: Sequence[BookingFacts], now: datetime,
                   source: str = "generic") -> None:
    """Stored as pending only, for a running worker's intake to apply (on SQLite a second intake beside it would
    claim the same events: one worker per file)."""
    rows = [event_row(tenant_id=tenant.id, source=source, body="{}", headers={}, now=now,
                      event=SourceEvent(EventAction.UPSERT, facts.external_id, None, facts)) for facts in bookings]
    for start in range(0, len(rows), 1000):
        with runtime.sessions.begin() as session:
            store_many(session, rows[start:start + 1000])
