"""Use case: the worker's intake. Pending inbound events (stored by the web process, the sync, a replay) become
bookings and re-planned jobs, a batch at a time, in one transaction per batch.

A batch reads what it needs in a few queries for all its events (bookings, their jobs, earlier webhook ids),
judges and plans each event with the pure core, and writes the result with bulk statements: no query per
event. One booking's events are applied in rounds, one per round, in the order the source meant them
(connector.core.intake.source_order). An event the core cannot plan is rejected alone, with its error; a batch
the database refuses (a value too long for a column) is applied again one event per transaction, so only the
event at fault is rejected. Each event ends with its outcome: applied, duplicate, stale, ignored or rejected.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from connector.core.event_records import from_record
from connector.core.intake import Held, Verdict, judge, planning_policy, rounds, source_order, visit_after
from connector.core.model import BookingState, InboundOutcome, PlanDiff, SourceEvent, Visit
from connector.core.planning import plan_jobs
from connector.entrypoints.bootstrap import Runtime
from connector.store.db import unreachable
from connector.store.inbound import claim_ids, claim_pending, seen_webhook_ids
from connector.store.intake import HeldJobs, held_bookings, held_jobs
from connector.store.ledger import storable
from connector.store.models import Booking, InboundEvent
from connector.tenants import Tenant
from connector.usecases.booking_writes import BookingWrites

log = logging.getLogger("connector.usecases.intake")

BATCH = 500  # events per transaction


@dataclass
class IntakeResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    due_now: bool = False  # a job due at once was planned (a confirmation, a notice): dispatch without waiting

    @property
    def settled(self) -> int:
        return sum(self.outcomes.values())

    def add(self, other: IntakeResult) -> None:
        self.outcomes.update(other.outcomes)
        self.due_now = self.due_now or other.due_now


@dataclass
class Plan:
    """One event judged and planned, ready to be written."""

    row: InboundEvent
    event: SourceEvent
    tenant: Tenant
    verdict: Verdict
    booking: Booking | None
    previous: Visit | None = None
    current: Visit | None = None
    diff: PlanDiff = PlanDiff()


# On SQLite one intake at a time in a process: the worker's own job and the sync's pass may both apply pending
# events, and without PostgreSQL's advisory locks two at once could plan one booking's jobs twice.
_ONE_AT_A_TIME = threading.Lock()


def take_batch(runtime: Runtime, *, limit: int = BATCH) -> IntakeResult:
    """Apply one batch of pending events; its result (nothing settled: nothing was pending, or another worker
    holds every pending booking)."""
    if runtime.engine.url.get_backend_name() == "postgresql":  # bookings are locked per key (store/inbound.py)
        return _take_batch(runtime, limit)
    with _ONE_AT_A_TIME:
        return _take_batch(runtime, limit)


def _take_batch(runtime: Runtime, limit: int) -> IntakeResult:
    now = runtime.clock()
    ids: list[int] = []
    try:
        with runtime.sessions.begin() as session:
            events = claim_pending(session, limit=limit)
            ids = [event.id for event in events]
            return apply_events(session, runtime, events, now)
    except Exception as error:
        if unreachable(error) or not ids:
            raise
        log.warning("intake batch refused by the database (%s); applying its events one by one",
                    type(error).__name__)
        return apply_one_by_one(runtime, ids)


def drain(runtime: Runtime, *, limit: int = BATCH, max_batches: int = 1000) -> IntakeResult:
    """Batches until nothing is pending (or every pending booking is another worker's)."""
    total = IntakeResult()
    for _ in range(max_batches):
        result = take_batch(runtime, limit=limit)
        total.add(result)
        if result.settled == 0:
            break
    return total


def apply_one_by_one(runtime: Runtime, ids: list[int]) -> IntakeResult:
    """Each event in its own transaction; one the database refuses is rejected with the error."""
    total = IntakeResult()
    for event_id in ids:
        now = runtime.clock()
        try:
            with runtime.sessions.begin() as session:
                total.add(apply_events(session, runtime, claim_ids(session, [event_id]), now))
        except Exception as error:
            if unreachable(error):
                raise
            with runtime.sessions.begin() as session:
                for row in claim_ids(session, [event_id]):
                    _reject(row, error, now)
                    total.outcomes[InboundOutcome.REJECTED] += 1
    return total


def apply_events(session: Session, runtime: Runtime, events: list[InboundEvent], now: datetime) -> IntakeResult:
    """Apply claimed pending events inside the caller's transaction."""
    result = IntakeResult()
    groups: dict[tuple[str, str, str | None], list[tuple[InboundEvent, SourceEvent, bool]]] = {}
    for row in events:
        try:
            event, confirm_new = _decode(row)
        except (KeyError, TypeError, ValueError) as error:
            _reject(row, error, now)
            result.outcomes[InboundOutcome.REJECTED] += 1
            continue
        groups.setdefault((row.tenant_id, row.source, row.external_id), []).append((row, event, confirm_new))
    ordered = [sorted(group, key=lambda item: source_order(item[0].source_version, item[0].received_at, item[0].id))
               for group in groups.values()]
    for round_items in rounds(ordered):
        result.add(_apply_round(session, runtime, round_items, now))
    if result.settled:
        log.info("intake batch applied", extra={"fields": dict(result.outcomes)})
    return result


def _decode(row: InboundEvent) -> tuple[SourceEvent, bool]:
    if row.parsed is None:
        raise ValueError("nothing parsed was stored with this event; replay it to parse its body again")
    return from_record(row.parsed)


def _apply_round(session: Session, runtime: Runtime, items: list[tuple[InboundEvent, SourceEvent, bool]],
                 now: datetime) -> IntakeResult:
    """At most one event per booking: read for all, judge and plan each, write for all."""
    result = IntakeResult()
    bookings = held_bookings(session, [(row.tenant_id, row.source, event.external_id) for row, event, _ in items])
    jobs = held_jobs(session, [booking.id for booking in bookings.values()])
    repeated = seen_webhook_ids(session, [row for row, _, _ in items])
    plans = []
    for row, event, confirm_new in items:
        booking = bookings.get((row.tenant_id, row.source, event.external_id))
        try:
            plans.append(_plan(runtime, row, event, confirm_new, booking, jobs, repeated, now))
        except Exception as error:  # a planning rule that cannot hold for this event: it alone is rejected
            _reject(row, error, now)
            result.outcomes[InboundOutcome.REJECTED] += 1
    writes = BookingWrites(session, now)
    result.due_now = writes.apply(plans, jobs)
    for plan in plans:
        result.outcomes[plan.verdict.outcome] += 1
    return result


def _plan(runtime: Runtime, row: InboundEvent, event: SourceEvent, confirm_new: bool, booking: Booking | None,
          jobs: HeldJobs, repeated: set[int], now: datetime) -> Plan:
    tenant = runtime.tenants.get(row.tenant_id)
    if tenant is None:
        raise LookupError(f"tenant {row.tenant_id!r} is no longer configured")
    held = None if booking is None else Held(booking.source_version, booking.content_hash,
                                             Visit(booking.starts_at, BookingState(booking.state)))
    verdict = judge(event, held, repeated_webhook=row.id in repeated)
    plan = Plan(row, event, tenant, verdict, booking, previous=None if held is None else held.visit)
    if verdict.change is None:
        return plan
    plan.current, zone = visit_after(verdict.change, plan.previous, booking.timezone if booking else None,
                                     event.facts, tenant.timezone)
    policy = planning_policy(tenant.policy, zone=zone, confirm_new=confirm_new)
    existing = jobs.existing(booking.id) if booking is not None else []
    plan.diff = plan_jobs(plan.previous, plan.current, existing, policy, now)
    return plan


def _reject(row: InboundEvent, error: BaseException, now: datetime) -> None:
    row.outcome = InboundOutcome.REJECTED
    row.error = storable(f"{type(error).__name__}: {error}", 4000)
    row.reason = "unprocessable"
    row.applied_at = now
