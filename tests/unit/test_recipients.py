"""A job follows its booking's patient; the audit line names ids only."""

from __future__ import annotations

import pytest

from connector.core.recipients import follow_booking


@pytest.mark.parametrize(
    ("planned", "booking_patient", "has_booking", "expected"),
    [
        (12, 12, True, (12, None)),  # nothing changed: no audit line
        (12, 15, True, (15, "recipient changed: patient #12 → patient #15")),  # phone corrected: new patient
        (None, 15, True, (15, "recipient changed: no patient → patient #15")),  # client given later
        (12, None, True, (None, "recipient changed: patient #12 → no patient")),  # client taken off the visit
        (None, None, True, (None, None)),
        (12, None, False, (12, None)),  # results, recalls: no booking, the job's own patient
        (None, None, False, (None, None)),
    ],
)
def test_the_booking_decides_the_recipient(planned, booking_patient, has_booking, expected):
    assert follow_booking(planned, booking_patient, has_booking=has_booking) == expected
