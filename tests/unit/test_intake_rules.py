"""The intake's rules (connector.core.intake): what an event does to the booking we hold, and in which order
one booking's events are applied."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from connector.core.intake import (
    Change,
    Held,
    booking_change,
    content_hash,
    judge,
    planning_policy,
    rounds,
    source_order,
    visit_after,
)
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

T = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
V1, V2 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC), datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
FACTS = BookingFacts(external_id="1", starts_at=T)


def held(version=V1, facts=FACTS, state=BookingState.ACTIVE) -> Held:
    return Held(version, content_hash(facts), Visit(facts.starts_at, state))


def upsert(version=V2, facts=FACTS) -> SourceEvent:
    return SourceEvent(EventAction.UPSERT, "1", version, facts)


def delete(version=V2, facts=None) -> SourceEvent:
    return SourceEvent(EventAction.DELETE, "1", version, facts)


MOVED = replace(FACTS, starts_at=T + timedelta(hours=5))


@pytest.mark.parametrize("event, holding, repeated, outcome, change, touches", [
    (upsert(), None, False, InboundOutcome.APPLIED, Change.UPSERT, False),
    (upsert(facts=MOVED), held(), False, InboundOutcome.APPLIED, Change.UPSERT, False),
    (upsert(), held(), False, InboundOutcome.DUPLICATE, None, True),  # same facts, newer version
    (upsert(version=V1), held(version=V2), False, InboundOutcome.STALE, None, True),
    (upsert(), held(), True, InboundOutcome.DUPLICATE, None, False),  # the same webhook id again
    (upsert(version=None, facts=MOVED), held(), False, InboundOutcome.APPLIED, Change.UPSERT, False),
    (SourceEvent(EventAction.UPSERT, "1", V2, None), held(), False, InboundOutcome.IGNORED, None, False),
    (delete(), None, False, InboundOutcome.IGNORED, None, False),
    (delete(facts=FACTS), None, False, InboundOutcome.APPLIED, Change.CANCEL_NEW, False),
    (delete(), held(), False, InboundOutcome.APPLIED, Change.CANCEL, False),
    (delete(), held(state=BookingState.CANCELLED), False, InboundOutcome.DUPLICATE, None, True),
    (delete(version=V1), held(version=V2), False, InboundOutcome.STALE, None, True),
])
def test_judge(event, holding, repeated, outcome, change, touches):
    verdict = judge(event, holding, repeated_webhook=repeated)
    assert (verdict.outcome, verdict.change, verdict.touches_booking) == (outcome, change, touches)
    assert (verdict.detail is None) == (outcome == InboundOutcome.APPLIED)


def test_the_fingerprint_follows_the_facts():
    assert content_hash(FACTS) == content_hash(replace(FACTS))
    assert content_hash(FACTS) != content_hash(MOVED)


@pytest.mark.parametrize("previous, current, what, detail", [
    (None, Visit(T), AuditWhat.BOOKING_CREATED, None),
    (Visit(T), Visit(T, BookingState.NO_SHOW), AuditWhat.BOOKING_NO_SHOW, None),
    (Visit(T), Visit(T + timedelta(hours=1)), AuditWhat.BOOKING_TIME_MOVED, "visit now at 2026-12-03T08:00:00+00:00"),
    (Visit(T), Visit(T), AuditWhat.BOOKING_UPDATED, None),
])
def test_booking_change(previous, current, what, detail):
    assert booking_change(previous, current) == (what, detail)


def test_one_bookings_events_go_in_the_sources_order_then_arrival():
    received = T
    events = [(5, V2, received), (3, None, V2 + timedelta(minutes=1)), (4, V1, received), (6, V2, received)]
    assert [item[0] for item in sorted(events, key=lambda e: source_order(*e[1:], e[0]))] == [4, 5, 6, 3]


def test_rounds_take_one_event_of_each_booking_at_a_time():
    assert rounds([[1, 2, 3], [4], [], [5, 6]]) == [[1, 4, 5], [2, 6], [3]]
    assert rounds([]) == []


HELD_VISIT = Visit(T + timedelta(hours=3))


@pytest.mark.parametrize("change, held, held_zone, facts, expected", [
    # a delete cancels the visit we hold, in the zone we hold it in
    (Change.CANCEL, HELD_VISIT, "Asia/Yekaterinburg", None,
     (Visit(HELD_VISIT.starts_at, BookingState.CANCELLED), "Asia/Yekaterinburg")),
    (Change.CANCEL, HELD_VISIT, None, None, (Visit(HELD_VISIT.starts_at, BookingState.CANCELLED), "Europe/Moscow")),
    # a delete of one we never held: the visit it describes, cancelled
    (Change.CANCEL_NEW, None, None, MOVED, (Visit(MOVED.starts_at, BookingState.CANCELLED), "Europe/Moscow")),
    # an upsert is what it says, in the branch's own zone when it names one
    (Change.UPSERT, HELD_VISIT, "Europe/Moscow", replace(MOVED, timezone="Asia/Omsk"),
     (Visit(MOVED.starts_at), "Asia/Omsk")),
    (Change.UPSERT, None, None, replace(MOVED, state=BookingState.NO_SHOW),
     (Visit(MOVED.starts_at, BookingState.NO_SHOW), "Europe/Moscow")),
])
def test_the_visit_a_change_leaves(change, held, held_zone, facts, expected):
    assert visit_after(change, held, held_zone, facts, "Europe/Moscow") == expected


@pytest.mark.parametrize("change, held, facts", [(Change.CANCEL, None, FACTS), (Change.UPSERT, HELD_VISIT, None)])
def test_a_change_without_what_it_needs_is_refused(change, held, facts):
    with pytest.raises(ValueError):
        visit_after(change, held, None, facts, "Europe/Moscow")


@pytest.mark.parametrize("confirmation, confirm_new, expected", [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False)])
def test_a_booking_the_sync_found_late_gets_no_confirmation(confirmation, confirm_new, expected):
    policy = planning_policy(Policy(confirmation=confirmation), zone="Asia/Omsk", confirm_new=confirm_new)
    assert (policy.confirmation, policy.timezone) == (expected, "Asia/Omsk")
