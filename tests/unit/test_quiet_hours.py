"""Quiet hours: where a due time lands, per kind, window shape and zone. Fixed datetimes, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.core.cascade import Decision
from connector.core.model import URGENT_KINDS, JobKind, JobStatus, QuietHours
from connector.core.quiet_hours import fit_quiet_hours, quiet_window_around, schedule_fallback

MSK = "Europe/Moscow"  # +03:00, no DST
EKB = "Asia/Yekaterinburg"  # +05:00, no DST
BERLIN = "Europe/Berlin"  # has DST: checks that local times are built with the zone, not a fixed offset

NIGHT = QuietHours(time(21, 0), time(9, 0))
NOON = QuietHours(time(13, 0), time(15, 0))
EMPTY = QuietHours(time(9, 0), time(9, 0))

R = JobKind.REMINDER


def local(tz: str, text: str) -> datetime:
    """'2026-12-02 23:00' in zone tz, as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))


# (id, kind, quiet, tz, due, visit, now, expected due (local, same tz) or None, note fragment or None)
CASES = [
    # --- outside the window: unchanged, no note
    ("outside", R, NIGHT, MSK, "2026-12-02 18:00", "2026-12-03 10:00", "2026-12-01 12:00",
     "2026-12-02 18:00", None),
    ("just before start", R, NIGHT, MSK, "2026-12-02 20:59", "2026-12-03 10:00", "2026-12-01 12:00",
     "2026-12-02 20:59", None),
    ("at the end is outside", R, NIGHT, MSK, "2026-12-03 09:00", "2026-12-03 10:00", "2026-12-01 12:00",
     "2026-12-03 09:00", None),
    # --- quiet hours off
    ("quiet None", R, None, MSK, "2026-12-03 03:00", "2026-12-03 05:00", "2026-12-01 12:00",
     "2026-12-03 03:00", None),
    ("start == end is off", R, EMPTY, MSK, "2026-12-03 03:00", "2026-12-03 05:00", "2026-12-01 12:00",
     "2026-12-03 03:00", None),
    # --- reminder inside: to the window's end when that is before the visit
    ("at the start is inside", R, NIGHT, MSK, "2026-12-02 21:00", "2026-12-03 10:00", "2026-12-01 12:00",
     "2026-12-03 09:00", "moved out of quiet hours 21:00-09:00 to 09:00 local"),
    ("evening part", R, NIGHT, MSK, "2026-12-02 22:00", "2026-12-03 12:00", "2026-12-01 12:00",
     "2026-12-03 09:00", "moved out of quiet hours 21:00-09:00 to 09:00 local"),
    ("morning part", R, NIGHT, MSK, "2026-12-03 07:00", "2026-12-03 11:00", "2026-12-01 12:00",
     "2026-12-03 09:00", "to 09:00 local"),
    ("just after midnight", R, NIGHT, MSK, "2026-12-03 00:00", "2026-12-03 09:01", "2026-12-01 12:00",
     "2026-12-03 09:00", "to 09:00 local"),
    ("ekb 24h reminder", R, NIGHT, EKB, "2026-12-02 08:00", "2026-12-03 08:00", "2026-12-01 12:00",
     "2026-12-02 09:00", "to 09:00 local"),
    # --- reminder inside, visit not after the window's end: to just before the window began
    ("visit at window end", R, NIGHT, MSK, "2026-12-03 07:00", "2026-12-03 09:00", "2026-12-02 12:00",
     "2026-12-02 20:59", "moved before quiet hours 21:00-09:00 to 20:59 local"),
    ("ekb 2h reminder", R, NIGHT, EKB, "2026-12-03 06:00", "2026-12-03 08:00", "2026-12-01 12:00",
     "2026-12-02 20:59", "to 20:59 local"),
    ("evening part, visit at night", R, NIGHT, MSK, "2026-12-02 22:00", "2026-12-03 00:00",
     "2026-12-02 12:00", "2026-12-02 20:59", "moved before"),
    ("before-window is exactly now", R, NIGHT, MSK, "2026-12-03 06:00", "2026-12-03 08:00",
     "2026-12-02 20:59", "2026-12-02 20:59", "moved before"),
    # --- neither fits: skipped, and the note says why
    ("skipped, now in window", R, NIGHT, MSK, "2026-12-03 06:00", "2026-12-03 08:00", "2026-12-02 21:00",
     None, "skipped: due inside quiet hours 21:00-09:00"),
    ("skipped note names the missed moment", R, NIGHT, MSK, "2026-12-03 06:00", "2026-12-03 08:00",
     "2026-12-02 23:30", None, "2026-12-02 20:59 local"),
    # --- a window within one day
    ("noon: before", R, NOON, MSK, "2026-12-03 12:59", "2026-12-03 18:00", "2026-12-01 12:00",
     "2026-12-03 12:59", None),
    ("noon: at end", R, NOON, MSK, "2026-12-03 15:00", "2026-12-03 18:00", "2026-12-01 12:00",
     "2026-12-03 15:00", None),
    ("noon: inside to end", R, NOON, MSK, "2026-12-03 13:30", "2026-12-03 16:00", "2026-12-01 12:00",
     "2026-12-03 15:00", "moved out of quiet hours 13:00-15:00 to 15:00 local"),
    ("noon: inside to before", R, NOON, MSK, "2026-12-03 14:00", "2026-12-03 15:00", "2026-12-01 12:00",
     "2026-12-03 12:59", "moved before quiet hours 13:00-15:00 to 12:59 local"),
    ("noon: skipped", R, NOON, MSK, "2026-12-03 14:00", "2026-12-03 14:30", "2026-12-03 13:00", None,
     "skipped"),
    ("noon: evening is outside", R, NOON, MSK, "2026-12-03 23:00", "2026-12-04 10:00", "2026-12-01 12:00",
     "2026-12-03 23:00", None),
    # --- other non-urgent kinds follow the reminder rules
    ("results ready waits", JobKind.RESULTS_READY, NIGHT, MSK, "2026-12-02 23:00", "2026-12-10 10:00",
     "2026-12-02 23:00", "2026-12-03 09:00", "to 09:00 local"),
    ("recall waits", JobKind.RECALL, NIGHT, MSK, "2026-12-02 23:00", "2026-12-10 10:00", "2026-12-02 23:00",
     "2026-12-03 09:00", "to 09:00 local"),
    # --- urgent kinds: at once when the visit comes before the window ends, else at its end
    ("reschedule 23:00, visit 08:00", JobKind.RESCHEDULE, NIGHT, MSK, "2026-12-02 23:00", "2026-12-03 08:00",
     "2026-12-02 23:00", "2026-12-02 23:00", "sent at once despite quiet hours 21:00-09:00"),
    ("reschedule 23:00, visit 11:00", JobKind.RESCHEDULE, NIGHT, MSK, "2026-12-02 23:00", "2026-12-03 11:00",
     "2026-12-02 23:00", "2026-12-03 09:00", "moved out of quiet hours 21:00-09:00 to 09:00 local"),
    ("cancellation, visit at window end", JobKind.CANCELLATION, NIGHT, MSK, "2026-12-02 23:00",
     "2026-12-03 09:00", "2026-12-02 23:00", "2026-12-02 23:00", "sent at once"),
    ("cancellation, visit a minute later", JobKind.CANCELLATION, NIGHT, MSK, "2026-12-02 23:00",
     "2026-12-03 09:01", "2026-12-02 23:00", "2026-12-03 09:00", "to 09:00 local"),
    ("confirmation at 02:00", JobKind.CONFIRMATION, NIGHT, MSK, "2026-12-03 02:00", "2026-12-03 10:00",
     "2026-12-03 02:00", "2026-12-03 09:00", "to 09:00 local"),
    ("confirmation at 02:00, visit 07:00", JobKind.CONFIRMATION, NIGHT, MSK, "2026-12-03 02:00",
     "2026-12-03 07:00", "2026-12-03 02:00", "2026-12-03 02:00", "sent at once"),
    ("confirmation outside", JobKind.CONFIRMATION, NIGHT, MSK, "2026-12-02 12:00", "2026-12-03 10:00",
     "2026-12-02 12:00", "2026-12-02 12:00", None),
    ("urgent ekb", JobKind.RESCHEDULE, NIGHT, EKB, "2026-12-02 22:00", "2026-12-03 08:00", "2026-12-02 22:00",
     "2026-12-02 22:00", "sent at once"),
    ("urgent noon at once", JobKind.RESCHEDULE, NOON, MSK, "2026-12-03 13:30", "2026-12-03 14:00",
     "2026-12-03 13:30", "2026-12-03 13:30", "sent at once despite quiet hours 13:00-15:00"),
    ("urgent noon to end", JobKind.CANCELLATION, NOON, MSK, "2026-12-03 13:30", "2026-12-03 16:00",
     "2026-12-03 13:30", "2026-12-03 15:00", "to 15:00 local"),
    # --- a zone with DST: the window's end is 09:00 on the new offset, the start 21:00 on the old one
    ("berlin spring forward", R, NIGHT, BERLIN, "2026-03-28 22:00", "2026-03-29 12:00", "2026-03-27 12:00",
     "2026-03-29 09:00", "to 09:00 local"),
    ("berlin fall back", R, NIGHT, BERLIN, "2026-10-25 06:00", "2026-10-25 08:00", "2026-10-24 12:00",
     "2026-10-24 20:59", "to 20:59 local"),
]


@pytest.mark.parametrize(
    ("kind", "quiet", "tz", "due", "visit", "now", "expected", "note"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_fit_quiet_hours(kind, quiet, tz, due, visit, now, expected, note):
    got, got_note = fit_quiet_hours(
        local(tz, due), kind=kind, visit_start=local(tz, visit), now=local(tz, now), quiet=quiet, tz=tz
    )
    if expected is None:
        assert got is None
    else:
        assert got == local(tz, expected)
        assert got.tzinfo is UTC  # always handed back in UTC
    if note is None:
        assert got_note is None
    else:
        assert got_note is not None and note in got_note


@pytest.mark.parametrize(
    ("tz", "due", "expected_utc"),
    [
        # Moscow +03:00: 09:00 local is 06:00Z
        (MSK, "2026-12-02 23:00", datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
        # Yekaterinburg +05:00: 09:00 local is 04:00Z
        (EKB, "2026-12-02 23:00", datetime(2026, 12, 3, 4, 0, tzinfo=UTC)),
        # Berlin on the morning summer time begins: 09:00 CEST is 07:00Z, not 08:00Z
        (BERLIN, "2026-03-28 23:00", datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # Berlin on the morning summer time ends: 09:00 CET is 08:00Z
        (BERLIN, "2026-10-24 23:00", datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),
    ],
)
def test_window_end_converted_back_to_utc(tz, due, expected_utc):
    got, _ = fit_quiet_hours(
        local(tz, due), kind=R, visit_start=local(tz, "2026-12-31 12:00"), now=local(tz, "2026-01-01 00:00"),
        quiet=NIGHT, tz=tz,
    )
    assert got == expected_utc


def test_due_given_in_another_zone_is_judged_in_the_tenants_zone():
    # 19:00Z is 22:00 in Moscow (quiet) but 00:00 in Yekaterinburg (also quiet) and 19:00 in London (not).
    due = datetime(2026, 12, 2, 19, 0, tzinfo=UTC)
    visit = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    moscow, _ = fit_quiet_hours(due, kind=R, visit_start=visit, now=now, quiet=NIGHT, tz=MSK)
    london, note = fit_quiet_hours(due, kind=R, visit_start=visit, now=now, quiet=NIGHT, tz="Europe/London")
    assert moscow == datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    assert (london, note) == (due, None)


@pytest.mark.parametrize("kind", sorted(URGENT_KINDS))
def test_urgent_kinds_are_never_skipped(kind):
    # The situation that skips a reminder: inside the window, visit before its end, evening already past.
    got, _ = fit_quiet_hours(
        local(MSK, "2026-12-03 06:00"), kind=kind, visit_start=local(MSK, "2026-12-03 08:00"),
        now=local(MSK, "2026-12-03 06:00"), quiet=NIGHT, tz=MSK,
    )
    assert got == local(MSK, "2026-12-03 06:00")


def test_urgent_kinds_are_exactly_these():
    assert URGENT_KINDS == {JobKind.CONFIRMATION, JobKind.RESCHEDULE, JobKind.CANCELLATION}


@pytest.mark.parametrize(
    ("quiet", "moment", "expected"),
    [
        (NIGHT, "2026-12-02 22:00", ("2026-12-02 21:00", "2026-12-03 09:00")),
        (NIGHT, "2026-12-03 08:59", ("2026-12-02 21:00", "2026-12-03 09:00")),
        (NIGHT, "2026-12-03 09:00", None),
        (NIGHT, "2026-12-03 20:59", None),
        (NOON, "2026-12-03 13:00", ("2026-12-03 13:00", "2026-12-03 15:00")),
        (NOON, "2026-12-03 15:00", None),
        (EMPTY, "2026-12-03 09:00", None),
        (None, "2026-12-03 03:00", None),
    ],
)
def test_quiet_window_around(quiet, moment, expected):
    got = quiet_window_around(local(MSK, moment), quiet, MSK)
    if expected is None:
        assert got is None
    else:
        assert got == (local(MSK, expected[0]), local(MSK, expected[1]))


# --- fallbacks: a new message at a new moment ---------------------------------------------------------------

MOSCOW_ZONE = ZoneInfo("Europe/Moscow")


def _moscow(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=MOSCOW_ZONE)


@pytest.mark.parametrize(
    ("now", "kind", "visit", "quiet", "expected"),
    [
        (_moscow(2, 14), JobKind.REMINDER, _moscow(3, 10), QuietHours(time(21), time(9)), _moscow(2, 14)),
        # the reminder's first channel timed out at 21:05: the next one waits for 09:00
        (_moscow(2, 21, 5), JobKind.REMINDER, _moscow(3, 12), QuietHours(time(21), time(9)), _moscow(3, 9)),
        # ...unless the visit comes first: then late is better than never
        (_moscow(2, 21, 5), JobKind.REMINDER, _moscow(3, 8), QuietHours(time(21), time(9)), _moscow(2, 21, 5)),
        (_moscow(2, 23), JobKind.RESCHEDULE, _moscow(3, 8), QuietHours(time(21), time(9)), _moscow(2, 23)),
        (_moscow(2, 23), JobKind.RESCHEDULE, _moscow(3, 12), QuietHours(time(21), time(9)), _moscow(3, 9)),
        (_moscow(2, 23), JobKind.RESULTS_READY, None, QuietHours(time(21), time(9)), _moscow(3, 9)),
        (_moscow(2, 23), JobKind.REMINDER, _moscow(3, 12), None, _moscow(2, 23)),
    ],
)
def test_fallback_time(now, kind, visit, quiet, expected):
    from connector.core.quiet_hours import fallback_time

    due, note = fallback_time(now, kind=kind, visit_start=visit, quiet=quiet, tz="Europe/Moscow")
    assert due == expected
    assert due.utcoffset() == timedelta(0)


NIGHT = QuietHours(time(21), time(9))
FALLBACK = Decision(JobStatus.SCHEDULED, next_step=1, note="max via sandbox: failed")


@pytest.mark.parametrize(
    ("decision", "now", "kind", "visit", "quiet", "due", "waiting"),
    [
        # by day the next step goes at once, and nothing is said about waiting
        (FALLBACK, _moscow(2, 14), JobKind.REMINDER, _moscow(3, 10), NIGHT, _moscow(2, 14), None),
        # at night it waits for 09:00, and the trail says why
        (FALLBACK, _moscow(2, 21, 5), JobKind.REMINDER, _moscow(3, 12), NIGHT, _moscow(3, 9),
         "moved out of quiet hours 21:00-09:00 to 09:00 local"),
        # the visit comes first: it goes now, and the note is no waiting
        (FALLBACK, _moscow(2, 21, 5), JobKind.REMINDER, _moscow(3, 8), NIGHT, _moscow(2, 21, 5), None),
        (FALLBACK, _moscow(2, 23), JobKind.RESULTS_READY, None, NIGHT, _moscow(3, 9),
         "moved out of quiet hours 21:00-09:00 to 09:00 local"),
        (FALLBACK, _moscow(2, 23), JobKind.REMINDER, _moscow(3, 12), None, _moscow(2, 23), None),
        # decisions that schedule nothing are left alone
        (Decision(JobStatus.FAILED, note="no channel left"), _moscow(2, 23), JobKind.REMINDER, None, NIGHT,
         None, None),
        (Decision(JobStatus.AWAITING_DELIVERY, deadline=_moscow(2, 23, 10)), _moscow(2, 23), JobKind.REMINDER,
         None, NIGHT, None, None),
    ],
)
def test_schedule_fallback(decision, now, kind, visit, quiet, due, waiting):
    scheduled = schedule_fallback(decision, now=now, kind=kind, visit_start=visit, quiet=quiet, tz="Europe/Moscow")
    assert (scheduled.due_at, scheduled.waiting) == (due, waiting)
    # the rest of the decision is the cascade's, untouched
    assert (scheduled.job_status, scheduled.next_step, scheduled.deadline, scheduled.note) == (
        decision.job_status, decision.next_step, decision.deadline, decision.note)
