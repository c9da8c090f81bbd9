"""Who a job goes to: its booking's patient as the booking stands now, not whom it was planned for (pure).

A booking's client may be added later, have a phone corrected, or be taken off the visit. A job that kept
the patient it was planned with would carry the visit's time, doctor and greeting to someone else's phone,
the worst thing this service can do; so the booking decides, and each change is said in the audit trail.
"""

from __future__ import annotations


def follow_booking(planned: int | None, booking_patient: int | None, *, has_booking: bool
                   ) -> tuple[int | None, str | None]:
    """The patient a job goes to now, and the audit line when that is not the one it held (else None).

    Jobs without a booking (results, recalls) name their patient themselves. Ids only in the note: never a
    phone or a name in an audit line.
    """
    if not has_booking or planned == booking_patient:
        return planned, None
    return booking_patient, f"recipient changed: {_who(planned)} → {_who(booking_patient)}"


def _who(patient_id: int | None) -> str:
    return "no patient" if patient_id is None else f"patient #{patient_id}"
