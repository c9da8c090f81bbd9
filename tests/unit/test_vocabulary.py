"""The ledger's vocabulary: every status of a job, an attempt, a booking and an inbound event has its audit name."""

from __future__ import annotations

import pytest

from connector.core.model import (
    ACCEPTED_OUTCOMES,
    AttemptStatus,
    AuditWhat,
    BookingState,
    InboundOutcome,
    JobStatus,
)


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_job_status_has_its_audit_name(status):
    assert AuditWhat.of_job(status) == f"job.{status.value}"


@pytest.mark.parametrize("status", list(AttemptStatus))
def test_every_attempt_status_has_its_audit_name(status):
    assert AuditWhat.of_attempt(status) == f"attempt.{status.value}"


@pytest.mark.parametrize("state", list(BookingState))
def test_every_booking_state_has_its_audit_name(state):
    assert AuditWhat.of_booking(state) == f"booking.{state.value}"


@pytest.mark.parametrize("outcome", list(InboundOutcome))
def test_every_inbound_outcome_has_its_audit_name(outcome):
    assert AuditWhat.of_inbound(outcome) == f"inbound.{outcome.value}"


def test_a_rejected_event_is_the_only_settled_one_a_repeat_may_retry():
    # A pending one is not settled: the intake applies one booking's events in order, so a repeat is judged
    # after the event it repeats has its outcome.
    assert set(InboundOutcome) - ACCEPTED_OUTCOMES == {InboundOutcome.REJECTED, InboundOutcome.PENDING}


def test_an_unknown_name_is_refused():
    with pytest.raises(ValueError):
        AuditWhat("job.teleported")
