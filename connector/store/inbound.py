"""Inbound events on their way in: stored by the web process in one INSERT, claimed by the worker's intake.

The claim takes whole bookings, not rows: every pending event of a booking goes to one worker, which applies
them in the source's order (connector.usecases.intake). On PostgreSQL a transaction-scoped advisory lock per
booking key says which worker has it; row locks would not do, since two workers scanning at once would each
hold some of one booking's rows and wait on each other's. On SQLite one worker runs, and nothing needs locking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, text
from sqlalchemy.orm import Session

from connector.core.event_records import to_record
from connector.core.model import ACCEPTED_OUTCOMES, InboundOutcome, SourceEvent
from connector.store.intake import by_source
from connector.store.ledger import inbound_values
from connector.store.live import state_is
from connector.store.models import InboundEvent

Key = tuple[str, str, str]  # tenant, source, external id: one booking at its source
NOT_A_BOOKING = "not a booking event; nothing to apply"
SCAN_FACTOR = 4  # on PostgreSQL the claim looks at this many times its batch for bookings nobody holds


def event_row(*, tenant_id: str, source: str, body: str | bytes, headers: Mapping[str, str], now: datetime,
              event: SourceEvent | None, confirm_new: bool = True, idempotency_key: str | None = None
              ) -> dict[str, Any]:
    """One parsed event's row: `pending` with its parsed form for the intake, or `ignored` when it is about no
    booking (there is nothing to apply)."""
    values = inbound_values(tenant_id=tenant_id, source=source, body=body, headers=headers, now=now,
                            outcome=InboundOutcome.PENDING if event else InboundOutcome.IGNORED,
                            error=None if event else NOT_A_BOOKING, idempotency_key=idempotency_key)
    values.update(parsed=to_record(event, confirm_new=confirm_new) if event else None,
                  external_id=event.external_id[:128] if event else None,
                  source_version=event.version if event else None)
    return values


# Built once, against the table rather than the ORM entity: its compiled form is cached and reused per request.
_TABLE = cast(Table, InboundEvent.__table__)
_INSERT_EVENT = insert(_TABLE).returning(_TABLE.c.id)


def store_pending(connection: Connection, row: dict[str, Any]) -> int:
    """The webhook's one INSERT (a row `event_row` built); the event's id."""
    return int(connection.execute(_INSERT_EVENT, row).scalar_one())


_INSERT_EVENTS = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


def store_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """A batched webhook's events (one per entity a CRM names) in one statement; their ids, in order."""
    if len(rows) == 1:
        return [store_pending(connection, rows[0])]
    return list(connection.execute(_INSERT_EVENTS, list(rows)).scalars())


def store_many(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Several events in one statement (the sync's records), each row as `inbound_values` builds it plus the
    parsed columns; their ids, in order."""
    if not rows:
        return []
    statement = insert(InboundEvent).returning(InboundEvent.id, sort_by_parameter_order=True)
    return list(session.scalars(statement, list(rows)))


def outcomes_of(session: Session, ids: Sequence[int]) -> dict[str, int]:
    """How many of these events ended in each outcome."""
    counts: dict[str, int] = {}
    for outcome in session.scalars(select(InboundEvent.outcome).where(InboundEvent.id.in_(ids))):
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def claim_pending(session: Session, *, limit: int) -> list[InboundEvent]:
    """Pending events of the bookings found in the oldest `limit` ones (every pending event of each of those
    bookings, so none is applied out of its order), oldest first."""
    postgres = session.get_bind().dialect.name == "postgresql"
    # Another worker may hold the oldest bookings: look further, and take the first `limit` free ones.
    heads = session.execute(
        select(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.external_id)
        .where(state_is(InboundEvent.outcome, InboundOutcome.PENDING), InboundEvent.fetch_due.is_(None))
        .order_by(InboundEvent.id)
        .limit(limit * SCAN_FACTOR if postgres else limit)
    ).all()
    keys = list(dict.fromkeys((row.tenant_id, row.source, row.external_id) for row in heads))
    if postgres:
        keys = _lock_keys(session, keys, limit)
    return pending_of(session, keys[:limit])


def pending_of(session: Session, keys: Sequence[Key], ids: Sequence[int] | None = None) -> list[InboundEvent]:
    """The pending events of these bookings (of these ids only, if given), oldest first; not those still waiting
    for their entity to be fetched from a CRM (connector.store.fetches)."""
    if not keys:
        return []
    query = select(InboundEvent).where(state_is(InboundEvent.outcome, InboundOutcome.PENDING),
                                       InboundEvent.fetch_due.is_(None), by_source(InboundEvent, keys))
    if ids is not None:
        query = query.where(InboundEvent.id.in_(ids))
    return list(session.scalars(query.order_by(InboundEvent.id)))


def claim_ids(session: Session, ids: Sequence[int]) -> list[InboundEvent]:
    """These pending events alone (a batch applied again one by one, a replay), their bookings locked."""
    rows = session.execute(select(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.external_id).where(
        InboundEvent.id.in_(ids), InboundEvent.outcome == InboundOutcome.PENDING)).all()
    keys = list(dict.fromkeys((row.tenant_id, row.source, row.external_id) for row in rows))
    if session.get_bind().dialect.name == "postgresql":
        keys = _lock_keys(session, keys)
    return pending_of(session, keys, ids)


def _lock_keys(session: Session, keys: Sequence[Key], limit: int | None = None) -> list[Key]:
    """Up to `limit` of the keys this transaction could lock (the others are another worker's now), in the
    order given. The LIMIT stops the scan, so no key past it is locked and left idle."""
    if not keys:
        return []
    names = ["\x1f".join(key) for key in keys]
    got = set(session.scalars(text(
        "SELECT k FROM unnest(CAST(:keys AS text[])) AS k WHERE pg_try_advisory_xact_lock(hashtextextended(k, 0))"
        " LIMIT :limit"), {"keys": names, "limit": limit or len(names)}))
    return [key for key, name in zip(keys, names, strict=True) if name in got]


def seen_webhook_ids(session: Session, events: Sequence[InboundEvent]) -> set[int]:
    """Of these events, those whose webhook id an earlier event already brought (a sender's retry)."""
    wanted = {(event.tenant_id, event.source, event.idempotency_key) for event in events if event.idempotency_key}
    if not wanted:
        return set()
    # The key alone in the IN (not a tuple): the partial index on keyed events serves it.
    rows = session.execute(select(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.idempotency_key,
                                  InboundEvent.id).where(
        InboundEvent.idempotency_key.in_({key for _, _, key in wanted}),
        InboundEvent.outcome.in_(ACCEPTED_OUTCOMES))).all()
    first: dict[tuple[str, str, str], int] = {}
    for row in rows:
        key = (row.tenant_id, row.source, row.idempotency_key)
        if key not in wanted:
            continue
        first[key] = min(first.get(key, row.id), row.id)
    return {event.id for event in events if event.idempotency_key
            and first.get((event.tenant_id, event.source, event.idempotency_key), event.id) < event.id}
