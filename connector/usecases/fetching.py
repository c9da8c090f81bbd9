"""Use case: the worker's fetch step. A CRM's webhook only names an entity ("lead 123 changed"); this step reads
the entity through the CRM's REST API and stores it as the event's parsed form, for the ordinary intake
(connector.usecases.intake) to apply, stale-proof by the entity's own change time as re-read.

The claim and the record are two short transactions; the HTTP calls happen between them, in no transaction. A
fetch that fails for a while (the CRM down, its rate limit) is tried again with a growing pause (the server's
Retry-After believed within reason); one the CRM refuses (a revoked token, no rights), or one still failing after
MAX_TRIES, leaves its event `rejected` with the error, for support to see and replay. An entity the mapping does
not know (another pipeline) leaves it `ignored`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from connector.core.retry import retry_delay
from connector.entrypoints.bootstrap import Runtime
from connector.sources.amocrm_fetch import AmocrmFetcher, tokens_for
from connector.sources.bitrix24_fetch import Bitrix24Fetcher
from connector.sources.crm import CrmError, Fetcher, Hint
from connector.sources.errors import PayloadError
from connector.store.fetches import Claimed, Fetched, claim_fetches, hint_rows, record_fetches
from connector.tenants import Tenant

log = logging.getLogger("connector.usecases.fetching")

BATCH = 20  # entities per pass: at amoCRM's 7 requests/s two calls each, about six seconds of fetching
LEASE = timedelta(minutes=5)  # a claim another worker may take over after, should this one die mid-pass
MAX_TRIES = 10  # a fetch failing this many times ends its event rejected (about 75 minutes of trying)
BACKOFF_BASE = 10.0  # seconds before the first retry; doubling up to BACKOFF_CAP
BACKOFF_CAP = 1800.0

FetcherFactory = Callable[[Tenant, Runtime], Fetcher | None]


def _bitrix24(tenant: Tenant, runtime: Runtime) -> Fetcher | None:
    if tenant.bitrix24 is None:
        return None
    writeback = tenant.writeback_bitrix24
    return Bitrix24Fetcher.build(tenant.bitrix24, runtime.mappings[tenant.bitrix24.mapping], tenant.timezone,
                                 writeback=writeback)


def _amocrm(tenant: Tenant, runtime: Runtime) -> Fetcher | None:
    if tenant.amocrm is None:
        return None
    return AmocrmFetcher.build(tenant.amocrm, runtime.mappings[tenant.amocrm.mapping], tenant.timezone,
                               tokens=tokens_for(tenant.amocrm, runtime.sessions, tenant.id))


# source → the tenant's fetcher (None: the tenant has no such source)
FETCHERS: dict[str, FetcherFactory] = {"amocrm": _amocrm, "bitrix24": _bitrix24}


def fetch_batch(runtime: Runtime, *, limit: int = BATCH,
                fetchers: Mapping[str, FetcherFactory] | None = None) -> Counter[str]:
    """Fetch the due entities of one batch and record what each gave; counts by result (nothing: none was due)."""
    now = runtime.clock()
    with runtime.sessions.begin() as session:
        claimed = claim_fetches(session, now=now, limit=limit, lease=LEASE)
    if not claimed:
        return Counter()
    built: dict[tuple[str, str], Fetcher | None | Exception] = {}
    results = [_fetch_one(runtime, item, built, fetchers if fetchers is not None else FETCHERS)
               for item in claimed]
    done = runtime.clock()
    with runtime.sessions.begin() as session:
        record_fetches(session, results, done)
    counts = Counter(_kind(result) for result in results)
    log.info("fetch pass", extra={"fields": dict(counts)})
    return counts


def _fetch_one(runtime: Runtime, item: Claimed, built: dict[tuple[str, str], Any],
               factories: Mapping[str, FetcherFactory]) -> Fetched:
    fetcher = _fetcher(runtime, item, built, factories)
    if isinstance(fetcher, str):
        return Fetched(item.id, error=fetcher, reason="fetch_failed")
    try:
        related = fetcher.related(item.hint)
        if related is not None:
            return _followed(runtime, item, related)
        event = fetcher.fetch(item.hint)
    except CrmError as error:
        tries = item.tries + 1
        if error.transient and tries < MAX_TRIES:
            delay = retry_delay(tries, error.retry_after, base=BACKOFF_BASE, cap=BACKOFF_CAP)
            return Fetched(item.id, retry_at=runtime.clock() + timedelta(seconds=delay),
                           error=f"try {tries} of {MAX_TRIES} failed: {error}")
        why = f"gave up after {tries} tries: {error}" if error.transient else str(error)
        log.warning("fetch failed for good", extra={"fields": {"tenant": item.tenant_id, "source": item.source,
                                                               "inbound_event": item.id}})
        return Fetched(item.id, error=why, reason="fetch_failed")
    except PayloadError as error:
        return Fetched(item.id, error=f"invalid_payload: {error}", reason="invalid_payload")
    except Exception as error:  # an adapter's bug: the event waits, rejected and replayable, for the fix
        log.exception("fetch raised", extra={"fields": {"tenant": item.tenant_id, "source": item.source,
                                                        "inbound_event": item.id}})
        return Fetched(item.id, error=f"unprocessable: {type(error).__name__}", reason="unprocessable")
    if event is None:
        return Fetched(item.id)
    if event.external_id != item.hint.external_id:
        return Fetched(item.id, error=f"unprocessable: the CRM answered for entity {event.external_id[:40]!r}, not "
                       f"{item.hint.external_id[:40]!r}", reason="unprocessable")
    return Fetched(item.id, event=event, confirm_new=item.confirm_new)


def _followed(runtime: Runtime, item: Claimed, related: list[Hint]) -> Fetched:
    """A hint that names no booking ends `ignored`, saying which entities it stands for; each of those becomes a
    hint of its own, due at once, its body saying which event it came from."""
    names = ", ".join(hint.external_id for hint in related) or "none"
    body = json.dumps({"read_again_for": item.hint.external_id, "inbound_event": item.id}, ensure_ascii=False)
    rows = hint_rows(tenant_id=item.tenant_id, source=item.source, body=body, headers={}, now=runtime.clock(),
                     hints=related, confirm_new=item.confirm_new)
    return Fetched(item.id, note=f"{item.hint.external_id} names no booking; read again: {names}", follow=rows)


def _fetcher(runtime: Runtime, item: Claimed, built: dict[tuple[str, str], Any],
             factories: Mapping[str, FetcherFactory]) -> Fetcher | str:
    """The tenant's fetcher for the source (built once per pass), or why there is none."""
    key = (item.tenant_id, item.source)
    if key not in built:
        tenant = runtime.tenants.get(item.tenant_id)
        factory = factories.get(item.source)
        if tenant is None:
            built[key] = f"tenant {item.tenant_id!r} is no longer configured"
        elif factory is None:
            built[key] = f"no fetcher for source {item.source!r}"
        else:
            try:
                built[key] = factory(tenant, runtime) or f"sources.{item.source} is not configured for this tenant"
            except Exception as error:  # settings that cannot make a client: every event of the tenant says so
                built[key] = f"the {item.source} client could not be made: {type(error).__name__}: {error}"
    return built[key]


def _kind(result: Fetched) -> str:
    if result.event is not None:
        return "fetched"
    if result.retry_at is not None:
        return "retry"
    return "rejected" if result.error else "ignored"

