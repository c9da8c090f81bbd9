"""What a parsed booking may hold (connector.sources.limits): bounds that name the field, texts fitted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from connector.core.model import BookingFacts, Patient
from connector.sources.errors import PayloadError
from connector.sources.limits import check_duration, check_id, check_moment, check_zone_name, fit_facts


@pytest.mark.parametrize(("value", "ok"), [
    ("987654321", True), ("B-1001", True), ("9" * 128, True), (None, True),
    ("9" * 129, False), ("12\x00", False), ("12\ud800", False), ("a\nb", False),
])
def test_ids(value, ok):
    if ok:
        assert check_id(value, "id") == value
    else:
        with pytest.raises(PayloadError) as caught:
            check_id(value, "id")
        assert caught.value.field == "id"


@pytest.mark.parametrize(("moment", "ok"), [
    (datetime(2026, 12, 3, 10, tzinfo=UTC), True),
    (datetime(1970, 1, 1, tzinfo=UTC), True),
    (datetime(2199, 12, 31, 23, 59, tzinfo=UTC), True),
    (datetime(2026, 12, 3), True),  # naive: read in a zone later, checked then
    (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12))), False),  # overflows
    (datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), False),  # overflows
    (datetime(1969, 12, 31, 23, 59, tzinfo=UTC), False),
    (datetime(2200, 1, 1, tzinfo=UTC), False),
])
def test_moments(moment, ok):
    if ok:
        assert check_moment(moment, "datetime") == moment
    else:
        with pytest.raises(PayloadError) as caught:
            check_moment(moment, "datetime")
        assert caught.value.field == "datetime"


@pytest.mark.parametrize(("seconds", "expected"), [
    (3600, timedelta(hours=1)), (0, None), (-5, None), (7 * 86400, timedelta(days=7)),
    (7 * 86400 + 1, PayloadError), (10 ** 20, PayloadError), (float("nan"), PayloadError),
    (float("inf"), PayloadError),
])
def test_durations(seconds, expected):
    if expected is PayloadError:
        with pytest.raises(PayloadError):
            check_duration(seconds, "seance_length")
    else:
        assert check_duration(seconds, "seance_length") == expected


@pytest.mark.parametrize(("name", "ok"), [
    ("Europe/Moscow", True), ("America/Argentina/ComodRivadavia", True), ("x" * 65, False), ("Europe/\x00", False),
])
def test_zone_names(name, ok):
    if ok:
        assert check_zone_name(name) == name
    else:
        with pytest.raises(PayloadError):
            check_zone_name(name)


def test_free_texts_are_cut_to_their_columns_and_cleaned():
    facts = BookingFacts(
        external_id="1", starts_at=datetime(2026, 12, 3, 10, tzinfo=UTC),
        patient=Patient(first_name="И\x00ван", last_name="Ф" * 300, patronymic="\ud800"),
        doctor_name="Д" * 500, services=("s" * 400, "", "\x00") + ("x",) * 60, comment="c" * 5000,
        address="a" * 400)
    fitted = fit_facts(facts)
    assert fitted.patient.first_name == "И\ufffdван" and fitted.patient.last_name == "Ф" * 120
    assert fitted.patient.patronymic == "\ufffd"
    assert fitted.doctor_name == "Д" * 200 and len(fitted.address or "") == 300 and len(fitted.comment or "") == 4000
    assert fitted.services[0] == "s" * 300 and fitted.services[1] == "\ufffd" and len(fitted.services) == 49
