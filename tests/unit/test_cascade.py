"""The cascade state machine: merges, step choice, the job after a send / report / timeout, and its arithmetic.

Table-driven, fixed datetimes, never the real clock. The sandbox scenarios at the end are played as pure
sequences of calls, the way the worker strings them together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core import cascade
from connector.core.cascade import (
    Decision,
    Step,
    after_report,
    after_send,
    choose_step,
    merge_status,
    must_expire,
    on_timeout,
)
from connector.core.model import AttemptStatus, BookingState, JobKind, JobStatus

A = AttemptStatus
J = JobStatus
Q, SENT, DLV, READ = A.QUEUED, A.SENT, A.DELIVERED, A.READ
FAIL, NREG, REJ, EXP, WDR = A.FAILED, A.NOT_REGISTERED, A.REJECTED, A.EXPIRED, A.WITHDRAWN
FAILURES = (FAIL, NREG, REJ, EXP, WDR)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

MAX = Step("max", "sandbox", timedelta(minutes=10))
TG = Step("telegram", "sandbox", timedelta(minutes=10))
WA = Step("whatsapp", "sandbox", timedelta(minutes=30))
SMS = Step("sms", "smsru", timedelta(hours=1))
STEPS = (MAX, TG, WA, SMS)
DAYS3 = timedelta(days=3)
SMS_3D = Step("sms", "smsru", timedelta(hours=1), status_window=DAYS3)  # SMS.ru can report for three days

MAX_READ = Step("max", "max_bot", timedelta(minutes=10), until="read")
TG_BOT = Step("telegram", "telegram_bot", timedelta(minutes=10), sent_is_final=True)


def test_public_names_are_exactly_the_agreed_ones():
    # The worker is written against these; anything else public would be an unannounced contract.
    assert sorted(cascade.__all__) == sorted([
        "Step", "Decision", "merge_status", "choose_step", "after_send", "after_report", "on_timeout",
        "must_expire", "withdrawal",
    ])


def test_step_defaults_and_validation():
    assert (MAX.until, MAX.sent_is_final, MAX.status_window) == ("delivered", False, timedelta(0))
    # accounts.py builds steps positionally: channel, provider, timeout, until, sent_is_final, status_window
    assert Step("sms", "smsc", MIN, "read", True, DAYS3) == Step("sms", "smsc", MIN, until="read",
                                                                sent_is_final=True, status_window=DAYS3)
    with pytest.raises(ValueError, match="until"):
        Step("max", "sandbox", MIN, until="seen")
    with pytest.raises(ValueError, match="timeout"):
        Step("max", "sandbox", -MIN)
    with pytest.raises(ValueError, match="status window"):
        Step("max", "sandbox", MIN, status_window=-MIN)
    with pytest.raises(ValueError, match="on_unknown"):
        Step("max", "sandbox", MIN, on_unknown="retry")


# --- merge_status ------------------------------------------------------------------------------------------

MERGES = [
    # success climbs, never descends
    (Q, Q, Q), (Q, SENT, SENT), (Q, DLV, DLV), (Q, READ, READ),
    (SENT, Q, SENT), (SENT, SENT, SENT), (SENT, DLV, DLV), (SENT, READ, READ),
    (DLV, Q, DLV), (DLV, SENT, DLV), (DLV, DLV, DLV), (DLV, READ, READ),
    (READ, Q, READ), (READ, SENT, READ), (READ, DLV, READ), (READ, READ, READ),
    # a failure replaces what is still pending
    *[(pending, f, f) for pending in (Q, SENT) for f in FAILURES],
    # ... but never a receipt: the patient has it
    *[(ok, f, ok) for ok in (DLV, READ) for f in FAILURES],
    # our sent-timeout expiry is upgraded by a late receipt, and only by a receipt
    (EXP, DLV, DLV), (EXP, READ, READ), (EXP, Q, EXP), (EXP, SENT, EXP),
    # a provider's failure is final, even against a receipt; so is a withdrawal (nothing went out)
    *[(f, ok, f) for f in (FAIL, NREG, REJ, WDR) for ok in (Q, SENT, DLV, READ)],
    # the first failure sticks
    *[(first, second, first) for first in FAILURES for second in FAILURES],
]


@pytest.mark.parametrize(("current", "incoming", "expected"), MERGES)
def test_merge_status(current, incoming, expected):
    assert merge_status(current, incoming) is expected


def test_merge_table_covers_every_pair():
    assert {(c, i) for c, i, _ in MERGES} == {(c, i) for c in A for i in A}


@pytest.mark.parametrize("reports", [
    (SENT, DLV, SENT, READ, FAIL, Q),
    (Q, READ, DLV, SENT),
    (SENT, EXP, SENT, DLV, READ, NREG),
])
def test_merge_is_monotonic_over_any_sequence(reports):
    # Success never goes down the ladder once reached, whatever arrives after.
    rank = {Q: 0, SENT: 1, DLV: 2, READ: 3}
    status = Q
    for report in reports:
        merged = merge_status(status, report)
        if status in rank and merged in rank:
            assert rank[merged] >= rank[status]
        if status in (DLV, READ):
            assert merged in (DLV, READ)
        status = merged
    assert status is READ


# --- choose_step -------------------------------------------------------------------------------------------

NONE: frozenset = frozenset()

CHOICES = [
    # (id, start, opted_out, not_registered, unaddressable, chosen, skipped)
    ("first usable", 0, NONE, NONE, NONE, 0, []),
    ("from start", 2, NONE, NONE, NONE, 2, []),
    ("opted out", 0, {"max"}, NONE, NONE, 1, [(0, "patient opted out of max")]),
    ("not registered remembered", 0, NONE, {"max", "telegram"}, NONE, 2,
     [(0, "patient is not on max (remembered)"), (1, "patient is not on telegram (remembered)")]),
    ("unaddressable by index", 0, NONE, NONE, {0}, 1, [(0, "provider sandbox has no address for the patient")]),
    ("mixed reasons", 0, {"whatsapp"}, {"telegram"}, {0}, 3,
     [(0, "provider sandbox has no address for the patient"), (1, "patient is not on telegram (remembered)"),
      (2, "patient opted out of whatsapp")]),
    ("opt-out named before not-registered", 0, {"max"}, {"max"}, {0}, 1, [(0, "patient opted out of max")]),
    ("not-registered named before unaddressable", 1, NONE, {"telegram"}, {1}, 2,
     [(1, "patient is not on telegram (remembered)")]),
    ("skips only from start on", 1, {"max"}, NONE, NONE, 1, []),
    ("nothing left", 2, {"sms"}, {"whatsapp"}, NONE, None,
     [(2, "patient is not on whatsapp (remembered)"), (3, "patient opted out of sms")]),
    ("start past the end", 4, NONE, NONE, NONE, None, []),
]


@pytest.mark.parametrize(("start", "opted_out", "not_registered", "unaddressable", "chosen", "skipped"),
                         [case[1:] for case in CHOICES], ids=[case[0] for case in CHOICES])
def test_choose_step(start, opted_out, not_registered, unaddressable, chosen, skipped):
    assert choose_step(STEPS, start, opted_out=frozenset(opted_out), not_registered=frozenset(not_registered),
                       unaddressable=frozenset(unaddressable)) == (chosen, skipped)


def test_choose_step_names_the_provider_of_the_step():
    steps = (Step("max", "max_bot", MIN), Step("max", "wahelp", MIN))
    assert choose_step(steps, 0, opted_out=NONE, not_registered=NONE, unaddressable=frozenset({0})) == (
        1, [(0, "provider max_bot has no address for the patient")])


def test_choose_step_refuses_a_negative_start():
    with pytest.raises(ValueError):
        choose_step(STEPS, -1, opted_out=NONE, not_registered=NONE, unaddressable=NONE)


# --- after_send --------------------------------------------------------------------------------------------

SENDS = [
    # (id, step list, index, status, job status, next_step, deadline, note fragment)
    ("sent waits", STEPS, 0, SENT, J.AWAITING_DELIVERY, None, NOW + 10 * MIN, "max via sandbox: sent"),
    ("queued waits", STEPS, 2, Q, J.AWAITING_DELIVERY, None, NOW + 30 * MIN, "whatsapp via sandbox: queued"),
    ("sent is final", (TG_BOT, WA), 0, SENT, J.DELIVERED, None, None, "no receipts, so a send counts as final"),
    ("queued is not a send, even where sent is final", (TG_BOT, WA), 0, Q, J.AWAITING_DELIVERY, None,
     NOW + 10 * MIN, "queued"),
    ("delivered at once", STEPS, 3, DLV, J.DELIVERED, None, None, "sms via smsru: delivered"),
    ("delivered, step wants read", (MAX_READ, TG), 0, DLV, J.AWAITING_DELIVERY, None, NOW + 10 * MIN,
     "waits until read"),
    ("read at once", STEPS, 1, READ, J.READ, None, None, "telegram via sandbox: read"),
    ("read on a read step", (MAX_READ, TG), 0, READ, J.READ, None, None, "read"),
    *[(f"{f} falls back", STEPS, 0, f, J.SCHEDULED, 1, None, f"max via sandbox: {f}; falling back to step 2 "
       "(telegram)") for f in FAILURES],
    *[(f"{f} on the last step fails", STEPS, 3, f, J.FAILED, None, None, f"sms via smsru: {f}; no channel left")
      for f in FAILURES],
    ("fall back goes to the next index, not past skips", STEPS, 1, NREG, J.SCHEDULED, 2, None, "step 3 (whatsapp)"),
]


@pytest.mark.parametrize(("steps", "index", "status", "job", "next_step", "deadline", "note"),
                         [case[1:] for case in SENDS], ids=[case[0] for case in SENDS])
def test_after_send(steps, index, status, job, next_step, deadline, note):
    decision = after_send(steps, index, status, NOW)
    assert (decision.job_status, decision.next_step, decision.deadline) == (job, next_step, deadline)
    assert note in decision.note


@pytest.mark.parametrize("index", [-1, 4, 9])
def test_after_send_refuses_a_step_outside_the_cascade(index):
    # -1 must not quietly mean "the last step".
    with pytest.raises(IndexError):
        after_send(STEPS, index, SENT, NOW)


# --- after_report ------------------------------------------------------------------------------------------

D = Decision
ACTIVE = (J.SCHEDULED, J.SENDING, J.AWAITING_DELIVERY, J.FAILED, J.UNCONFIRMED)

REPORTS = [
    # (id, steps, job, current, attempt, status, expected: None or (job status, next_step, note fragment))
    # --- the current step while awaiting
    ("current delivered", STEPS, J.AWAITING_DELIVERY, 1, 1, DLV, (J.DELIVERED, None, "telegram via sandbox: "
                                                                  "delivered")),
    ("current read", STEPS, J.AWAITING_DELIVERY, 1, 1, READ, (J.READ, None, "telegram via sandbox: read")),
    ("current sent", STEPS, J.AWAITING_DELIVERY, 1, 1, SENT, None),
    ("current queued", STEPS, J.AWAITING_DELIVERY, 1, 1, Q, None),
    ("current delivered, step wants read", (MAX_READ, TG), J.AWAITING_DELIVERY, 0, 0, DLV, None),
    ("current read, step wants read", (MAX_READ, TG), J.AWAITING_DELIVERY, 0, 0, READ, (J.READ, None, "read")),
    *[(f"current {f} falls back", STEPS, J.AWAITING_DELIVERY, 1, 1, f,
       (J.SCHEDULED, 2, f"telegram via sandbox: {f}; falling back to step 3 (whatsapp)")) for f in FAILURES],
    *[(f"current {f} on the last step", STEPS, J.AWAITING_DELIVERY, 3, 3, f,
       (J.FAILED, None, "no channel left")) for f in FAILURES],
    # --- a late receipt from an earlier step concludes the job in any active state
    *[(f"late delivered while {job}", STEPS, job, 1, 0, DLV,
       (J.DELIVERED, None, "late receipt from step 1 (max): delivered")) for job in ACTIVE],
    *[(f"late read while {job}", STEPS, job, 2, 0, READ,
       (J.READ, None, "late receipt from step 1 (max): read")) for job in ACTIVE],
    ("late delivered withdraws the pending fall back", STEPS, J.SCHEDULED, 1, 0, DLV,
     (J.DELIVERED, None, "pending fall back is withdrawn")),
    ("late delivered after every channel failed", STEPS, J.FAILED, 3, 0, DLV, (J.DELIVERED, None, "receipt wins")),
    # ... but not a late failure, nor a late sent: we already moved on from that step
    *[(f"late {f}", STEPS, J.AWAITING_DELIVERY, 2, 0, f, None) for f in (*FAILURES, Q, SENT)],
    *[(f"late {f} while scheduled", STEPS, J.SCHEDULED, 2, 1, f, None) for f in FAILURES],
    # a late delivered from a step that wanted read does not stop the cascade it sent on...
    ("late delivered from a read step", (MAX_READ, TG), J.AWAITING_DELIVERY, 1, 0, DLV, None),
    ("late delivered from a read step, scheduled", (MAX_READ, TG), J.SCHEDULED, 1, 0, DLV, None),
    # ... but its read does, and a failed job is told the truth either way
    ("late read from a read step", (MAX_READ, TG), J.AWAITING_DELIVERY, 1, 0, READ, (J.READ, None, "read")),
    ("late delivered from a read step, job failed", (MAX_READ, TG), J.FAILED, 1, 0, DLV,
     (J.DELIVERED, None, "late receipt from step 1 (max): delivered")),
    # --- a delivered job only improves to read, from any attempt
    ("delivered job, current read", STEPS, J.DELIVERED, 1, 1, READ, (J.READ, None, "telegram via sandbox: read")),
    ("delivered job, earlier read", STEPS, J.DELIVERED, 1, 0, READ, (J.READ, None, "late receipt from step 1")),
    *[(f"delivered job, {s}", STEPS, J.DELIVERED, 1, a, s, None)
      for s in (Q, SENT, DLV, *FAILURES) for a in (0, 1)],
    # --- settled jobs do not move
    *[(f"{job} job, {s}", STEPS, job, 1, a, s, None)
      for job in (J.READ, J.CANCELLED, J.EXPIRED, J.SKIPPED) for s in (DLV, READ, FAIL) for a in (0, 1)],
    # --- an unconfirmed job (sent, never confirmed): any receipt upgrades it, from any step; nothing else moves it
    ("unconfirmed job, current delivered", STEPS, J.UNCONFIRMED, 3, 3, DLV,
     (J.DELIVERED, None, "sms via smsru: delivered; the job was unconfirmed, the receipt confirms it")),
    ("unconfirmed job, current read", STEPS, J.UNCONFIRMED, 3, 3, READ, (J.READ, None, "sms via smsru: read")),
    ("unconfirmed job, earlier delivered", STEPS, J.UNCONFIRMED, 3, 1, DLV,
     (J.DELIVERED, None, "late receipt from step 2 (telegram): delivered")),
    ("unconfirmed job, delivered on a read step", (TG, MAX_READ), J.UNCONFIRMED, 1, 1, DLV,
     (J.DELIVERED, None, "max via max_bot: delivered")),
    *[(f"unconfirmed job, current {s}", STEPS, J.UNCONFIRMED, 3, 3, s, None) for s in (Q, SENT, *FAILURES)],
    # --- a failed job: the current step's receipt wins too, its failures change nothing
    ("failed job, current delivered", STEPS, J.FAILED, 3, 3, DLV, (J.DELIVERED, None, "receipt wins")),
    ("failed job, current read", STEPS, J.FAILED, 3, 3, READ, (J.READ, None, "sms via smsru: read")),
    *[(f"failed job, current {s}", STEPS, J.FAILED, 3, 3, s, None) for s in (Q, SENT, *FAILURES)],
    # --- scheduled or sending on the current step: a receipt concludes, anything else waits for the worker
    ("scheduled, current delivered", STEPS, J.SCHEDULED, 0, 0, DLV, (J.DELIVERED, None, "withdrawn")),
    ("sending, current delivered", STEPS, J.SENDING, 0, 0, DLV, (J.DELIVERED, None, "send in flight")),
    *[(f"{job}, current {s}", STEPS, job, 0, 0, s, None)
      for job in (J.SCHEDULED, J.SENDING) for s in (Q, SENT, *FAILURES)],
    # --- a report for a step not tried yet, or gone from the cascade, is not acted on
    ("attempt after current", STEPS, J.AWAITING_DELIVERY, 1, 2, DLV, None),
    ("attempt outside the cascade", (MAX, TG), J.FAILED, 5, 4, DLV, None),
    ("negative attempt", STEPS, J.AWAITING_DELIVERY, 1, -1, DLV, None),
]


@pytest.mark.parametrize(("steps", "job", "current", "attempt", "status", "expected"),
                         [case[1:] for case in REPORTS], ids=[case[0] for case in REPORTS])
def test_after_report(steps, job, current, attempt, status, expected):
    decision = after_report(steps, job_status=job, current_index=current, attempt_index=attempt, status=status,
                            now=NOW)
    if expected is None:
        assert decision is None
        return
    job_status, next_step, note = expected
    assert (decision.job_status, decision.next_step, decision.deadline) == (job_status, next_step, None)
    assert note in decision.note


def test_after_report_never_restarts_the_cascade():
    # Whatever arrives, a report never schedules a step at or before the one it concerns.
    for job in J:
        for status in A:
            for current in range(len(STEPS)):
                for attempt in range(current + 1):
                    decision = after_report(STEPS, job_status=job, current_index=current, attempt_index=attempt,
                                            status=status, now=NOW)
                    if decision is not None and decision.job_status is J.SCHEDULED:
                        assert decision.next_step == current + 1
                        assert attempt == current and job is J.AWAITING_DELIVERY


# --- on_timeout --------------------------------------------------------------------------------------------

TIMEOUTS = [
    # (id, steps, index, attempt status, job status, next_step, note fragment)
    ("still sent", STEPS, 0, SENT, J.SCHEDULED, 1, "max via sandbox: sent_timeout, still sent after 0:10:00; "
     "falling back to step 2 (telegram)"),
    ("still queued", STEPS, 1, Q, J.SCHEDULED, 2, "sent_timeout, still queued"),
    # sent but never confirmed is not failed: with no status window left, the job ends unconfirmed
    ("still sent on the last step", STEPS, 3, SENT, J.UNCONFIRMED, None, "sent_timeout, still sent after 1:00:00; "
     "no channel left, never confirmed"),
    ("still queued on the last step", STEPS, 3, Q, J.UNCONFIRMED, None, "still queued"),
    ("delivered, not read", (MAX_READ, TG), 0, DLV, J.SCHEDULED, 1, "delivered but not read in time"),
    ("delivered, not read, last step", (TG, MAX_READ), 1, DLV, J.FAILED, None, "not read in time"),
    # defensive: the job should not be awaiting any more
    *[(f"{f} not acted on", STEPS, 1, f, J.SCHEDULED, 2, f"telegram via sandbox: {f} at the deadline")
      for f in FAILURES],
    ("failure not acted on, last step", STEPS, 3, FAIL, J.FAILED, None, "no channel left"),
    ("delivered on record", STEPS, 0, DLV, J.DELIVERED, None, "delivered (recorded before the deadline)"),
    ("read on record", (MAX_READ, TG), 0, READ, J.READ, None, "read (recorded before the deadline)"),
]


@pytest.mark.parametrize(("steps", "index", "attempt", "job", "next_step", "note"),
                         [case[1:] for case in TIMEOUTS], ids=[case[0] for case in TIMEOUTS])
def test_on_timeout(steps, index, attempt, job, next_step, note):
    decision = on_timeout(steps, index, attempt, NOW)
    assert (decision.job_status, decision.next_step, decision.deadline) == (job, next_step, None)
    assert note in decision.note


def test_on_timeout_never_sends_twice_on_the_same_step():
    for steps in (STEPS, (MAX, TG, WA, SMS_3D)):
        for index in range(len(steps)):
            for status in A:
                decision = on_timeout(steps, index, status, NOW, sent_at=NOW - steps[index].timeout)
                assert decision.next_step is None or decision.next_step > index
                # only the last step, still pending, waits on (for a receipt within the provider's window)
                waits = index == len(steps) - 1 and status in (Q, SENT) and steps[index].status_window > MIN
                assert (decision.job_status is J.AWAITING_DELIVERY) is waits


LAST_STEP = [
    # (id, sent before now, attempt, job, deadline after now, note): the last step, SMS.ru, a three-day window
    ("at the step's deadline: waits for the window", timedelta(hours=1), SENT, J.AWAITING_DELIVERY,
     DAYS3 - timedelta(hours=1), "sms via smsru: sent_timeout, still sent after 1:00:00; no channel left; "
     "waiting for a receipt until 2026-12-05T08:00:00+00:00"),
    ("queued is no different", timedelta(hours=1), Q, J.AWAITING_DELIVERY, DAYS3 - timedelta(hours=1),
     "still queued"),
    ("at the window's end: unconfirmed", DAYS3, SENT, J.UNCONFIRMED, None,
     "sms via smsru: still sent, no receipt within the provider's status window (3 days, 0:00:00); "
     "no channel left, never confirmed"),
    ("past the window's end", DAYS3 + MIN, Q, J.UNCONFIRMED, None, "never confirmed"),
    ("a failure is still a failure", timedelta(hours=1), FAIL, J.FAILED, None, "no channel left"),
    ("delivered on record", DAYS3, DLV, J.DELIVERED, None, "delivered (recorded before the deadline)"),
]


@pytest.mark.parametrize(("sent_before", "attempt", "job", "deadline", "note"), [c[1:] for c in LAST_STEP],
                         ids=[c[0] for c in LAST_STEP])
def test_on_timeout_of_the_last_step_waits_for_the_status_window(sent_before, attempt, job, deadline, note):
    decision = on_timeout((MAX, SMS_3D), 1, attempt, NOW, sent_at=NOW - sent_before)
    assert (decision.job_status, decision.next_step) == (job, None)
    assert decision.deadline == (None if deadline is None else NOW + deadline)
    assert note in decision.note


UNKNOWN_TIMEOUTS = [
    # (id, the first step's on_unknown, the attempt's outcome was unknown, job, next step)
    ("wait, unknown: never another channel", "wait", True, J.AWAITING_DELIVERY, None),
    ("wait, plainly sent: falls back as ever", "wait", False, J.SCHEDULED, 1),
    ("next, unknown: a timed-out step", "next", True, J.SCHEDULED, 1),
    ("default, unknown: next", None, True, J.SCHEDULED, 1),
    ("resend, unknown (its one resend lost too): next", "resend", True, J.SCHEDULED, 1),
]


@pytest.mark.parametrize(("policy", "unknown", "job", "next_step"), [c[1:] for c in UNKNOWN_TIMEOUTS],
                         ids=[c[0] for c in UNKNOWN_TIMEOUTS])
def test_on_timeout_of_a_step_whose_outcome_is_unknown(policy, unknown, job, next_step):
    first = Step("sms", "smsc", timedelta(hours=1), status_window=DAYS3, on_unknown=policy)
    decision = on_timeout((first, MAX), 0, SENT, NOW, sent_at=NOW - timedelta(hours=1), unknown=unknown)
    assert (decision.job_status, decision.next_step) == (job, next_step)
    if job is J.AWAITING_DELIVERY:  # waits out the provider's window, like a last step, then unconfirmed
        assert decision.deadline == NOW - timedelta(hours=1) + DAYS3
        later = on_timeout((first, MAX), 0, SENT, NOW + DAYS3, sent_at=NOW - timedelta(hours=1), unknown=True)
        assert later.job_status is J.UNCONFIRMED


def test_on_timeout_of_an_earlier_step_falls_back_whatever_its_window():
    decision = on_timeout((SMS_3D, MAX), 0, SENT, NOW, sent_at=NOW - timedelta(hours=1))
    assert (decision.job_status, decision.next_step) == (J.SCHEDULED, 1)


# --- must_expire -------------------------------------------------------------------------------------------

VISIT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
VISIT_KINDS = (JobKind.CONFIRMATION, JobKind.REMINDER, JobKind.RESCHEDULE, JobKind.CANCELLATION)

EXPIRIES = [
    *[(kind, VISIT, VISIT - MIN, False) for kind in VISIT_KINDS],
    *[(kind, VISIT, VISIT, True) for kind in VISIT_KINDS],  # at the start is too late: the visit has started
    *[(kind, VISIT, VISIT + MIN, True) for kind in VISIT_KINDS],
    *[(kind, None, VISIT, False) for kind in VISIT_KINDS],
    *[(kind, VISIT, VISIT + timedelta(days=30), False) for kind in (JobKind.RESULTS_READY, JobKind.RECALL)],
    *[(kind, None, VISIT, False) for kind in (JobKind.RESULTS_READY, JobKind.RECALL)],
]


@pytest.mark.parametrize(("kind", "visit_start", "now", "expected"), EXPIRIES)
def test_must_expire(kind, visit_start, now, expected):
    assert must_expire(kind, visit_start, now) is expected


def test_must_expire_compares_instants_across_zones():
    from zoneinfo import ZoneInfo

    visit = datetime(2026, 12, 3, 13, 0, tzinfo=ZoneInfo("Europe/Moscow"))  # 10:00 UTC
    assert must_expire(JobKind.REMINDER, visit, VISIT) is True
    assert must_expire(JobKind.REMINDER, visit, VISIT - MIN) is False


# --- sandbox scenarios, as the worker strings the calls together -------------------------------------------

NO_SKIPS = {"opted_out": NONE, "not_registered": NONE, "unaddressable": NONE}


def test_scenario_a_max_delivered():
    index, skipped = choose_step(STEPS, 0, **NO_SKIPS)
    assert (index, skipped) == (0, [])
    waiting = after_send(STEPS, 0, SENT, NOW)
    assert waiting == D(J.AWAITING_DELIVERY, deadline=NOW + 10 * MIN, note=waiting.note)
    attempt = merge_status(SENT, DLV)
    done = after_report(STEPS, job_status=waiting.job_status, current_index=0, attempt_index=0, status=attempt,
                        now=NOW + MIN)
    assert (done.job_status, attempt) == (J.DELIVERED, DLV)


def test_scenario_a_then_read():
    # sandbox digit 1: delivered, then read a little later
    done = after_report(STEPS, job_status=J.AWAITING_DELIVERY, current_index=0, attempt_index=0,
                        status=merge_status(SENT, DLV), now=NOW + MIN)
    read = after_report(STEPS, job_status=done.job_status, current_index=0, attempt_index=0,
                        status=merge_status(DLV, READ), now=NOW + 2 * MIN)
    assert (done.job_status, read.job_status) == (J.DELIVERED, J.READ)


def test_scenario_b_not_in_max_then_telegram_delivered():
    fall = after_send(STEPS, 0, NREG, NOW)
    assert (fall.job_status, fall.next_step) == (J.SCHEDULED, 1)
    # the worker remembers "not on max" for the patient; the next job skips MAX outright
    index, _ = choose_step(STEPS, fall.next_step, **NO_SKIPS)
    assert index == 1
    waiting = after_send(STEPS, index, SENT, NOW)
    done = after_report(STEPS, job_status=waiting.job_status, current_index=1, attempt_index=1, status=DLV,
                        now=NOW + MIN)
    assert done.job_status is J.DELIVERED
    assert choose_step(STEPS, 0, opted_out=NONE, not_registered=frozenset({"max"}), unaddressable=NONE) == (
        1, [(0, "patient is not on max (remembered)")])


def test_scenario_c_max_silent_timeout_telegram_unknown_whatsapp_delivered():
    waiting = after_send(STEPS, 0, SENT, NOW)
    # no receipt: at the deadline the worker expires the attempt locally and falls back
    timed_out = on_timeout(STEPS, 0, SENT, waiting.deadline)
    assert (timed_out.job_status, timed_out.next_step) == (J.SCHEDULED, 1)
    assert "sent_timeout" in timed_out.note
    assert merge_status(SENT, EXP) is EXP
    fall = after_send(STEPS, timed_out.next_step, NREG, waiting.deadline)
    assert (fall.job_status, fall.next_step) == (J.SCHEDULED, 2)
    waiting_wa = after_send(STEPS, 2, SENT, waiting.deadline)
    assert waiting_wa.deadline == waiting.deadline + 30 * MIN
    done = after_report(STEPS, job_status=J.AWAITING_DELIVERY, current_index=2, attempt_index=2, status=DLV,
                        now=waiting.deadline + MIN)
    assert done.job_status is J.DELIVERED


def test_scenario_d_every_channel_fails():
    index, decisions = 0, []
    while index is not None:
        decision = after_send(STEPS, index, FAIL, NOW)
        decisions.append(decision)
        index, _ = choose_step(STEPS, decision.next_step, **NO_SKIPS) if decision.next_step else (None, [])
    assert [d.job_status for d in decisions] == [J.SCHEDULED, J.SCHEDULED, J.SCHEDULED, J.FAILED]
    assert [d.next_step for d in decisions] == [1, 2, 3, None]
    assert "sms via smsru: failed; no channel left" in decisions[-1].note


def test_scenario_d_nothing_usable_at_all():
    # every channel already known bad: choose_step finds nothing and says why for each
    index, skipped = choose_step(STEPS, 0, opted_out=frozenset({"sms"}),
                                 not_registered=frozenset({"max", "telegram", "whatsapp"}), unaddressable=NONE)
    assert index is None
    assert [i for i, _ in skipped] == [0, 1, 2, 3]


def test_scenario_e_late_max_delivered_after_telegram_delivered():
    timed_out = on_timeout(STEPS, 0, SENT, NOW + 10 * MIN)
    after_send(STEPS, timed_out.next_step, SENT, NOW + 10 * MIN)
    tg_done = after_report(STEPS, job_status=J.AWAITING_DELIVERY, current_index=1, attempt_index=1, status=DLV,
                           now=NOW + 11 * MIN)
    assert tg_done.job_status is J.DELIVERED
    # MAX's receipt finally arrives: recorded on its expired attempt, the job stays delivered, nothing restarts
    max_attempt = merge_status(EXP, DLV)
    assert max_attempt is DLV
    late = after_report(STEPS, job_status=tg_done.job_status, current_index=1, attempt_index=0, status=max_attempt,
                        now=NOW + 12 * MIN)
    assert late is None


def test_scenario_f_late_max_delivered_while_fallback_only_scheduled():
    timed_out = on_timeout(STEPS, 0, SENT, NOW + 10 * MIN)
    assert (timed_out.job_status, timed_out.next_step) == (J.SCHEDULED, 1)
    late = after_report(STEPS, job_status=timed_out.job_status, current_index=timed_out.next_step, attempt_index=0,
                        status=merge_status(EXP, DLV), now=NOW + 10 * MIN + timedelta(seconds=5))
    assert late.job_status is J.DELIVERED
    assert late.next_step is None
    assert late.note.startswith("late receipt from step 1 (max): delivered")


def test_scenario_g_last_sms_silent_then_a_late_receipt():
    steps = (MAX, SMS_3D)
    waiting = after_send(steps, 1, Q, NOW)
    grace = on_timeout(steps, 1, Q, waiting.deadline, sent_at=NOW)
    assert (grace.job_status, grace.deadline) == (J.AWAITING_DELIVERY, NOW + DAYS3)
    # a receipt within the window concludes the waiting job as any receipt does
    done = after_report(steps, job_status=grace.job_status, current_index=1, attempt_index=1, status=DLV,
                        now=NOW + timedelta(days=1))
    assert done.job_status is J.DELIVERED
    # ... and one after the window upgrades the unconfirmed job
    ended = on_timeout(steps, 1, Q, grace.deadline, sent_at=NOW)
    assert ended.job_status is J.UNCONFIRMED
    late = after_report(steps, job_status=ended.job_status, current_index=1, attempt_index=1,
                        status=merge_status(EXP, DLV), now=NOW + DAYS3 + MIN)
    assert late.job_status is J.DELIVERED


def test_scenario_bot_channel_without_receipts_is_final_on_send():
    steps = (TG_BOT, SMS)
    decision = after_send(steps, 0, SENT, NOW)
    assert decision.job_status is J.DELIVERED
    # a button press later still counts as read
    read = after_report(steps, job_status=J.DELIVERED, current_index=0, attempt_index=0, status=READ, now=NOW)
    assert read.job_status is J.READ


LATE = "the visit has started; not sent late"


@pytest.mark.parametrize(
    ("kind", "state", "visit_in", "expected"),
    [
        (JobKind.REMINDER, BookingState.ACTIVE, timedelta(hours=1), None),
        (JobKind.REMINDER, BookingState.CANCELLED, timedelta(hours=1), (JobStatus.CANCELLED, "booking is cancelled")),
        (JobKind.CONFIRMATION, BookingState.NO_SHOW, timedelta(hours=1), (JobStatus.CANCELLED, "booking is no_show")),
        (JobKind.CANCELLATION, BookingState.CANCELLED, timedelta(hours=1), None),  # the notice itself still goes
        (JobKind.REMINDER, BookingState.ACTIVE, timedelta(0), (JobStatus.EXPIRED, LATE)),
        (JobKind.CANCELLATION, BookingState.CANCELLED, -timedelta(minutes=1), (JobStatus.EXPIRED, LATE)),
        (JobKind.RESULTS_READY, None, None, None),
    ],
)
def test_withdrawal(kind, state, visit_in, expected):
    from connector.core.cascade import withdrawal

    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    assert withdrawal(kind, state, None if visit_in is None else now + visit_in, now) == expected
