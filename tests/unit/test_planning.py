"""Planning: which jobs a booking wants, diffed against the ledger. Fixed datetimes, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.core.model import (
    BookingState,
    Cancellation,
    ExistingJob,
    JobKind,
    JobStatus,
    PlanDiff,
    Policy,
    QuietHours,
    Visit,
)
from connector.core.planning import offset_key, plan_jobs, reminder_key, utc_key_time

MSK = "Europe/Moscow"
EKB = "Asia/Yekaterinburg"

DEFAULT = Policy()  # Moscow, 24 h + 2 h, quiet 21:00-09:00, every notice on
EKB_POLICY = Policy(timezone=EKB)
NO_QUIET = Policy(quiet_hours=None)

ACTIVE, CANCELLED = BookingState.ACTIVE, BookingState.CANCELLED
NO_SHOW, ATTENDED = BookingState.NO_SHOW, BookingState.ATTENDED
C, R, RS, CN = JobKind.CONFIRMATION, JobKind.REMINDER, JobKind.RESCHEDULE, JobKind.CANCELLATION
SCHEDULED, SKIPPED = JobStatus.SCHEDULED, JobStatus.SKIPPED


def msk(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(MSK))


def ekb(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(EKB))


def z(text: str) -> datetime:
    """A UTC instant written as in the keys: '2026-12-03T07:00:00Z'."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def adds(diff: PlanDiff) -> list[tuple]:
    """The added jobs as (key, kind, due_at in UTC ISO, status), in the diff's own order."""
    return [(j.key, j.kind, utc_key_time(j.due_at), j.status) for j in diff.add]


def cancels(diff: PlanDiff) -> list[tuple[str, str]]:
    return [(c.key, c.reason) for c in diff.cancel]


def apply(existing: list[ExistingJob], diff: PlanDiff) -> list[ExistingJob]:
    """The ledger after the diff: cancelled rows flip status, added jobs become new rows."""
    gone = {c.key for c in diff.cancel}
    kept = [replace(j, status=JobStatus.CANCELLED) if j.key in gone and j.status is SCHEDULED else j
            for j in existing]
    return kept + [ExistingJob(j.key, j.kind, j.status, j.due_at) for j in diff.add]


def job(key: str, kind: JobKind, due: str, status: JobStatus = SCHEDULED) -> ExistingJob:
    return ExistingJob(key, kind, status, z(due))


# --------------------------------------------------------------------------------------------- key spelling


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (timedelta(hours=24), "P1D"),
        (timedelta(days=1), "P1D"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(minutes=30), "PT30M"),
        (timedelta(hours=36), "P1DT12H"),
        (timedelta(days=7), "P7D"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(seconds=90), "PT1M30S"),
        (timedelta(0), "PT0S"),
    ],
)
def test_offset_key(offset, expected):
    assert offset_key(offset) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (msk("2026-12-03 10:00"), "2026-12-03T07:00:00Z"),
        (ekb("2026-12-03 08:00"), "2026-12-03T03:00:00Z"),
        (msk("2026-12-03 02:30"), "2026-12-02T23:30:00Z"),
        (datetime(2026, 12, 3, 7, 0, 15, tzinfo=UTC), "2026-12-03T07:00:15Z"),
    ],
)
def test_utc_key_time(moment, expected):
    assert utc_key_time(moment) == expected


def test_reminder_key():
    assert reminder_key(timedelta(hours=24), msk("2026-12-03 10:00")) == "reminder:P1D@2026-12-03T07:00:00Z"


# ------------------------------------------------------------------------------------- a booking seen first

NEW_BOOKINGS = [
    pytest.param(
        DEFAULT, msk("2026-12-03 12:00"), msk("2026-12-01 12:00"),
        [
            ("confirmation", C, "2026-12-01T09:00:00Z", SCHEDULED),
            ("reminder:P1D@2026-12-03T09:00:00Z", R, "2026-12-02T09:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T09:00:00Z", R, "2026-12-03T07:00:00Z", SCHEDULED),
        ],
        id="24h and 2h by default",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-03 13:00"), msk("2026-12-03 10:00"),
        [
            ("confirmation", C, "2026-12-03T07:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T10:00:00Z", R, "2026-12-03T08:00:00Z", SCHEDULED),
        ],
        id="3 h ahead gets only the 2 h reminder",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-03 13:00"), msk("2026-12-02 13:00"),
        [
            ("confirmation", C, "2026-12-02T10:00:00Z", SCHEDULED),
            ("reminder:P1D@2026-12-03T10:00:00Z", R, "2026-12-02T10:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T10:00:00Z", R, "2026-12-03T08:00:00Z", SCHEDULED),
        ],
        id="a reminder due exactly now is still planned",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-03 13:00"), msk("2026-12-03 12:30"),
        [("confirmation", C, "2026-12-03T09:30:00Z", SCHEDULED)],
        id="30 min ahead: confirmation only",
    ),
    pytest.param(DEFAULT, msk("2026-12-03 13:00"), msk("2026-12-03 13:00"), [], id="starting now: nothing"),
    pytest.param(DEFAULT, msk("2026-12-03 13:00"), msk("2026-12-04 13:00"), [], id="in the past: nothing"),
    pytest.param(
        replace(DEFAULT, confirmation=False), msk("2026-12-03 12:00"), msk("2026-12-01 12:00"),
        [
            ("reminder:P1D@2026-12-03T09:00:00Z", R, "2026-12-02T09:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T09:00:00Z", R, "2026-12-03T07:00:00Z", SCHEDULED),
        ],
        id="confirmation off",
    ),
    pytest.param(
        replace(DEFAULT, reminder_offsets=()), msk("2026-12-03 12:00"), msk("2026-12-01 12:00"),
        [("confirmation", C, "2026-12-01T09:00:00Z", SCHEDULED)],
        id="no reminder offsets",
    ),
    pytest.param(
        replace(DEFAULT, confirmation=False, reminder_offsets=(timedelta(hours=36), timedelta(minutes=30))),
        msk("2026-12-03 12:00"), msk("2026-12-01 12:00"),
        [
            ("reminder:P1DT12H@2026-12-03T09:00:00Z", R, "2026-12-02T06:00:00Z", SCHEDULED),
            ("reminder:PT30M@2026-12-03T09:00:00Z", R, "2026-12-03T08:30:00Z", SCHEDULED),
        ],
        id="custom offsets; 36 h lands at 00:00 local and moves to 09:00 local",
    ),
    pytest.param(
        replace(DEFAULT, confirmation=False, reminder_offsets=(timedelta(hours=2), timedelta(hours=2),
                                                               timedelta(0), timedelta(hours=-1))),
        msk("2026-12-03 12:00"), msk("2026-12-01 12:00"),
        [("reminder:PT2H@2026-12-03T09:00:00Z", R, "2026-12-03T07:00:00Z", SCHEDULED)],
        id="repeated, zero and negative offsets: one reminder, none at or after the start",
    ),
    pytest.param(
        EKB_POLICY, ekb("2026-12-03 08:00"), ekb("2026-12-01 12:00"),
        [
            ("confirmation", C, "2026-12-01T07:00:00Z", SCHEDULED),
            # 08:00 local the day before is quiet: moved to 09:00 local (04:00Z), still before the visit
            ("reminder:P1D@2026-12-03T03:00:00Z", R, "2026-12-02T04:00:00Z", SCHEDULED),
            # 06:00 local is quiet and the window ends after the visit: 20:59 local the evening before
            ("reminder:PT2H@2026-12-03T03:00:00Z", R, "2026-12-02T15:59:00Z", SCHEDULED),
        ],
        id="yekaterinburg visit at 08:00 local",
    ),
    pytest.param(
        EKB_POLICY, ekb("2026-12-03 08:00"), ekb("2026-12-02 22:00"),
        [
            # booked at night for the morning: the confirmation goes at once
            ("confirmation", C, "2026-12-02T17:00:00Z", SCHEDULED),
            # the 2 h reminder can go neither at 09:00 nor at 20:59: recorded as skipped at its raw time
            ("reminder:PT2H@2026-12-03T03:00:00Z", R, "2026-12-03T01:00:00Z", SKIPPED),
        ],
        id="yekaterinburg booked at 22:00 for 08:00: 2 h reminder skipped",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-03 11:00"), msk("2026-12-02 23:00"),
        [
            ("confirmation", C, "2026-12-03T06:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T08:00:00Z", R, "2026-12-03T06:00:00Z", SCHEDULED),
        ],
        id="booked at 23:00 for 11:00: confirmation and 2 h reminder both at 09:00",
    ),
    pytest.param(
        NO_QUIET, msk("2026-12-03 08:00"), msk("2026-12-01 12:00"),
        [
            ("confirmation", C, "2026-12-01T09:00:00Z", SCHEDULED),
            ("reminder:P1D@2026-12-03T05:00:00Z", R, "2026-12-02T05:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T05:00:00Z", R, "2026-12-03T03:00:00Z", SCHEDULED),
        ],
        id="quiet hours off: 06:00 local is fine",
    ),
]


@pytest.mark.parametrize(("policy", "start", "now", "expected"), NEW_BOOKINGS)
def test_new_booking(policy, start, now, expected):
    diff = plan_jobs(None, Visit(start), [], policy, now)
    assert adds(diff) == expected
    assert diff.cancel == ()


def test_notes_explain_moves_and_skips():
    diff = plan_jobs(None, Visit(ekb("2026-12-03 08:00")), [], EKB_POLICY, ekb("2026-12-02 22:00"))
    notes = {j.key: j.note for j in diff.add}
    assert "sent at once despite quiet hours 21:00-09:00" in notes["confirmation"]
    assert notes["reminder:PT2H@2026-12-03T03:00:00Z"].startswith("skipped:")

    diff = plan_jobs(None, Visit(ekb("2026-12-03 08:00")), [], EKB_POLICY, ekb("2026-12-01 12:00"))
    notes = {j.key: j.note for j in diff.add}
    assert notes["confirmation"] is None
    assert notes["reminder:P1D@2026-12-03T03:00:00Z"] == "moved out of quiet hours 21:00-09:00 to 09:00 local"
    before = "moved before quiet hours 21:00-09:00 to 20:59 local"
    assert notes["reminder:PT2H@2026-12-03T03:00:00Z"] == before


# ----------------------------------------------------------------------------------------------- idempotence

REPLAN_CASES = [
    pytest.param(DEFAULT, msk("2026-12-03 12:00"), msk("2026-12-01 12:00"), id="moscow"),
    pytest.param(EKB_POLICY, ekb("2026-12-03 08:00"), ekb("2026-12-01 12:00"), id="yekaterinburg"),
    pytest.param(EKB_POLICY, ekb("2026-12-03 08:00"), ekb("2026-12-02 22:00"), id="with a skipped reminder"),
    pytest.param(DEFAULT, msk("2026-12-03 11:00"), msk("2026-12-02 23:00"), id="at night"),
]


@pytest.mark.parametrize(("policy", "start", "now"), REPLAN_CASES)
@pytest.mark.parametrize("previous_again", [True, False], ids=["previous=current", "first event twice"])
def test_replanning_the_same_visit_is_empty(policy, start, now, previous_again):
    visit = Visit(start)
    ledger = apply([], plan_jobs(None, visit, [], policy, now))
    assert ledger, "the first plan adds something"
    later = now + timedelta(minutes=5)
    assert plan_jobs(visit if previous_again else None, visit, ledger, policy, later) == PlanDiff()


def test_replan_after_a_reminders_raw_time_keeps_it_waiting_for_the_morning():
    # The 24 h reminder of a visit at 08:00 falls at 08:00 the day before, in the quiet hours: it waits.
    visit = Visit(msk("2026-12-03 08:00"))
    ledger = apply([], plan_jobs(None, visit, [], DEFAULT, msk("2026-12-01 12:00")))
    p1d = next(j for j in ledger if j.key.startswith("reminder:P1D"))
    assert p1d.due_at == msk("2026-12-02 09:00")  # raw 08:00 local, moved to 09:00
    # A replan at 08:30, past the raw time but before the moved one, must not withdraw it.
    assert plan_jobs(visit, visit, ledger, DEFAULT, msk("2026-12-02 08:30")) == PlanDiff()


@pytest.mark.parametrize(
    "status", [JobStatus.SENDING, JobStatus.AWAITING_DELIVERY, JobStatus.DELIVERED, JobStatus.READ,
               JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.SKIPPED],
)
def test_a_key_held_in_any_live_or_final_state_is_not_added_again(status):
    visit = Visit(msk("2026-12-03 12:00"))
    ledger = [job("confirmation", C, "2026-12-01T09:00:00Z", status)]
    diff = plan_jobs(None, visit, ledger, replace(DEFAULT, reminder_offsets=()), msk("2026-12-01 12:00"))
    assert diff == PlanDiff()


def test_a_key_held_only_by_cancelled_rows_is_added_again():
    visit = Visit(msk("2026-12-03 12:00"))
    ledger = [job("confirmation", C, "2026-12-01T09:00:00Z", JobStatus.CANCELLED)]
    diff = plan_jobs(None, visit, ledger, replace(DEFAULT, reminder_offsets=()), msk("2026-12-01 12:00"))
    assert adds(diff) == [("confirmation", C, "2026-12-01T09:00:00Z", SCHEDULED)]


# ----------------------------------------------------------------------------------------------- rescheduling


def test_moved_and_moved_back():
    policy, now = DEFAULT, msk("2026-12-01 12:00")
    ten, three = Visit(msk("2026-12-03 10:00")), Visit(msk("2026-12-03 15:00"))
    ledger = apply([], plan_jobs(None, ten, [], policy, now))

    there = plan_jobs(ten, three, ledger, policy, now)
    assert adds(there) == [
        ("reschedule@2026-12-03T12:00:00Z", RS, "2026-12-01T09:00:00Z", SCHEDULED),
        ("reminder:P1D@2026-12-03T12:00:00Z", R, "2026-12-02T12:00:00Z", SCHEDULED),
        ("reminder:PT2H@2026-12-03T12:00:00Z", R, "2026-12-03T10:00:00Z", SCHEDULED),
    ]
    # the confirmation stays; the old reminders go
    assert cancels(there) == [
        ("reminder:P1D@2026-12-03T07:00:00Z", "visit moved"),
        ("reminder:PT2H@2026-12-03T07:00:00Z", "visit moved"),
    ]
    ledger = apply(ledger, there)

    back = plan_jobs(three, ten, ledger, policy, now + timedelta(minutes=10))
    # the 10:00 reminders exist only as cancelled rows: planned again (the 2 h one, 08:00, waits for 09:00)
    assert adds(back) == [
        ("reschedule@2026-12-03T07:00:00Z", RS, "2026-12-01T09:10:00Z", SCHEDULED),
        ("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z", SCHEDULED),
        ("reminder:PT2H@2026-12-03T07:00:00Z", R, "2026-12-03T06:00:00Z", SCHEDULED),
    ]
    assert cancels(back) == [
        ("reschedule@2026-12-03T12:00:00Z", "superseded by a later change"),
        ("reminder:P1D@2026-12-03T12:00:00Z", "visit moved"),
        ("reminder:PT2H@2026-12-03T12:00:00Z", "visit moved"),
    ]
    ledger = apply(ledger, back)
    assert plan_jobs(ten, ten, ledger, policy, now + timedelta(minutes=20)) == PlanDiff()


RESCHEDULES = [
    pytest.param(
        DEFAULT, msk("2026-12-05 10:00"), msk("2026-12-03 08:00"), msk("2026-12-02 23:00"),
        [
            # the visit is before the quiet hours end: the patient is told at once, at 23:00
            ("reschedule@2026-12-03T05:00:00Z", RS, "2026-12-02T20:00:00Z", SCHEDULED),
            # the 24 h reminder is past; the 2 h one (06:00) fits neither 09:00 nor 20:59: skipped
            ("reminder:PT2H@2026-12-03T05:00:00Z", R, "2026-12-03T03:00:00Z", SKIPPED),
        ],
        id="23:00, moved to 08:00 tomorrow: at once",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-05 10:00"), msk("2026-12-03 11:00"), msk("2026-12-02 23:00"),
        [
            ("reminder:PT2H@2026-12-03T08:00:00Z", R, "2026-12-03T06:00:00Z", SCHEDULED),
            ("reschedule@2026-12-03T08:00:00Z", RS, "2026-12-03T06:00:00Z", SCHEDULED),
        ],
        id="23:00, moved to 11:00 tomorrow: at 09:00",
    ),
    pytest.param(
        replace(DEFAULT, reschedule=False), msk("2026-12-05 10:00"), msk("2026-12-03 11:00"),
        msk("2026-12-02 23:00"),
        [("reminder:PT2H@2026-12-03T08:00:00Z", R, "2026-12-03T06:00:00Z", SCHEDULED)],
        id="reschedule notices off",
    ),
    pytest.param(
        NO_QUIET, msk("2026-12-05 10:00"), msk("2026-12-03 11:00"), msk("2026-12-02 23:00"),
        [
            ("reschedule@2026-12-03T08:00:00Z", RS, "2026-12-02T20:00:00Z", SCHEDULED),
            ("reminder:PT2H@2026-12-03T08:00:00Z", R, "2026-12-03T06:00:00Z", SCHEDULED),
        ],
        id="quiet hours off: at once",
    ),
    pytest.param(
        DEFAULT, msk("2026-12-05 10:00"), msk("2026-12-02 10:00"), msk("2026-12-02 12:00"), [],
        id="moved into the past: nothing",
    ),
]


@pytest.mark.parametrize(("policy", "old", "new", "now", "expected"), RESCHEDULES)
def test_reschedule(policy, old, new, now, expected):
    diff = plan_jobs(Visit(old), Visit(new), [], policy, now)
    assert adds(diff) == expected


def test_same_instant_in_another_zone_is_not_a_move():
    diff = plan_jobs(Visit(msk("2026-12-03 10:00")), Visit(z("2026-12-03T07:00:00Z")), [], DEFAULT,
                     msk("2026-12-01 12:00"))
    assert all(j.kind is not RS for j in diff.add)


def test_pending_reschedule_for_the_current_start_stays():
    visit = Visit(msk("2026-12-03 10:00"))
    ledger = [job("reschedule@2026-12-03T07:00:00Z", RS, "2026-12-03T06:00:00Z"),
              job("reminder:PT2H@2026-12-03T07:00:00Z", R, "2026-12-03T05:00:00Z")]
    diff = plan_jobs(visit, visit, ledger, replace(DEFAULT, reminder_offsets=(timedelta(hours=2),)),
                     msk("2026-12-02 23:30"))
    assert diff == PlanDiff()


def test_reminder_dropped_from_the_policy_is_no_longer_planned():
    visit = Visit(msk("2026-12-03 10:00"))
    ledger = [job("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z"),
              job("reminder:PT2H@2026-12-03T07:00:00Z", R, "2026-12-03T05:00:00Z")]
    diff = plan_jobs(visit, visit, ledger, replace(DEFAULT, reminder_offsets=(timedelta(hours=2),)),
                     msk("2026-12-01 12:00"))
    assert diff == PlanDiff(cancel=(Cancellation("reminder:P1D@2026-12-03T07:00:00Z", "no longer planned"),))


def test_moved_after_a_cancellation_is_restored_without_confirmation_or_reschedule():
    # cancelled at 10:00, then restored at 12:00: reminders again, the pending cancellation notice withdrawn
    old, new = Visit(msk("2026-12-03 10:00"), CANCELLED), Visit(msk("2026-12-03 12:00"))
    ledger = [
        job("confirmation", C, "2026-12-01T09:00:00Z", JobStatus.DELIVERED),
        job("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z", JobStatus.CANCELLED),
        job("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-02T06:00:00Z"),
    ]
    diff = plan_jobs(old, new, ledger, DEFAULT, msk("2026-12-01 23:00"))
    assert adds(diff) == [
        ("reminder:P1D@2026-12-03T09:00:00Z", R, "2026-12-02T09:00:00Z", SCHEDULED),
        ("reminder:PT2H@2026-12-03T09:00:00Z", R, "2026-12-03T07:00:00Z", SCHEDULED),
    ]
    assert cancels(diff) == [("cancellation@2026-12-03T07:00:00Z", "booking active again")]


def test_restored_at_the_same_time_gets_its_cancelled_reminders_back():
    start = msk("2026-12-03 10:00")
    ledger = [
        job("confirmation", C, "2026-12-01T09:00:00Z", JobStatus.DELIVERED),
        job("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z", JobStatus.CANCELLED),
        job("reminder:PT2H@2026-12-03T07:00:00Z", R, "2026-12-03T05:00:00Z", JobStatus.CANCELLED),
        job("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-01T10:00:00Z", JobStatus.DELIVERED),
    ]
    for previous_state in (CANCELLED, NO_SHOW):
        diff = plan_jobs(Visit(start, previous_state), Visit(start), ledger, DEFAULT, msk("2026-12-01 14:00"))
        assert [k for k, *_ in adds(diff)] == ["reminder:P1D@2026-12-03T07:00:00Z",
                                               "reminder:PT2H@2026-12-03T07:00:00Z"]
        assert diff.cancel == ()


# ----------------------------------------------------------------------------------------------- cancellation

PENDING_LEDGER = [
    job("confirmation", C, "2026-12-01T09:00:00Z"),
    job("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z"),
    job("reminder:PT2H@2026-12-03T07:00:00Z", R, "2026-12-03T05:00:00Z"),
    job("reschedule@2026-12-03T07:00:00Z", RS, "2026-12-01T10:00:00Z"),
]
NOT_PENDING = [
    job("reminder:P1D@2026-12-04T07:00:00Z", R, "2026-12-03T07:00:00Z", JobStatus.SENDING),
    job("reminder:PT2H@2026-12-04T07:00:00Z", R, "2026-12-04T05:00:00Z", JobStatus.SKIPPED),
    job("reschedule@2026-12-04T07:00:00Z", RS, "2026-12-01T08:00:00Z", JobStatus.DELIVERED),
    job("results_ready", JobKind.RESULTS_READY, "2026-12-01T08:00:00Z"),  # not planning's to withdraw
]
PENDING_KEYS_BY_DUE = [
    "confirmation",
    "reschedule@2026-12-03T07:00:00Z",
    "reminder:P1D@2026-12-03T07:00:00Z",
    "reminder:PT2H@2026-12-03T07:00:00Z",
]


def withdrawn(reason: str) -> list[tuple[str, str]]:
    """Every pending job of PENDING_LEDGER cancelled for `reason`, none of NOT_PENDING."""
    return [(key, reason) for key in PENDING_KEYS_BY_DUE]


ENDINGS = [
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-01 14:00"),
        [("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-01T11:00:00Z", SCHEDULED)],
        "booking cancelled", id="cancelled ahead: notice now",
    ),
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-01 23:00"),
        [("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-02T06:00:00Z", SCHEDULED)],
        "booking cancelled", id="cancelled at night: notice at 09:00",
    ),
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-03 09:30"),
        [("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-03T06:30:00Z", SCHEDULED)],
        "booking cancelled", id="cancelled at 09:30 for 10:00: at once",
    ),
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-03 08:00"),
        [("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-03T06:00:00Z", SCHEDULED)],
        "booking cancelled", id="cancelled at 08:00 for 10:00: at 09:00, still before the visit",
    ),
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-03 11:00"), [], "booking cancelled",
        id="cancelled after the visit passed: no notice",
    ),
    pytest.param(
        ACTIVE, CANCELLED, DEFAULT, msk("2026-12-03 10:00"), [], "booking cancelled",
        id="cancelled as the visit starts: no notice",
    ),
    pytest.param(
        ACTIVE, CANCELLED, replace(DEFAULT, cancellation=False), msk("2026-12-01 14:00"), [],
        "booking cancelled", id="cancellation notices off",
    ),
    pytest.param(
        None, CANCELLED, DEFAULT, msk("2026-12-01 14:00"), [], "booking cancelled",
        id="first seen already cancelled: no notice",
    ),
    pytest.param(
        CANCELLED, CANCELLED, DEFAULT, msk("2026-12-01 14:00"), [], "booking cancelled",
        id="cancelled again: nothing new",
    ),
    pytest.param(
        NO_SHOW, CANCELLED, DEFAULT, msk("2026-12-01 14:00"), [], "booking cancelled",
        id="no-show then cancelled: no notice",
    ),
    pytest.param(
        ACTIVE, NO_SHOW, DEFAULT, msk("2026-12-03 11:00"), [], "patient did not come", id="no show",
    ),
    pytest.param(
        ACTIVE, NO_SHOW, DEFAULT, msk("2026-12-01 14:00"), [], "patient did not come",
        id="no show marked early: still no notice",
    ),
    pytest.param(
        ACTIVE, ATTENDED, DEFAULT, msk("2026-12-03 10:30"), [], "patient attended", id="attended",
    ),
]


@pytest.mark.parametrize(("before", "after", "policy", "now", "expected_adds", "reason"), ENDINGS)
def test_booking_ends(before, after, policy, now, expected_adds, reason):
    start = msk("2026-12-03 10:00")
    previous = None if before is None else Visit(start, before)
    diff = plan_jobs(previous, Visit(start, after), PENDING_LEDGER + NOT_PENDING, policy, now)
    assert adds(diff) == expected_adds
    assert cancels(diff) == withdrawn(reason)


def test_repeated_cancel_keeps_the_notice_waiting_for_the_morning():
    start = msk("2026-12-03 10:00")
    first = plan_jobs(Visit(start), Visit(start, CANCELLED), PENDING_LEDGER, DEFAULT, msk("2026-12-01 23:00"))
    ledger = apply(PENDING_LEDGER, first)
    notices = {(j.key, j.status) for j in ledger if j.kind is CN}
    assert notices == {("cancellation@2026-12-03T07:00:00Z", SCHEDULED)}  # waiting for 09:00
    cancelled = Visit(start, CANCELLED)
    again = plan_jobs(cancelled, cancelled, ledger, DEFAULT, msk("2026-12-01 23:30"))
    assert again == PlanDiff()


def test_attended_withdraws_a_waiting_cancellation_notice_too():
    start = msk("2026-12-03 10:00")
    ledger = [job("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-03T06:00:00Z")]
    diff = plan_jobs(Visit(start, CANCELLED), Visit(start, ATTENDED), ledger, DEFAULT,
                     msk("2026-12-03 10:30"))
    assert cancels(diff) == [("cancellation@2026-12-03T07:00:00Z", "patient attended")]


def test_cancelled_restored_and_cancelled_again_gets_a_new_notice():
    start, now = msk("2026-12-03 10:00"), msk("2026-12-01 14:00")
    ledger = [job("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-01T10:00:00Z", JobStatus.CANCELLED)]
    diff = plan_jobs(Visit(start), Visit(start, CANCELLED), ledger, DEFAULT, now)
    assert adds(diff) == [("cancellation@2026-12-03T07:00:00Z", CN, "2026-12-01T11:00:00Z", SCHEDULED)]


def test_cancelled_and_moved_in_one_event_keys_the_notice_on_the_new_start():
    diff = plan_jobs(Visit(msk("2026-12-03 10:00")), Visit(msk("2026-12-04 10:00"), CANCELLED), [], DEFAULT,
                     msk("2026-12-01 14:00"))
    assert [k for k, *_ in adds(diff)] == ["cancellation@2026-12-04T07:00:00Z"]


# ------------------------------------------------------------------------------------------- shape and guards


def test_cancellations_are_ordered_by_due_then_key_whatever_the_input_order():
    start = msk("2026-12-03 10:00")
    ledger = list(reversed(PENDING_LEDGER)) + [
        job("reminder:PT1H@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z"),  # same due as P1D: by key
    ]
    diff = plan_jobs(Visit(start), Visit(start, ATTENDED), ledger, DEFAULT, msk("2026-12-03 10:30"))
    assert [c.key for c in diff.cancel] == [
        "confirmation",
        "reschedule@2026-12-03T07:00:00Z",
        "reminder:P1D@2026-12-03T07:00:00Z",
        "reminder:PT1H@2026-12-03T07:00:00Z",
        "reminder:PT2H@2026-12-03T07:00:00Z",
    ]


def test_duplicate_pending_rows_are_cancelled_once():
    start = msk("2026-12-03 10:00")
    ledger = [job("reminder:P1D@2026-12-03T07:00:00Z", R, "2026-12-02T07:00:00Z")] * 2
    diff = plan_jobs(Visit(start), Visit(start, ATTENDED), ledger, DEFAULT, msk("2026-12-03 10:30"))
    assert cancels(diff) == [("reminder:P1D@2026-12-03T07:00:00Z", "patient attended")]


@pytest.mark.parametrize(
    ("start", "now"),
    [
        (datetime(2026, 12, 3, 10, 0), msk("2026-12-01 12:00")),
        (msk("2026-12-03 10:00"), datetime(2026, 12, 1, 12, 0)),
    ],
    ids=["naive start", "naive now"],
)
def test_naive_datetimes_are_refused(start, now):
    with pytest.raises(ValueError, match="aware"):
        plan_jobs(None, Visit(start), [], DEFAULT, now)


def test_plan_is_deterministic():
    args = (Visit(msk("2026-12-03 10:00")), Visit(msk("2026-12-03 15:00")), PENDING_LEDGER, DEFAULT,
            msk("2026-12-01 12:00"))
    assert plan_jobs(*args) == plan_jobs(*args)


@pytest.mark.parametrize("tz", [MSK, EKB])
@pytest.mark.parametrize("quiet", [QuietHours(time(21), time(9)), QuietHours(time(13), time(15)), None])
@pytest.mark.parametrize("lead_hours", [0.5, 1, 2, 3, 9, 11, 13, 23, 25, 30])
@pytest.mark.parametrize("start_hour", [0, 7, 8, 9, 10, 13, 14, 20, 21, 22])
def test_invariants(tz, quiet, lead_hours, start_hour):
    """Over a grid of bookings: nothing scheduled in the past or at/after the start, output ordered."""
    policy = Policy(timezone=tz, quiet_hours=quiet)
    start = datetime(2026, 12, 10, start_hour, tzinfo=ZoneInfo(tz))
    now = start - timedelta(hours=lead_hours)
    diff = plan_jobs(Visit(start - timedelta(days=1)), Visit(start), [], policy, now)
    for planned in diff.add:
        assert planned.due_at < start
        if planned.status is SCHEDULED:
            assert planned.due_at >= now
        else:
            assert planned.kind is R and planned.note
    assert [(j.due_at, j.key) for j in diff.add] == sorted((j.due_at, j.key) for j in diff.add)
    assert {j.kind for j in diff.add} >= {RS}
