"""Use case: apply a rejected inbound event again after its cause was fixed (a mapping, a parser, the tenants
file): its body, exactly as received, is parsed anew with today's code and goes through the same intake.

Only bodies a sender proved to be theirs are replayed: a refusal for a wrong token or an unknown tenant stays
refused (replaying it would let anyone in), and so does a body kept only in part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import object_session

from connector.core.event_records import from_record, to_record
from connector.core.model import InboundOutcome
from connector.entrypoints.bootstrap import Runtime
from connector.sources import SOURCES
from connector.sources.brackets import parse_form
from connector.store.fetches import hint_rows, is_hint, make_fetchable_again
from connector.store.inbound import store_many
from connector.store.ledger import received_bytes, storable
from connector.store.models import InboundEvent
from connector.tenants import Tenant
from connector.usecases.fetching import fetch_batch
from connector.usecases.intake import drain
from connector.usecases.refusals import UNAUTHENTICATED


@dataclass(frozen=True)
class Replayed:
    event_id: int
    outcome: str
    detail: str | None = None


def replay(runtime: Runtime, ids: Sequence[int],
           apply: Callable[[Runtime, Sequence[int]], object] = lambda runtime, _ids: settle(runtime)) -> list[Replayed]:
    """Each event made pending again with its body parsed anew, then `apply` (the intake here, by default; the
    command line waits for a running worker's instead on SQLite, where one process applies); what became of
    each."""
    refused: dict[int, Replayed] = {}
    with runtime.sessions.begin() as session:
        for event_id in ids:
            row = session.get(InboundEvent, event_id, with_for_update=True)
            why = _not_replayable(row)
            if why is None:
                assert row is not None
                why = _parse_again(runtime, row)
            if why is not None:
                refused[event_id] = Replayed(event_id, row.outcome if row else "missing", why)
    apply(runtime, [event_id for event_id in ids if event_id not in refused])
    with runtime.sessions() as session:
        rows = {row.id: row for row in (session.get(InboundEvent, event_id) for event_id in ids) if row}
    return [refused.get(event_id) or Replayed(event_id, rows[event_id].outcome, rows[event_id].error)
            for event_id in ids]


def settle(runtime: Runtime) -> None:
    """What a replay made pending, applied here: a CRM's entities fetched first, then the intake."""
    while fetch_batch(runtime):
        pass
    drain(runtime)


def _not_replayable(row: InboundEvent | None) -> str | None:
    if row is None:
        return "no such inbound event"
    if row.outcome != InboundOutcome.REJECTED:
        return f"only a rejected event is replayed; this one is {row.outcome}"
    if row.reason in UNAUTHENTICATED:
        return f"refused as {row.reason}: nobody vouched for this body, so it is not applied"
    if row.body_truncated or row.source not in SOURCES:
        return "not a whole webhook body of a booking source"
    return None


def _parse_again(runtime: Runtime, row: InboundEvent) -> str | None:
    """Make the event pending with its body parsed anew; why not, if it cannot be."""
    tenant = runtime.tenants.get(row.tenant_id)
    if tenant is None:
        return f"tenant {row.tenant_id!r} is not configured"
    if SOURCES[row.source].hints is not None:
        return _hint_again(runtime, tenant, row)
    confirm_new = True
    if row.parsed:  # a record the sync made keeps its say on confirmations
        try:
            confirm_new = from_record(row.parsed)[1]
        except (KeyError, TypeError, ValueError):
            pass
    parse = SOURCES[row.source].parse
    assert parse is not None
    try:
        event = parse(json.loads(received_bytes(row)), tenant, runtime.mappings)
    except Exception as error:  # still unreadable: it stays rejected, now with today's reason
        row.error = storable(f"replay: {type(error).__name__}: {error}", 4000)
        return row.error
    if event is None:
        row.outcome, row.error = InboundOutcome.IGNORED, "not a booking event"
        return None
    row.parsed = to_record(event, confirm_new=confirm_new)
    row.external_id, row.source_version = event.external_id[:128], event.version
    row.outcome, row.error, row.reason, row.applied_at = InboundOutcome.PENDING, None, None, None
    return None


def _hint_again(runtime: Runtime, tenant: Tenant, row: InboundEvent) -> str | None:
    """A CRM's event: fetched anew from the first try. One that never got as far as naming its entity (refused
    as malformed) is read again; the first entity it names becomes this event, any others events of their own."""
    now = runtime.clock()
    if is_hint(row.parsed):
        make_fetchable_again(row, now)
        return None
    hints_of = SOURCES[row.source].hints
    assert hints_of is not None
    try:
        hints = list(dict.fromkeys(hints_of(parse_form(received_bytes(row)), tenant)))
    except Exception as error:  # still unreadable: it stays rejected, now with today's reason
        row.error = storable(f"replay: {type(error).__name__}: {error}", 4000)
        return row.error
    if not hints:
        row.outcome, row.error = InboundOutcome.IGNORED, "not a booking event"
        return None
    rows = hint_rows(tenant_id=row.tenant_id, source=row.source, body=received_bytes(row), headers=row.headers,
                     now=now, hints=hints)
    first = rows[0]
    row.parsed, row.external_id = first["parsed"], first["external_id"]
    make_fetchable_again(row, now)
    session = object_session(row)
    assert session is not None
    store_many(session, rows[1:])
    return None
