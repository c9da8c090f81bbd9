"""A CRM's thin webhooks on their way to being fetched (connector.usecases.fetching).

The web process stores one pending event per entity a webhook names, with `fetch_due` set and the hint as its
parsed form; the fetch step claims the due ones under a lease (two workers never fetch one event at once, and a
worker that dies leaves its claim to run out), and records what each fetch gave in one transaction: the entity's
event, ready for the intake (`fetch_due` cleared); a retry later; or the end of the event (ignored, rejected).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from connector.core.event_records import to_record
from connector.core.model import InboundOutcome, SourceEvent
from connector.sources.crm import Hint
from connector.store.inbound import store_many
from connector.store.ledger import inbound_values, storable
from connector.store.live import state_is
from connector.store.models import InboundEvent

HINT = "hint"  # the `shape` of a parsed form that is only a hint: the entity is still to be fetched

_TABLE = cast(Table, InboundEvent.__table__)


def hint_record(hint: Hint, *, confirm_new: bool = True) -> dict[str, Any]:
    return {"shape": HINT, "external_id": hint.external_id, "deleted": hint.deleted, "confirm_new": confirm_new}


def is_hint(parsed: Mapping[str, Any] | None) -> bool:
    return bool(parsed) and parsed.get("shape") == HINT  # type: ignore[union-attr]


def hint_rows(*, tenant_id: str, source: str, body: str | bytes, headers: Mapping[str, str], now: datetime,
              hints: Sequence[Hint], confirm_new: bool = True) -> list[dict[str, Any]]:
    """One pending row per hint, each with the whole body (a batched webhook names several entities), due for a
    fetch at once."""
    base = inbound_values(tenant_id=tenant_id, source=source, body=body, headers=headers, now=now,
                          outcome=InboundOutcome.PENDING)
    return [{**base, "parsed": hint_record(hint, confirm_new=confirm_new), "external_id": hint.external_id[:128],
             "source_version": None, "fetch_due": now, "fetch_tries": 0} for hint in hints]


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: str
    source: str
    hint: Hint
    confirm_new: bool
    tries: int


def claim_fetches(session: Session, *, now: datetime, limit: int, lease: timedelta) -> list[Claimed]:
    """Up to `limit` events due for a fetch, oldest due first, leased until `now + lease`."""
    rows = session.execute(
        select(InboundEvent.id, InboundEvent.tenant_id, InboundEvent.source, InboundEvent.parsed,
               InboundEvent.fetch_tries)
        .where(InboundEvent.fetch_due.is_not(None), InboundEvent.fetch_due <= now,
               state_is(InboundEvent.outcome, InboundOutcome.PENDING))
        .order_by(InboundEvent.fetch_due, InboundEvent.id).limit(limit)
        .with_for_update(skip_locked=True)).all()
    if not rows:
        return []
    session.execute(update(InboundEvent).where(InboundEvent.id.in_([row.id for row in rows]))
                    .values(fetch_due=now + lease).execution_options(synchronize_session=False))
    claimed = []
    for row in rows:
        parsed = row.parsed or {}
        claimed.append(Claimed(row.id, row.tenant_id, row.source,
                               Hint(str(parsed.get("external_id", "")), bool(parsed.get("deleted"))),
                               bool(parsed.get("confirm_new", True)), row.fetch_tries or 0))
    return claimed


@dataclass(frozen=True)
class Fetched:
    """What one fetch gave: `event` (None: no booking of ours), or a retry at `retry_at`, or the end (`error`)."""

    id: int
    event: SourceEvent | None = None
    confirm_new: bool = True
    retry_at: datetime | None = None
    error: str | None = None
    reason: str | None = None  # why it ended: fetch_failed, invalid_payload
    note: str | None = None  # why it ended ignored, when not for the usual reason (a contact: what it stands for)
    follow: Sequence[dict[str, Any]] = ()  # new hint rows (hint_rows) this one stands for, stored with it


_READY = (update(_TABLE).where(_TABLE.c.id == bindparam("b_id"))
          .values(parsed=bindparam("b_parsed"), source_version=bindparam("b_version"), fetch_due=None, error=None))
_RETRY = (update(_TABLE).where(_TABLE.c.id == bindparam("b_id"))
          .values(fetch_due=bindparam("b_due"), fetch_tries=_TABLE.c.fetch_tries + 1, error=bindparam("b_error")))
_END = (update(_TABLE).where(_TABLE.c.id == bindparam("b_id"))
        .values(outcome=bindparam("b_outcome"), error=bindparam("b_error"), reason=bindparam("b_reason"),
                fetch_due=None, fetch_tries=_TABLE.c.fetch_tries + bindparam("b_failed"),
                applied_at=bindparam("b_now")))


def record_fetches(session: Session, results: Sequence[Fetched], now: datetime) -> None:
    """Every result of a fetch pass, in at most four statements."""
    ready = [{"b_id": r.id, "b_parsed": to_record(r.event, confirm_new=r.confirm_new), "b_version": r.event.version}
             for r in results if r.event is not None]
    retry = [{"b_id": r.id, "b_due": r.retry_at, "b_error": storable(r.error, 4000) if r.error else None}
             for r in results if r.event is None and r.retry_at is not None]
    ended = [{"b_id": r.id, "b_now": now,
              "b_outcome": InboundOutcome.REJECTED if r.error else InboundOutcome.IGNORED,
              "b_error": storable(r.error or r.note or "not a booking of ours: the entity's pipeline or stage is "
                                  "not in the mapping", 4000),
              "b_reason": r.reason if r.error else None, "b_failed": 1 if r.error else 0}
             for r in results if r.event is None and r.retry_at is None]
    for statement, rows in ((_READY, ready), (_RETRY, retry), (_END, ended)):
        if rows:
            session.execute(statement, rows)
    follow = [row for r in results for row in r.follow]
    if follow:
        store_many(session, follow)


def make_fetchable_again(event: InboundEvent, now: datetime) -> None:
    """A rejected hint made pending again (a replay): fetched anew from the first try."""
    event.outcome, event.error, event.reason, event.applied_at = InboundOutcome.PENDING, None, None, None
    event.fetch_due, event.fetch_tries = now, 0
