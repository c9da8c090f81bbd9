"""What the worker does with a due job: send it on a step, finish it, or defer it (connector.core.preparation).

Table-driven, fixed datetimes, never the real clock; the warm-up caps are real Allowance counters.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from connector.core.cascade import Step
from connector.core.model import BookingState, JobKind, JobStatus, QuietHours
from connector.core.preparation import (
    UNUSABLE_RETRY,
    Await,
    Broken,
    Defer,
    DueJob,
    Finish,
    Reach,
    SendOn,
    Unusable,
    prepare,
)
from connector.core.warmup import Allowance

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
MIN = timedelta(minutes=1)
STEPS = (
    Step("max", "wahelp", timedelta(minutes=10)),
    Step("telegram", "telegram_bot", timedelta(minutes=10)),
    Step("whatsapp", "wahelp", timedelta(minutes=30)),
    Step("sms", "smsru", timedelta(hours=1)),
)
TOMORROW_9 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, when the sending hours open
CAP_WHY = "wahelp has sent its warm-up cap of 5 today; waits until 2026-12-03T09:00:00+03:00"  # the clinic's time

REMINDER = DueJob(kind=JobKind.REMINDER, has_booking=True, booking_state=BookingState.ACTIVE,
                  visit_start=NOW + timedelta(days=2), planned_patient=12, booking_patient=12, start_step=0)
VISIT_TODAY = replace(REMINDER, visit_start=NOW + timedelta(hours=5))
RESULTS = DueJob(kind=JobKind.RESULTS_READY, has_booking=False, booking_state=None, visit_start=None,
                 planned_patient=12, booking_patient=None, start_step=0)
ANYONE = Reach()


def spent(provider: str = "wahelp") -> dict[str, Allowance]:
    """A warming-up account with nothing left today; tomorrow's sending hours 09:00-21:00 in Moscow."""
    cap = Allowance.for_day(start=5, growth=1.0, since=date(2026, 11, 1), ceiling=None, used=5, now=NOW,
                            tz="Europe/Moscow", quiet=QuietHours(time(21), time(9)))
    return {provider: cap}


def fresh(left: int = 3, provider: str = "wahelp") -> dict[str, Allowance]:
    cap = Allowance.for_day(start=left, growth=1.0, since=date(2026, 11, 1), ceiling=None, used=0, now=NOW,
                            tz="Europe/Moscow", quiet=QuietHours(time(21), time(9)))
    return {provider: cap}


BROKEN = {"wahelp": Unusable("providers.wahelp.warmup.since: not a date: 'yesterday'")}
WARMUP_WHY = "the warm-up settings of wahelp cannot be used: providers.wahelp.warmup.since: not a date: 'yesterday'"

CASES = [
    # --- the plain send: the first step, the patient unchanged
    ("sends on the first step", REMINDER, STEPS, ANYONE, {}, SendOn(0, patient=12)),
    ("results go to their own patient", RESULTS, STEPS, ANYONE, {}, SendOn(0, patient=12)),
    ("a fall back goes on where the cascade stands", replace(REMINDER, start_step=2), STEPS, ANYONE, {},
     SendOn(2, patient=12)),
    # --- the tenant, the booking, the visit
    ("tenant gone", REMINDER, None, ANYONE, {},
     Finish(JobStatus.FAILED, "the tenant is no longer configured", patient=12)),
    ("cancelled booking", replace(REMINDER, booking_state=BookingState.CANCELLED), STEPS, ANYONE, {},
     Finish(JobStatus.CANCELLED, "booking is cancelled", patient=12)),
    ("the cancellation notice of a cancelled booking still goes",
     replace(REMINDER, kind=JobKind.CANCELLATION, booking_state=BookingState.CANCELLED), STEPS, ANYONE, {},
     SendOn(0, patient=12)),
    ("withdrawn: the visit has started", replace(REMINDER, visit_start=NOW - MIN), STEPS, ANYONE, {},
     Finish(JobStatus.EXPIRED, "the visit has started; not sent late", patient=12)),
    ("withdrawn before the recipient is followed", replace(REMINDER, visit_start=NOW, booking_patient=15), STEPS,
     ANYONE, {}, Finish(JobStatus.EXPIRED, "the visit has started; not sent late", patient=12)),
    # --- whom it goes to
    ("the booking's patient now", replace(REMINDER, booking_patient=15), STEPS, ANYONE, {},
     SendOn(0, patient=15, recipient_change="recipient changed: patient #12 → patient #15")),
    ("client taken off the visit", replace(REMINDER, booking_patient=None), STEPS, None, {},
     Finish(JobStatus.SKIPPED, "no phone number for the patient", patient=None,
            recipient_change="recipient changed: patient #12 → no patient")),
    ("an account of the tenant cannot be built", replace(REMINDER, booking_patient=15), STEPS,
     Broken("providers.wahelp: no token"), {},
     Finish(JobStatus.FAILED, "could not be prepared: providers.wahelp: no token", patient=15,
            recipient_change="recipient changed: patient #12 → patient #15")),
    # --- a send a dead worker lost: never the same channel twice
    ("lost send", replace(REMINDER, lost_steps=(0,)), STEPS, ANYONE, {}, SendOn(1, patient=12, lost=True)),
    ("lost sends, the latest counts", replace(REMINDER, start_step=1, lost_steps=(1, 0)), STEPS, ANYONE, {},
     SendOn(2, patient=12, lost=True)),
    # the last step's default is on_unknown=wait: it may have reached the patient, so no «failed», no resend
    ("lost send on the last step awaits its receipts", replace(REMINDER, start_step=3, lost_steps=(3,)), STEPS,
     ANYONE, {}, Await(3, patient=12, lost=True)),
    ("on_unknown=wait on an earlier step", replace(REMINDER, lost_steps=(0,)),
     (replace(STEPS[0], on_unknown="wait"), *STEPS[1:]), ANYONE, {}, Await(0, patient=12, lost=True)),
    ("on_unknown=next on the last step moves on: nothing left", replace(REMINDER, start_step=3, lost_steps=(3,)),
     (*STEPS[:3], replace(STEPS[3], on_unknown="next")), ANYONE, {},
     Finish(JobStatus.FAILED, "no channel left to try", patient=12, lost=True)),
    ("on_unknown=resend sends once more on the same step", replace(REMINDER, lost_steps=(0,)),
     (replace(STEPS[0], on_unknown="resend"), *STEPS[1:]), ANYONE, {}, SendOn(0, patient=12, lost=True)),
    ("on_unknown=resend only once", replace(REMINDER, lost_steps=(0,), unknown_before=(0,)),
     (replace(STEPS[0], on_unknown="resend"), *STEPS[1:]), ANYONE, {}, SendOn(1, patient=12, lost=True)),
    # --- whom the patient can be reached through
    ("opted out and not registered", REMINDER, STEPS, Reach(opted_out=frozenset({"max"}),
                                                            not_registered=frozenset({"telegram"})), {},
     SendOn(2, patient=12, skipped=((0, "patient opted out of max"),
                                    (1, "patient is not on telegram (remembered)")))),
    ("a bot the patient never opened", REMINDER, STEPS, Reach(unaddressable=frozenset({0, 1})), {},
     SendOn(2, patient=12, skipped=((0, "provider wahelp has no address for the patient"),
                                    (1, "provider telegram_bot has no address for the patient")))),
    ("every step skipped", REMINDER, STEPS, Reach(opted_out=frozenset({"max", "telegram", "whatsapp", "sms"})), {},
     Finish(JobStatus.FAILED, "no channel left to try", patient=12,
            skipped=tuple((i, f"patient opted out of {s.channel}") for i, s in enumerate(STEPS)))),
    ("no step at all", REMINDER, (), ANYONE, {}, Finish(JobStatus.FAILED, "no channel left to try", patient=12)),
    # --- the warm-up caps
    ("within the cap", REMINDER, STEPS, ANYONE, fresh(), SendOn(0, patient=12)),
    ("a cap on another provider", REMINDER, STEPS, ANYONE, spent("smsru"), SendOn(0, patient=12)),
    ("deferred by a cap", REMINDER, STEPS, ANYONE, spent(),
     Defer(0, TOMORROW_9, CAP_WHY, patient=12)),
    ("results deferred by a cap (no visit to come first)", RESULTS, STEPS, ANYONE, spent(),
     Defer(0, TOMORROW_9, CAP_WHY, patient=12)),
    ("skipped by a cap: the visit comes first", VISIT_TODAY, STEPS, ANYONE, spent(),
     SendOn(1, patient=12, skipped=((0, "warm-up cap of wahelp reached and the visit comes first"),))),
    ("skipped by a cap twice, then a skip by reach", VISIT_TODAY, STEPS, Reach(opted_out=frozenset({"telegram"})),
     spent(), SendOn(3, patient=12, skipped=((0, "warm-up cap of wahelp reached and the visit comes first"),
                                             (1, "patient opted out of telegram"),
                                             (2, "warm-up cap of wahelp reached and the visit comes first")))),
    # --- an account whose warm-up settings broke at run time holds its own jobs, and only those
    ("unusable account", REMINDER, STEPS, ANYONE, BROKEN,
     Defer(0, NOW + UNUSABLE_RETRY, f"{WARMUP_WHY}; waits until {(NOW + UNUSABLE_RETRY).isoformat()}",
           patient=12)),
    ("unusable account: the visit comes first", replace(REMINDER, visit_start=NOW + 10 * MIN), STEPS, ANYONE,
     BROKEN, SendOn(1, patient=12, skipped=((0, f"{WARMUP_WHY} and the visit comes first"),))),
    ("unusable account of another provider", REMINDER, (STEPS[1],), ANYONE, BROKEN, SendOn(0, patient=12)),
]


@pytest.mark.parametrize(("job", "steps", "reach", "caps", "expected"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_prepare(job, steps, reach, caps, expected):
    assert prepare(job, steps, reach, caps, NOW) == expected


def test_the_caps_are_consumed_job_after_job_in_one_pass():
    caps = fresh(left=2)
    outcomes = [prepare(REMINDER, STEPS, ANYONE, caps, NOW) for _ in range(4)]
    assert [type(o).__name__ for o in outcomes] == ["SendOn", "SendOn", "Defer", "Defer"]
    # what waits is spaced over tomorrow's sending hours (12 h for a cap of 2), not crowded into one slot
    assert [o.until for o in outcomes if isinstance(o, Defer)] == [TOMORROW_9, TOMORROW_9 + timedelta(hours=6)]


def test_a_job_that_skips_a_capped_step_does_not_use_its_cap():
    caps = spent()
    prepare(VISIT_TODAY, STEPS, ANYONE, caps, NOW)
    assert (caps["wahelp"].left, caps["wahelp"].waiting) == (0, 1)
