"""A call whose answer was lost (core.unknown): one more call or none, and the job's decision meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.cascade import Step
from connector.core.model import JobStatus
from connector.core.unknown import UNKNOWN_MARK, Lookup, after_unknown, call_again, is_unknown, policy_of

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
L = Lookup


def cascade(*policies: str | None) -> tuple[Step, ...]:
    channels = ("max", "telegram", "whatsapp", "sms")
    return tuple(Step(channels[i], "p", HOUR * (i + 1), on_unknown=p) for i, p in enumerate(policies))


POLICIES = [
    # (policies of a cascade, index, resolved)
    ((None, None), 0, "next"),
    ((None, None), 1, "wait"),
    ((None,), 0, "wait"),
    (("wait", None), 0, "wait"),
    ((None, "next"), 1, "next"),
    (("resend", "resend"), 1, "resend"),
]


@pytest.mark.parametrize(("policies", "index", "resolved"), POLICIES)
def test_policy_of_resolves_the_default_by_the_steps_position(policies, index, resolved):
    assert policy_of(cascade(*policies), index) == resolved


CALL_AGAIN = [
    # (policy, lookup, lost calls so far, one more call?)
    *[(p, L.FOUND, 1, False) for p in ("next", "wait", "resend")],  # it went through: its answer is recorded
    *[(p, L.NOT_FOUND, 1, True) for p in ("next", "wait", "resend")],  # never taken: safe to send
    *[(p, L.NOT_FOUND, 2, False) for p in ("next", "wait", "resend")],  # but only ever one more call
    ("next", L.NO_ANSWER, 1, False),
    ("wait", L.NO_ANSWER, 1, False),
    ("resend", L.NO_ANSWER, 1, True),
    ("next", L.NOT_ASKED, 1, False),
    ("wait", L.NOT_ASKED, 1, False),
    ("resend", L.NOT_ASKED, 1, True),
    ("resend", L.NOT_ASKED, 2, False),  # exactly one more, not one more each time
    ("resend", L.NO_ANSWER, 2, False),
    (None, L.NOT_ASKED, 1, False),  # the default never resends
    (None, L.NOT_FOUND, 1, True),
]


@pytest.mark.parametrize(("policy", "lookup", "lost", "again"), CALL_AGAIN)
def test_call_again(policy, lookup, lost, again):
    assert call_again(policy, lookup, lost=lost) is again


AFTER = [
    # (policies, index, resent, in the note)
    ((None, None), 0, False, "max via p: outcome unknown (read timeout); on_unknown=next: awaiting receipts "
                             "until 2026-12-02T10:00:00+00:00, kept as sent-unknown, then step 2 (telegram) "
                             "as a timed-out step"),
    ((None, None), 1, False, "telegram via p: outcome unknown (read timeout); on_unknown=wait: awaiting "
                             "receipts until 2026-12-02T11:00:00+00:00, then unconfirmed, no other channel"),
    (("wait", None), 0, False, "on_unknown=wait: awaiting receipts until 2026-12-02T10:00:00+00:00, then "
                               "unconfirmed"),
    ((None, "next"), 1, False, "on_unknown=next: awaiting receipts until 2026-12-02T11:00:00+00:00, kept as "
                               "sent-unknown; no channel left"),
    (("resend", None), 0, True, "on_unknown=resend: resent once, still unknown; as on_unknown=next: awaiting "
                                "receipts until 2026-12-02T10:00:00+00:00, kept as sent-unknown, then step 2"),
    ((None, "resend"), 1, True, "on_unknown=resend: resent once, still unknown; as on_unknown=wait: awaiting "
                                "receipts until 2026-12-02T11:00:00+00:00, then unconfirmed"),
    ((None, "resend"), 1, False, "on_unknown=resend: not resent; as on_unknown=wait"),
]


@pytest.mark.parametrize(("policies", "index", "resent", "note"), AFTER)
def test_after_unknown_awaits_receipts_until_the_steps_deadline(policies, index, resent, note):
    steps = cascade(*policies)
    decision = after_unknown(steps, index, "read timeout", NOW, resent=resent)
    assert decision.job_status is JobStatus.AWAITING_DELIVERY and decision.next_step is None
    assert decision.deadline == NOW + steps[index].timeout
    assert note in decision.note


@pytest.mark.parametrize(("error", "unknown"), [
    (None, False), ("", False), ("timeout", False), (f"{UNKNOWN_MARK} (read timeout)", True),
    (f"gave up after 4 tries: {UNKNOWN_MARK}", False),
])
def test_is_unknown(error, unknown):
    assert is_unknown(error) is unknown
