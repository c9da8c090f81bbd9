"""What one source event does to the booking we hold: the intake's rules as a pure function.

`judge` says whether an event is a repeat, stale, nothing for us, or a change (and which); the use case
(connector.usecases.intake) plans the change's jobs and writes it all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from connector.core.model import (
    AuditWhat,
    BookingFacts,
    BookingState,
    EventAction,
    InboundOutcome,
    Policy,
    SourceEvent,
    Visit,
)
from connector.core.versions import is_stale

T = TypeVar("T")


class Change(StrEnum):
    UPSERT = "upsert"  # the facts replace what we hold (or make a new booking)
    CANCEL = "cancel"  # deleted at the source: the booking we hold is cancelled
    CANCEL_NEW = "cancel_new"  # deleted before we ever held it: kept cancelled, so a late create finds it so


@dataclass(frozen=True)
class Held:
    """What the ledger holds of a booking, as far as judging an event goes."""

    version: datetime | None
    content_hash: str
    visit: Visit


@dataclass(frozen=True)
class Verdict:
    outcome: InboundOutcome
    detail: str | None = None
    change: Change | None = None
    touches_booking: bool = False  # a repeat or stale event of a held booking still goes on its trail


def judge(event: SourceEvent, held: Held | None, *, repeated_webhook: bool) -> Verdict:
    if repeated_webhook:
        return Verdict(InboundOutcome.DUPLICATE, "this webhook id was already received")
    if held is not None and is_stale(held.version, event.version):
        return Verdict(InboundOutcome.STALE, "older than the version we hold", touches_booking=True)
    if event.action is EventAction.DELETE:
        if held is None:
            if event.facts is None:
                return Verdict(InboundOutcome.IGNORED, "delete for a booking we never held")
            return Verdict(InboundOutcome.APPLIED, change=Change.CANCEL_NEW)
        if held.visit.state is BookingState.CANCELLED:
            return Verdict(InboundOutcome.DUPLICATE, "already cancelled", touches_booking=True)
        return Verdict(InboundOutcome.APPLIED, change=Change.CANCEL)
    if event.facts is None:
        return Verdict(InboundOutcome.IGNORED, "an update that carries no booking")
    if held is not None and held.content_hash == content_hash(event.facts):
        # Same facts, maybe a newer version (a confirmation flag we do not plan on): the caller keeps the
        # version, so that an older update arriving later is still seen as stale.
        return Verdict(InboundOutcome.DUPLICATE, "nothing changed", touches_booking=True)
    return Verdict(InboundOutcome.APPLIED, change=Change.UPSERT)


def visit_after(change: Change, held: Visit | None, held_zone: str | None, facts: BookingFacts | None,
                tenant_zone: str) -> tuple[Visit, str]:
    """The visit as a change leaves it, and the zone its quiet hours are read in: a delete cancels the visit we
    hold (in its own zone), or, for one we never held, the visit it describes; an upsert is what it says. A clinic
    network's branch may say its own zone (generic sources): its quiet hours are its own."""
    if change is Change.CANCEL:
        if held is None:
            raise ValueError("a cancellation of a booking we do not hold")
        return Visit(held.starts_at, BookingState.CANCELLED), held_zone or tenant_zone
    if facts is None:
        raise ValueError(f"a {change} without the booking's facts")
    state = BookingState.CANCELLED if change is Change.CANCEL_NEW else facts.state
    return Visit(facts.starts_at, state), facts.timezone or tenant_zone


def planning_policy(policy: Policy, *, zone: str, confirm_new: bool) -> Policy:
    """The tenant's policy for one booking: in its zone, and without a confirmation for a booking the sync found
    long after it was made (`confirm_new=False`)."""
    return replace(policy, timezone=zone, confirmation=policy.confirmation and confirm_new)


def content_hash(facts: BookingFacts) -> str:
    """A fingerprint of what we care about in a booking: a repeat with the same facts changes nothing."""
    canonical = json.dumps(asdict(facts), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def booking_change(previous: Visit | None, current: Visit) -> tuple[AuditWhat, str | None]:
    """How a booking's trail names what an applied upsert did to it."""
    if previous is None:
        return AuditWhat.BOOKING_CREATED, None
    if previous.state != current.state:
        return AuditWhat.of_booking(current.state), None
    if previous.starts_at != current.starts_at:
        return AuditWhat.BOOKING_TIME_MOVED, f"visit now at {current.starts_at.isoformat()}"
    return AuditWhat.BOOKING_UPDATED, None


def source_order(version: datetime | None, received_at: datetime, event_id: int) -> tuple[datetime, int]:
    """Sort key of one booking's events: the order the source meant (its version, else when it came), then
    arrival."""
    return (version or received_at, event_id)


def rounds(groups: Iterable[Sequence[T]]) -> list[list[T]]:
    """Round k holds the k-th item of every group: one booking's events go one per round, in their order."""
    out: list[list[T]] = []
    for group in groups:
        for index, item in enumerate(group):
            if index == len(out):
                out.append([])
            out[index].append(item)
    return out
