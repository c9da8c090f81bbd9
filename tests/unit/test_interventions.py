"""What staff may do to a job: send a failed or expired one again (from a step of the cascade), cancel or send
now one still waiting, and nothing about a visit once it has begun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.core.interventions import cancel_refusal, resend_refusal, retry_writeback_refusal, send_now_refusal

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)
EARLIER = NOW - timedelta(hours=1)


@pytest.mark.parametrize(("status", "kind", "visit", "step", "allowed"), [
    ("failed", "confirmation", LATER, 0, True),
    ("expired", "reminder", LATER, 3, True),
    ("failed", "confirmation", None, 0, True),
    ("failed", "results_ready", EARLIER, 0, True),  # not about a visit: its start does not matter
    ("failed", "some_new_kind", EARLIER, 0, True),
    ("failed", "reminder", EARLIER, 0, False),  # the visit has begun
    ("failed", "reminder", NOW, 0, False),
    ("failed", "confirmation", LATER, 4, False),  # a cascade of four has no fifth step
    ("failed", "confirmation", LATER, -1, False),
    ("delivered", "confirmation", LATER, 0, False),
    ("scheduled", "confirmation", LATER, 0, False),
    ("unconfirmed", "confirmation", LATER, 0, False),
])
def test_send_again(status, kind, visit, step, allowed):
    why = resend_refusal(status, kind=kind, visit_start=visit, step=step, steps=4, now=NOW)
    assert (why is None) is allowed, why


def test_a_refusal_says_why_in_words_staff_can_act_on():
    assert resend_refusal("failed", kind="reminder", visit_start=LATER, step=5, steps=4, now=NOW) == \
        "в каскаде клиники нет шага 6"
    assert "приём уже начался" in resend_refusal("failed", kind="reminder", visit_start=EARLIER, step=0, steps=4,
                                                 now=NOW)


@pytest.mark.parametrize(("status", "allowed"), [("scheduled", True), ("sending", False), ("delivered", False),
                                                 ("failed", False), ("cancelled", False)])
def test_cancel_only_what_still_waits(status, allowed):
    assert (cancel_refusal(status) is None) is allowed


@pytest.mark.parametrize(("status", "kind", "visit", "allowed"), [
    ("scheduled", "reminder", LATER, True),
    ("scheduled", "reminder", EARLIER, False),
    ("scheduled", "recall", EARLIER, True),
    ("awaiting_delivery", "reminder", LATER, False),
    ("failed", "reminder", LATER, False),
])
def test_send_now_respects_nothing_but_the_visit(status, kind, visit, allowed):
    assert (send_now_refusal(status, kind=kind, visit_start=visit, now=NOW) is None) is allowed


@pytest.mark.parametrize(("status", "newer", "allowed"), [("failed", False, True), ("failed", True, False),
                                                         ("pending", False, False), ("sent", False, False)])
def test_retry_only_a_failed_write_back_that_nothing_newer_followed(status, newer, allowed):
    assert (retry_writeback_refusal(status, newer=newer) is None) is allowed
