"""Early receipts: what a callback's outcome is while its reports wait, and when a kept report is given up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.early_receipts import (
    HOLD_FOR,
    callback_outcome,
    give_up_before,
    held_note,
    outcome_after_release,
    release_note,
)
from connector.core.model import InboundOutcome as O

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("matched", "held", "linked", "expected"), [
    (1, 0, 0, O.APPLIED),
    (1, 3, 0, O.APPLIED),  # part of it applied now: the rest waits, the callback did something
    (0, 0, 1, O.APPLIED),  # a bot link is news enough
    (0, 2, 1, O.APPLIED),
    (0, 1, 0, O.HELD),  # a fast provider's receipt before its attempt has the id: kept, not ignored
    (0, 5, 0, O.HELD),
    (0, 0, 0, O.IGNORED),  # nothing in it for us
])
def test_callback_outcome(matched, held, linked, expected):
    assert callback_outcome(matched=matched, held=held, linked=linked) == expected


@pytest.mark.parametrize(("waited", "expected"), [
    (timedelta(0), False),
    (timedelta(seconds=2), False),  # the usual: the send's group lands a moment later
    (timedelta(minutes=59, seconds=59), False),
    (timedelta(hours=1), True),
    (timedelta(days=2), True),
    (timedelta(seconds=-5), False),  # another host's clock a little ahead
])
def test_given_up_after_the_window(waited, expected):
    assert (T0 <= give_up_before(T0 + waited)) is expected


def test_give_up_before_takes_another_window():
    assert give_up_before(T0, window=timedelta(minutes=5)) == T0 - timedelta(minutes=5)


@pytest.mark.parametrize(("current", "applied", "expected"), [
    (O.HELD, True, O.APPLIED),
    (O.HELD, False, O.IGNORED),
    (O.APPLIED, False, O.APPLIED),  # a callback that applied other reports stays applied
    (O.APPLIED, True, O.APPLIED),
    (O.REJECTED, True, O.REJECTED),
])
def test_outcome_after_release(current, applied, expected):
    assert outcome_after_release(current, applied=applied) == expected


def test_notes_say_how_many_and_for_how_long():
    assert HOLD_FOR == timedelta(hours=1)
    assert held_note(2) == "2 report(s) for message ids not known yet: kept for 1 h"
    assert release_note(1, applied=True) == "1 report(s) applied when their attempt got its id"
    assert release_note(3, applied=False) == "3 report(s) for message ids no attempt took within 1 h: ignored"
