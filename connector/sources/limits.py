"""What a parsed booking may hold, whatever a sender wrote (pure; every source adapter reads through these).

Ids, times and durations out of bounds are errors naming the field: cutting an id would merge two bookings,
and a visit in year 1 or 9999 is no visit. Free texts (names, the doctor, services, comments) are cut to the
ledger's columns and cleaned of what a database cannot hold (NUL, unpaired surrogates from JSON's "\\ud800"):
refusing a real booking over a long surname would lose a patient's reminder for nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from connector.core.model import BookingFacts
from connector.sources.errors import PayloadError

__all__ = ["EARLIEST", "LATEST", "MAX_DURATION", "check_duration", "check_id", "check_moment", "fit_facts",
           "fit_text"]

ID_LENGTH = 128  # booking.external_id
BRANCH_LENGTH = 64  # booking.branch_id
ZONE_LENGTH = 64  # booking.timezone; the longest IANA name is 32
# The ledger's column sizes for the free texts of a booking (connector.store.models).
NAME_LENGTH, DOCTOR_LENGTH, ADDRESS_LENGTH, SERVICE_LENGTH, TEXT_LENGTH = 120, 200, 300, 300, 4000
MAX_SERVICES = 50
# Visits and change times are read as instants; anything outside these is a typo or a probe, and beyond
# them the arithmetic of planning (a day before, an hour after) would leave the calendar.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_DURATION = timedelta(days=7)  # booking.duration_s is a 32-bit integer; no visit lasts a week

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def check_id(value: str | None, field: str, limit: int = ID_LENGTH) -> str | None:
    """An id as the ledger can key on it: no longer than its column, no control characters."""
    if value is None:
        return None
    if len(value) > limit:
        raise PayloadError(f"{field!r} is {len(value)} characters long; at most {limit} are kept", field=field)
    if _CONTROL.search(value):
        raise PayloadError(f"{field!r} holds control characters or unpaired surrogates: {value!r}", field=field)
    return value


def check_moment(moment: datetime, field: str) -> datetime:
    """An aware instant between EARLIEST and LATEST; a naive one is returned as it is."""
    if moment.tzinfo is None:
        return moment
    try:
        instant = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        instant = None
    if instant is None or not EARLIEST <= instant < LATEST:
        raise PayloadError(f"{field!r} {moment.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}",
                           field=field)
    return moment


def check_duration(seconds: float, field: str) -> timedelta | None:
    """A visit's length: None for zero or less (unknown), an error when not finite or over a week."""
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise PayloadError(f"{field!r} of {seconds!r} seconds is not a visit's length (at most a week)",
                           field=field)
    return timedelta(seconds=seconds) if seconds > 0 else None


def check_zone_name(name: str, field: str = "timezone") -> str:
    if len(name) > ZONE_LENGTH or _CONTROL.search(name):
        raise PayloadError(f"{field!r} {name[:80]!r} is not a known IANA zone", field=field)
    return name


def scalar_text(raw: object) -> str | None:
    """A JSON scalar as trimmed text: a string (None when blank) or a number; None for anything else."""
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    return None


def fit_text(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    return _UNSTORABLE.sub("\ufffd", value[:limit]).strip() or None


def fit_facts(facts: BookingFacts) -> BookingFacts:
    """The facts as the ledger can hold them: ids checked, free texts fitted (see the module docstring)."""
    check_id(facts.external_id, "external_id")
    check_id(facts.branch_id, "branch_id", BRANCH_LENGTH)
    person = facts.patient
    patient = replace(
        person,
        first_name=fit_text(person.first_name, NAME_LENGTH),
        last_name=fit_text(person.last_name, NAME_LENGTH),
        patronymic=fit_text(person.patronymic, NAME_LENGTH),
        external_id=fit_text(person.external_id, ID_LENGTH),
    )
    services = tuple(t for t in (fit_text(s, SERVICE_LENGTH) for s in facts.services[:MAX_SERVICES]) if t)
    return replace(
        facts,
        patient=patient,
        doctor_name=fit_text(facts.doctor_name, DOCTOR_LENGTH),
        doctor_specialty=fit_text(facts.doctor_specialty, DOCTOR_LENGTH),
        services=services,
        preparation=fit_text(facts.preparation, TEXT_LENGTH),
        comment=fit_text(facts.comment, TEXT_LENGTH),
        address=fit_text(facts.address, ADDRESS_LENGTH),
    )
