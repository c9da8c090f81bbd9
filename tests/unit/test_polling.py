"""The polling cadence: questions within a step's timeout, then slower ones within the provider's status window.

Table-driven, fixed datetimes, never the real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.polling import next_poll, poll_due

SENT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
DAYS3 = timedelta(days=3)

CADENCE = [
    # (id, timeout, window, polled after the send (None: never), next question after the send (None: no more))
    # PT30S, the acceptance finding: asked at 7.5 s, 15 s and 22.5 s, then each minute at first
    ("30 s, never asked", 30 * S, DAYS3, None, 7.5 * S),
    ("30 s, asked at 1/4", 30 * S, DAYS3, 7.5 * S, 15 * S),
    ("30 s, asked late for 1/4", 30 * S, DAYS3, 9 * S, 15 * S),
    ("30 s, asked at 1/2", 30 * S, DAYS3, 15 * S, 22.5 * S),
    ("30 s, asked at 3/4", 30 * S, DAYS3, 22.5 * S, 22.5 * S + MIN),
    ("30 s, asked at the deadline", 30 * S, DAYS3, 30 * S, 90 * S),
    # PT2M: 30, 60, 90 s; an SMS delivered at 108 s is found by the deadline's question, not after it
    ("2 min, never asked", 2 * MIN, DAYS3, None, 30 * S),
    ("2 min, asked at 1/2", 2 * MIN, DAYS3, 60 * S, 90 * S),
    ("2 min, asked at the deadline", 2 * MIN, DAYS3, 2 * MIN, 3 * MIN),
    # a long step: quarters, then half the message's age, at most an hour
    ("1 h, never asked", H, DAYS3, None, 15 * MIN),
    ("1 h, asked at 3/4", H, DAYS3, 45 * MIN, 45 * MIN + 22.5 * MIN),
    ("1 h, asked at the deadline", H, DAYS3, H, 90 * MIN),
    ("1 h, asked at 3 h", H, DAYS3, 3 * H, 4 * H),
    ("1 day, asked at 3/4: hourly until the deadline", 24 * H, DAYS3, 18 * H, 19 * H),
    # short steps: never two questions within five seconds; marks that close to the deadline are left to it
    ("8 s, never asked", 8 * S, DAYS3, None, 5 * S),
    ("8 s, asked at 5 s", 8 * S, DAYS3, 5 * S, 65 * S),
    ("4 s, never asked: the deadline asks first", 4 * S, DAYS3, None, MIN),
    ("no timeout", timedelta(0), DAYS3, None, MIN),
    # the status window ends the questions
    ("window ends before the next question", H, DAYS3, DAYS3 - 10 * MIN, None),
    ("last question exactly at the window's end", H, DAYS3, DAYS3 - H, DAYS3),
    ("no window", 30 * S, timedelta(0), None, None),
    ("window shorter than the first mark", H, 10 * MIN, None, None),
    # a poll stamped before the send (clocks of two hosts) counts as never
    ("asked before the send", 30 * S, DAYS3, -5 * S, 7.5 * S),
]


@pytest.mark.parametrize(("timeout", "window", "polled", "expected"), [case[1:] for case in CADENCE],
                         ids=[case[0] for case in CADENCE])
def test_next_poll(timeout, window, polled, expected):
    when = next_poll(SENT, timeout, window, None if polled is None else SENT + polled)
    assert when == (None if expected is None else SENT + expected)


@pytest.mark.parametrize("timeout", [4 * S, 30 * S, 2 * MIN, H, 24 * H])
def test_several_questions_within_the_timeout_the_first_well_before_it(timeout):
    asked, polled = [], None
    while (when := next_poll(SENT, timeout, DAYS3, polled)) is not None and when < SENT + timeout:
        asked.append(when - SENT)
        polled = when
    if timeout >= 20 * S:
        assert len(asked) >= 3 and asked[0] <= timeout / 4
    assert all(b - a >= 5 * S for a, b in zip(asked, asked[1:], strict=False))


def test_a_three_day_window_costs_about_eighty_questions():
    polled, count = SENT + 30 * S, 0
    while (when := next_poll(SENT, 30 * S, DAYS3, polled)) is not None:
        assert when - polled <= H
        polled, count = when, count + 1
    assert 60 <= count <= 100


POLL_DUE = [
    ("before the first mark", None, 7 * S, False),
    ("at the first mark", None, 7.5 * S, True),
    ("long after, never asked", None, H, True),
    ("just asked", 7.5 * S, 10 * S, False),
    ("at the next mark", 7.5 * S, 15 * S, True),
    ("after the window", DAYS3 - S, DAYS3 + H, False),
]


@pytest.mark.parametrize(("polled", "now", "due"), [case[1:] for case in POLL_DUE], ids=[c[0] for c in POLL_DUE])
def test_poll_due(polled, now, due):
    assert poll_due(SENT, 30 * S, DAYS3, None if polled is None else SENT + polled, SENT + now) is due
