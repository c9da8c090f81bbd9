"""Use case: reconciliation with a CRM. Neither amoCRM nor Bitrix24 can be trusted to deliver every webhook
(Bitrix24 never retries one; amoCRM loses some), so a periodic pass per tenant asks the CRM what changed since
its watermark, minus an overlap, and sends every entity newer than what we hold through the same fetch and
intake as a webhook would (connector.usecases.fetching): what we hold already is a duplicate, what we missed is
applied.

Leased like the YCLIENTS sync (one worker per tenant and source, sync_state), the listing read outside any
transaction; the watermark only moves once a window is fully read. The first pass reads back `backfill` and
confirms nothing it finds (a «вы записаны» for a booking made before the connector listened would puzzle); later
passes find what was missed minutes ago, and those patients get their confirmation as from a webhook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from connector.entrypoints.bootstrap import Runtime
from connector.sources.crm import CrmError, Fetcher, Hint
from connector.store.fetches import hint_rows
from connector.store.inbound import store_many
from connector.store.models import Booking, SyncState
from connector.store.queue import claim_sync, release_sync
from connector.tenants import Tenant
from connector.usecases.fetching import FETCHERS, FetcherFactory

log = logging.getLogger("connector.usecases.reconcile")

OVERLAP = timedelta(minutes=15)
BACKFILL = timedelta(days=1)
CHUNK = 500
VIA_RECONCILE = {"X-Connector-Via": "reconcile"}
RECONCILED = ("amocrm", "bitrix24")


@dataclass(frozen=True)
class ReconcileResult:
    tenant_id: str
    source: str
    read: int = 0
    stored: int = 0  # entities newer than we hold, now waiting for their fetch
    error: str | None = None


def reconcile_due(tenant: Tenant) -> list[str]:
    """The CRM sources this tenant takes bookings from."""
    return [source for source in RECONCILED if getattr(tenant, source, None) is not None]


def reconcile_tenant(runtime: Runtime, tenant: Tenant, source: str, worker_id: str,
                     factories: Mapping[str, FetcherFactory] | None = None) -> ReconcileResult | None:
    """One pass for one tenant and CRM; None when another worker holds it."""
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        cursor = claim_sync(session, tenant_id=tenant.id, source=source, worker_id=worker_id, now=now,
                            first_cursor=now - BACKFILL + OVERLAP)
        state = session.get(SyncState, (tenant.id, source))
        first_pass = state is None or state.last_run_at is None
    if cursor is None:
        return None
    window = (cursor - OVERLAP, now)
    changed: list[tuple[str, datetime]] = []
    failure: str | None = None
    try:
        factory = (factories if factories is not None else FETCHERS)[source]
        fetcher = factory(tenant, runtime)
        if fetcher is None:
            raise CrmError(f"sources.{source} is not configured", transient=False)
        changed.extend(fetcher.changed(*window))
        changed.extend(_through_contacts(fetcher, window, tenant.id, source))
    except CrmError as error:
        failure = str(error)
    stored = _store_newer(runtime, tenant, source, changed, confirm_new=not first_pass)
    with runtime.sessions.begin() as session:
        release_sync(session, tenant_id=tenant.id, source=source, worker_id=worker_id, now=now,
                     cursor=None if failure else window[1], read=len(changed), error=failure)
    fields = {"tenant": tenant.id, "source": source, "read": len(changed), "stored": stored}
    if failure:
        log.warning("reconciliation failed: %s", failure, extra={"fields": fields})
    else:
        log.info("reconciliation done", extra={"fields": fields})
    return ReconcileResult(tenant.id, source, len(changed), stored, failure)


def _through_contacts(fetcher: Fetcher, window: tuple[datetime, datetime], tenant_id: str,
                      source: str) -> list[tuple[str, datetime]]:
    """What a changed contact makes worth reading again. A listing the CRM refuses (its form is UNCONFIRMED on
    real accounts) costs only this part of the pass; a transient failure fails the pass, to be read again."""
    try:
        return list(fetcher.changed_contacts(*window))
    except CrmError as error:
        if error.transient:
            raise
        log.warning("reconciliation: contacts not read: %s", error, extra={"fields": {"tenant": tenant_id,
                                                                                       "source": source}})
        return []


def _store_newer(runtime: Runtime, tenant: Tenant, source: str, changed: list[tuple[str, datetime]], *,
                 confirm_new: bool) -> int:
    """A pending event, due for its fetch, per entity changed after the version we hold (one per entity)."""
    latest: dict[str, datetime] = {}
    for external_id, at in changed:
        latest[external_id] = max(at, latest.get(external_id, at))
    items = list(latest.items())
    stored = 0
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        now = runtime.clock()
        with runtime.sessions.begin() as session:
            held = dict(session.execute(select(Booking.external_id, Booking.source_version).where(
                Booking.tenant_id == tenant.id, Booking.source == source,
                Booking.external_id.in_([external_id for external_id, _ in chunk]))).all())
            rows = []
            for external_id, at in chunk:
                version = held.get(external_id)
                if version is not None and version >= at:
                    continue  # we hold this change already
                body = json.dumps({"reconciliation": source, "id": external_id, "changed_at": at.isoformat()})
                rows.extend(hint_rows(tenant_id=tenant.id, source=source, body=body, headers=VIA_RECONCILE, now=now,
                                      hints=[Hint(external_id)], confirm_new=confirm_new))
            store_many(session, rows)
            stored += len(rows)
    return stored
