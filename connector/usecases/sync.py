"""Use case: the safety-net sync. YCLIENTS never retries a webhook that failed (our outage, a network blip),
so the worker reads the records changed since its last pass through the REST API and stores each as the
webhook YCLIENTS would have sent, for the same intake (connector.usecases.intake): what we already hold is a
`duplicate`, what we missed is applied.

One worker at a time per tenant (a lease on sync_state); the HTTP reads happen outside any transaction; the
cursor only moves once a window is fully read and stored, and each pass re-reads a little of the previous
window, because the time zone YCLIENTS applies to `changed_after` is not documented. A pass cut short (an error
on page 3) still applies the records it read, since ingest is idempotent, but leaves the cursor where it was:
the records not read are in the next pass's window.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from connector.core.model import InboundOutcome
from connector.entrypoints.bootstrap import Runtime
from connector.sources.errors import PayloadError
from connector.sources.settings import YclientsSource
from connector.sources.yclients import parse_record_webhook
from connector.sources.yclients_api import YclientsApi, YclientsApiError
from connector.store.inbound import event_row, outcomes_of, store_many
from connector.store.ledger import inbound_values
from connector.store.queue import claim_sync, release_sync
from connector.tenants import Tenant
from connector.usecases.intake import drain

log = logging.getLogger("connector.usecases.sync")

SOURCE = "yclients"
OVERLAP = timedelta(hours=1)
CHUNK = 100  # records per transaction
VIA_SYNC = {"X-Connector-Via": "sync"}


@dataclass(frozen=True)
class SyncResult:
    tenant_id: str
    read: int = 0
    outcomes: dict[str, int] | None = None
    error: str | None = None


def sync_due(tenant: Tenant) -> bool:
    """A tenant syncs when its YCLIENTS source has API credentials."""
    return tenant.yclients is not None and bool(tenant.yclients.partner_token)


def sync_tenant(runtime: Runtime, tenant: Tenant, worker_id: str,
                api_factory: Callable[[dict[str, Any]], YclientsApi] = YclientsApi) -> SyncResult | None:
    """One pass for one tenant; None when another worker holds the pass."""
    source = tenant.yclients or YclientsSource()
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        cursor = _claim(session, tenant, worker_id, now, source.backfill)
    if cursor is None:
        return None
    # In the clinic's own zone: right whether or not YCLIENTS honours the offset we send.
    zone = ZoneInfo(tenant.timezone)
    window = ((cursor - OVERLAP).astimezone(zone), now.astimezone(zone))
    records: list[tuple[str, dict[str, Any]]] = []
    failure: YclientsApiError | None = None
    try:
        api = api_factory(source.client_settings())
        for company in sorted(source.company_ids):  # one order every pass, for the log and the ledger
            records.extend((company, record) for record in
                           api.changed_records(company, changed_after=window[0], changed_before=window[1]))
    except YclientsApiError as error:
        failure = error

    outcomes = _ingest_all(runtime, tenant, records, window[0])
    if failure is not None:
        _release(runtime, tenant, worker_id, now, read=len(records), error=str(failure))
        log.warning("sync failed: %s", failure, extra={"fields": {"tenant": tenant.id, "read": len(records)}})
        return SyncResult(tenant.id, len(records), outcomes, error=str(failure))
    _release(runtime, tenant, worker_id, now, cursor=window[1], read=len(records))
    log.info("sync done", extra={"fields": {"tenant": tenant.id, "read": len(records), **outcomes}})
    return SyncResult(tenant.id, len(records), outcomes)


def _ingest_all(runtime: Runtime, tenant: Tenant, records: list[tuple[str, dict[str, Any]]],
                window_start: datetime) -> dict[str, int]:
    """Store the records as pending events (one statement per chunk), let the intake apply them (with whatever
    else is pending), and count what became of them."""
    ids: list[int] = []
    for start in range(0, len(records), CHUNK):
        now = runtime.clock()
        rows = [_event_row(tenant, company, record, window_start=window_start, now=now)
                for company, record in records[start:start + CHUNK]]
        with runtime.sessions.begin() as session:
            ids.extend(store_many(session, rows))
    if not ids:
        return {}
    drain(runtime)
    with runtime.sessions() as session:
        return outcomes_of(session, ids)


def _event_row(tenant: Tenant, company: str, record: dict[str, Any], *, window_start: datetime,
               now: datetime) -> dict[str, Any]:
    """One record as the webhook YCLIENTS would have sent for it: pending with its parsed event, or rejected
    with why it could not be read."""
    deleted = record.get("deleted") in (True, 1, "1", "true")
    # The company id as YCLIENTS' own webhooks write it: a number.
    body = {"company_id": int(company), "resource": "record", "resource_id": record.get("id"),
            "status": "delete" if deleted else "update", "data": record}
    text = json.dumps(body, ensure_ascii=False)
    try:
        event = parse_record_webhook(body, default_tz=tenant.timezone)
    except PayloadError as error:
        return {**inbound_values(tenant_id=tenant.id, source=SOURCE, body=text, headers=VIA_SYNC, now=now,
                                 outcome=InboundOutcome.REJECTED, error=f"invalid_payload: {error}"),
                "parsed": None, "external_id": None, "source_version": None}
    return event_row(tenant_id=tenant.id, source=SOURCE, body=text, headers=VIA_SYNC, now=now, event=event,
                     confirm_new=_created_within(record, window_start))


def _created_within(record: dict[str, Any], window_start: datetime) -> bool:
    """A record we missed that was made in this window gets its confirmation; an older one (made before
    the connector listened) only its reminders: a "you are booked" for a week-old booking would puzzle."""
    try:
        created = datetime.fromisoformat(str(record.get("create_date")))
    except ValueError:
        return False
    return created.tzinfo is not None and created >= window_start


def _claim(session: Session, tenant: Tenant, worker_id: str, now: datetime, backfill: timedelta) -> datetime | None:
    # The first pass reads back `backfill` (default one day): bookings made just before the connector was
    # switched on still get their reminders.
    return claim_sync(session, tenant_id=tenant.id, source=SOURCE, worker_id=worker_id, now=now,
                      first_cursor=now - backfill + OVERLAP)

def _release(runtime: Runtime, tenant: Tenant, worker_id: str, now: datetime, *, cursor: datetime | None = None,
             read: int = 0, error: str | None = None) -> None:
    with runtime.sessions.begin() as session:
        release_sync(session, tenant_id=tenant.id, source=SOURCE, worker_id=worker_id, now=now, cursor=cursor,
                     read=read, error=error)
