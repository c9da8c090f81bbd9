"""A parsed event survives the trip through JSON exactly: what the web stores is what the intake applies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connector.core.event_records import SHAPE, from_record, to_record
from connector.core.model import BookingFacts, BookingState, EventAction, Patient, Sex, SourceEvent

MSK = timezone(timedelta(hours=3))
FULL = BookingFacts(
    external_id="987654321", starts_at=datetime(2026, 12, 3, 10, 0, tzinfo=MSK), state=BookingState.ACTIVE,
    timezone="Europe/Moscow", duration=timedelta(minutes=30),
    patient=Patient(phone="+79161234567", first_name="Иван", last_name="Петров", patronymic="Сергеевич",
                    sex=Sex.MALE, external_id="c-1"),
    doctor_name="Иванова А. А.", doctor_specialty="Кардиолог", services=("ЭКГ", "Приём"),
    preparation="Натощак", comment="позвонить", branch_id="512345", address="ул. Ленина, 1")


@pytest.mark.parametrize("event", [
    SourceEvent(EventAction.UPSERT, "987654321", datetime(2026, 11, 27, 8, 2, tzinfo=UTC), FULL),
    SourceEvent(EventAction.UPSERT, "1", None,
                BookingFacts(external_id="1", starts_at=datetime(2027, 1, 1, tzinfo=UTC))),
    SourceEvent(EventAction.DELETE, "987654321", datetime(2026, 11, 29, tzinfo=UTC), None),
])
@pytest.mark.parametrize("confirm_new", [True, False])
def test_round_trip_through_json(event, confirm_new):
    record = json.loads(json.dumps(to_record(event, confirm_new=confirm_new)))
    assert from_record(record) == (event, confirm_new)


def test_the_start_keeps_its_offset():
    event, _ = from_record(to_record(SourceEvent(EventAction.UPSERT, "x", None, FULL)))
    assert event.facts is not None and event.facts.starts_at.utcoffset() == timedelta(hours=3)


def test_another_shape_is_refused():
    record = to_record(SourceEvent(EventAction.DELETE, "x", None, None))
    record["shape"] = SHAPE + 1
    with pytest.raises(ValueError, match="shape"):
        from_record(record)


def test_a_booking_without_its_start_is_refused():
    record = to_record(SourceEvent(EventAction.UPSERT, "x", None, FULL))
    record["facts"]["starts_at"] = None
    with pytest.raises(ValueError, match="start"):
        from_record(record)
