"""What `make demo` says while it watches: which confirmations wait and why, and how the table is redrawn.
Fixed datetimes, no clock, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.entrypoints.demo import held_back, redraw, wait_line

NOW = datetime(2026, 12, 2, 20, 30, tzinfo=UTC)  # 23:30 in Moscow: inside the demo tenant's quiet hours
QUIET = "moved out of quiet hours 21:00-09:00 to 09:00 local"
MORNING = "2026-12-03T06:00:00Z"  # 09:00 Moscow


def job(status="scheduled", due=MORNING, reason=QUIET, attempts=(), next_try=None) -> dict:
    return {"kind": "confirmation", "status": status, "due_at": due, "reason": reason,
            "attempts": list(attempts), "next_try_at": next_try}


SENT = [{"channel": "max", "status": "sent"}]

# (id, jobs, horizon after NOW, expected (due, reason) or None)
HELD = [
    ("all wait for the morning", [job()] * 10, 180, (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), QUIET)),
    ("due now: the worker takes it", [job(due="2026-12-02T20:30:00Z", reason=None)], 180, None),
    ("due within the watch is no wait", [job(due="2026-12-02T20:32:00Z")], 180, None),
    ("due just past the watch", [job(due="2026-12-02T20:33:01Z")], 180,
     (datetime(2026, 12, 2, 20, 33, 1, tzinfo=UTC), QUIET)),
    ("a job under way is not held",
     [job(status="awaiting_delivery", due="2026-12-02T20:00:00Z", attempts=SENT, reason=None)], 180, None),
    ("a settled job is not held", [job(status="delivered")], 180, None),
    ("a fallback waiting for the morning: next_try_at counts",
     [job(due="2026-12-02T20:00:00Z", attempts=[{"channel": "max", "status": "failed"}],
          next_try="2026-12-03T06:00:00Z")], 180, (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), QUIET)),
    ("the earliest of several waits", [job(due="2026-12-03T07:00:00Z", reason="later"), job()], 180,
     (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), QUIET)),
    ("one held, one going: still says so", [job(), job(due="2026-12-02T20:00:00Z", reason=None)], 180,
     (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), QUIET)),
    ("no jobs", [], 180, None),
    ("no reason given", [job(reason=None)], 180, (datetime(2026, 12, 3, 6, 0, tzinfo=UTC), None)),
]


@pytest.mark.parametrize(("jobs", "horizon", "expected"), [case[1:] for case in HELD],
                         ids=[case[0] for case in HELD])
def test_held_back(jobs, horizon, expected):
    assert held_back(jobs, NOW + timedelta(seconds=horizon)) == expected


# (id, due, zone, reason, expected fragments, fragments that must not appear)
LINES = [
    ("quiet hours at night", datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "Europe/Moscow", QUIET,
     ["wait for 09:00 Moscow time", "in 9 h 30 min", "quiet hours 21:00-09:00",
      "CONNECTOR_DEMO_QUIET_HOURS=off make run"], []),
    ("another zone, underscores", datetime(2026, 12, 3, 4, 0, tzinfo=UTC), "America/New_York", QUIET,
     ["wait for 23:00 New York time"], []),
    ("minutes only", datetime(2026, 12, 2, 20, 45, tzinfo=UTC), "Europe/Moscow", QUIET,
     ["wait for 23:45 Moscow time", "in 15 min"], ["0 h"]),
    ("not quiet hours: no advice to turn them off", datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "Europe/Moscow",
     "daily cap of the new number reached", ["wait for 09:00", "daily cap"], ["QUIET_HOURS"]),
    ("no reason", datetime(2026, 12, 3, 6, 0, tzinfo=UTC), "Europe/Moscow", None, ["wait for 09:00"],
     ["QUIET_HOURS", "None"]),
    ("a day away shows the date", datetime(2026, 12, 4, 6, 0, tzinfo=UTC), "Europe/Moscow", QUIET,
     ["wait for 09:00 Moscow time on 2026-12-04"], []),
]


@pytest.mark.parametrize(("due", "zone", "reason", "present", "absent"), [case[1:] for case in LINES],
                         ids=[case[0] for case in LINES])
def test_wait_line(due, zone, reason, present, absent):
    line = wait_line(due, reason, zone=zone, now=NOW)
    assert "\n" not in line
    for fragment in present:
        assert fragment in line
    for fragment in absent:
        assert fragment not in line


TABLE = ["  0  scheduled  —", "  1  scheduled  —"]

# (id, lines, lines already shown, terminal, expected output)
REDRAWS = [
    ("first table, terminal", TABLE, 0, True, "  0  scheduled  —\n  1  scheduled  —\n"),
    ("first table, pipe", TABLE, 0, False, "  0  scheduled  —\n  1  scheduled  —\n"),
    # on a terminal: back up over the table shown, clear from there down, draw it again
    ("again, terminal", TABLE, 2, True, "\x1b[2F\x1b[J  0  scheduled  —\n  1  scheduled  —\n"),
    # in a log or CI: appended, one blank line between tables
    ("again, pipe", TABLE, 2, False, "\n  0  scheduled  —\n  1  scheduled  —\n"),
]


@pytest.mark.parametrize(("lines", "shown", "tty", "expected"), [case[1:] for case in REDRAWS],
                         ids=[case[0] for case in REDRAWS])
def test_redraw(lines, shown, tty, expected):
    assert redraw(lines, shown=shown, tty=tty) == expected


LONG = "  6  delivered          max:not_registered → telegram:not_registered → whatsapp:not_registered → sms:delivered"

# (id, terminal, width, expected line)
WIDTHS = [
    ("a narrow terminal cuts, so each row stays one line", True, 40, LONG[:38] + "…"),
    ("a line that fits is kept", True, 200, LONG),
    ("exactly one column short of the width fits", True, len(LONG) + 1, LONG),
    ("a line as wide as the terminal is cut", True, len(LONG), LONG[: len(LONG) - 2] + "…"),
    ("width unknown", True, 0, LONG),
    ("a pipe keeps the whole line", False, 40, LONG),
]


@pytest.mark.parametrize(("tty", "width", "expected"), [case[1:] for case in WIDTHS],
                         ids=[case[0] for case in WIDTHS])
def test_redraw_fits_the_terminal(tty, width, expected):
    assert redraw([LONG], shown=1, tty=tty, width=width).split("\n")[-2].split("\x1b[J")[-1] == expected
