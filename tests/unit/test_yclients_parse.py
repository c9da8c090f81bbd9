"""YCLIENTS record webhooks: the shared fixtures replayed, and the lenient variants of yclients.md §5."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from connector.core.model import BookingState, EventAction, Sex
from connector.sources.errors import PayloadError
from connector.sources.yclients import parse_record_webhook
from tests.fixtures import sample

MSK = timezone(timedelta(hours=3))
EKB = timezone(timedelta(hours=5))


def load(name: str) -> dict[str, Any]:
    return json.loads(sample("yclients", name).read_text(encoding="utf-8"))


def record(**data_changes: Any) -> dict[str, Any]:
    """The create fixture with `data` keys replaced (a value of ... removes the key)."""
    body = copy.deepcopy(load("record_create.json"))
    for key, value in data_changes.items():
        if value is ...:
            body["data"].pop(key, None)
        else:
            body["data"][key] = value
    return body


def client(**changes: Any) -> dict[str, Any]:
    base = copy.deepcopy(load("record_create.json")["data"]["client"])
    for key, value in changes.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


RECORD_FIXTURES = sorted(p.name for p in sample("yclients").glob("record_*.json"))


def test_all_record_fixtures_are_found():
    assert {"record_create.json", "record_delete.json"} <= set(RECORD_FIXTURES)


# --- the shared fixtures ---------------------------------------------------------------------------

EXPECTED = {
    # name: (action, start, state, version, comment)
    "record_create.json": (
        EventAction.UPSERT,
        datetime(2026, 12, 3, 10, 0, tzinfo=MSK),
        BookingState.ACTIVE,
        datetime(2026, 11, 27, 11, 2, 41, tzinfo=MSK),
        "За 4 часа до приёма не есть и не пить. Взять результаты ЭКГ.",
    ),
    "record_update_confirmed.json": (
        EventAction.UPSERT,
        datetime(2026, 12, 3, 10, 0, tzinfo=MSK),
        BookingState.ACTIVE,  # attendance 2 = confirmed by the client: still to come
        datetime(2026, 11, 28, 10, 5, tzinfo=MSK),
        "За 4 часа до приёма не есть и не пить. Взять результаты ЭКГ.",
    ),
    "record_update_time_moved.json": (
        EventAction.UPSERT,
        datetime(2026, 12, 3, 15, 0, tzinfo=MSK),
        BookingState.ACTIVE,
        datetime(2026, 11, 28, 9, 47, 5, tzinfo=MSK),
        "Перенос: ЧП в поликлинике. За 4 часа до приёма не есть и не пить.",
    ),
    "record_delete.json": (
        EventAction.DELETE,
        datetime(2026, 12, 3, 15, 0, tzinfo=MSK),
        BookingState.CANCELLED,
        datetime(2026, 11, 29, 20, 15, 33, tzinfo=MSK),
        None,
    ),
}


@pytest.mark.parametrize("name", RECORD_FIXTURES)
def test_fixture_replays(name):
    event = parse_record_webhook(load(name))
    assert event is not None
    assert event.external_id == "987654321"
    assert event.facts is not None
    assert event.facts.external_id == "987654321"
    assert event.facts.branch_id == "512345"
    assert event.facts.timezone is None
    assert event.facts.preparation is None  # YCLIENTS has no such field; the comment stays a comment
    assert event.facts.patient.phone == "+79161234560"
    assert event.facts.patient.external_id == "86694283"
    assert event.facts.services == ("Приём кардиолога первичный",)
    assert event.version is not None and event.version.utcoffset() == timedelta(hours=3)
    if name in EXPECTED:
        action, start, state, version, comment = EXPECTED[name]
        assert event.action is action
        assert event.facts.starts_at == start
        assert event.facts.starts_at.utcoffset() == timedelta(hours=3)
        assert event.facts.state is state
        assert event.version == version
        assert event.facts.comment == comment


def test_create_fixture_maps_every_field():
    facts = parse_record_webhook(load("record_create.json")).facts
    assert facts.duration == timedelta(minutes=30)
    assert facts.doctor_name == "Иванов Сергей Петрович"
    assert facts.doctor_specialty == "Кардиолог"
    assert facts.address is None
    patient = facts.patient
    assert (patient.first_name, patient.last_name, patient.patronymic) == ("Иван", "Смирнов", "Петрович")
    assert patient.sex is Sex.MALE


def test_delete_fixture_keeps_what_data_has():
    facts = parse_record_webhook(load("record_delete.json")).facts
    assert facts.patient.first_name == "Иван"
    assert facts.patient.last_name is None
    assert facts.doctor_name is None  # no staff object in the delete
    assert facts.duration is None


# --- lenient variants ------------------------------------------------------------------------------

UPSERT_VARIANTS = {
    "client null": (record(client=None), lambda f: f.patient.phone is None and f.patient.first_name is None),
    "client as []": (record(client=[]), lambda f: f.patient.external_id is None),
    "client absent": (record(client=...), lambda f: f.patient.sex is Sex.UNKNOWN),
    "custom_fields {}": (record(custom_fields={}), lambda f: f.external_id == "987654321"),
    "custom_fields filled": (
        record(custom_fields={"salesap_id": 1786534}),
        lambda f: f.external_id == "987654321",
    ),
    "client custom_fields {}": (
        record(client=client(custom_fields={})),
        lambda f: f.patient.first_name == "Иван",
    ),
    "deleted false as 0": (record(deleted=0), lambda f: f.state is BookingState.ACTIVE),
    "deleted false as '0'": (record(deleted="0"), lambda f: f.state is BookingState.ACTIVE),
    "deleted null": (record(deleted=None), lambda f: f.state is BookingState.ACTIVE),
    "staff null": (record(staff=None), lambda f: f.doctor_name is None and f.doctor_specialty is None),
    "specialty from position": (
        record(
            staff={"name": "Петрова А. А.", "specialization": "", "position": {"id": 1, "title": "Терапевт"}}
        ),
        lambda f: f.doctor_specialty == "Терапевт",
    ),
    "position null": (
        record(staff={"name": "Петрова А. А.", "position": None}),
        lambda f: f.doctor_name == "Петрова А. А." and f.doctor_specialty is None,
    ),
    "services absent": (record(services=...), lambda f: f.services == ()),
    "two services": (
        record(services=[{"title": "Приём"}, {"title": "ЭКГ"}, {"title": ""}, "junk"]),
        lambda f: f.services == ("Приём", "ЭКГ"),
    ),
    "length only": (record(seance_length=..., length="2700"), lambda f: f.duration == timedelta(minutes=45)),
    "no length": (record(seance_length=..., length=...), lambda f: f.duration is None),
    "blank comment": (record(comment="  "), lambda f: f.comment is None),
    "company_id from envelope": (record(company_id=...), lambda f: f.branch_id == "512345"),
    "Yekaterinburg +05:00": (
        record(datetime="2026-12-03T10:00:00+05:00", date="2026-12-03 10:00:00"),
        lambda f: (
            f.starts_at == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
            and f.starts_at.utcoffset() == timedelta(hours=5)
        ),
    ),
    "New York -05:00": (
        record(datetime="2026-12-03T10:00:00-05:00"),
        lambda f: f.starts_at == datetime(2026, 12, 3, 15, 0, tzinfo=UTC),
    ),
    "datetime with milliseconds": (
        record(datetime="2026-12-03T10:00:00.000+03:00"),
        lambda f: f.starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize("name", list(UPSERT_VARIANTS))
def test_lenient_upsert_variants(name):
    body, check = UPSERT_VARIANTS[name]
    event = parse_record_webhook(body)
    assert event.action is EventAction.UPSERT
    assert check(event.facts), event.facts


@pytest.mark.parametrize(
    ("attendance", "state"),
    [
        (-1, BookingState.NO_SHOW),
        ("-1", BookingState.NO_SHOW),
        (0, BookingState.ACTIVE),
        (1, BookingState.ATTENDED),
        ("1", BookingState.ATTENDED),
        (2, BookingState.ACTIVE),
        (None, BookingState.ACTIVE),
        (..., BookingState.ACTIVE),
        (7, BookingState.ACTIVE),  # a code we do not know changes nothing
    ],
)
def test_attendance(attendance, state):
    assert parse_record_webhook(record(attendance=attendance)).facts.state is state


def test_ids_as_strings():
    body = record(id="987654321", company_id="512345", client=client(id="86694283"))
    body["resource_id"] = "987654321"
    event = parse_record_webhook(body)
    assert event.external_id == "987654321"
    assert event.facts.branch_id == "512345"
    assert event.facts.patient.external_id == "86694283"


def test_external_id_falls_back_to_resource_id():
    body = record(id=...)
    body["resource_id"] = 42
    assert parse_record_webhook(body).external_id == "42"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-27T11:02:41+0300", datetime(2026, 11, 27, 8, 2, 41, tzinfo=UTC)),  # no colon in the offset
        ("2026-11-27T11:02:41+03:00", datetime(2026, 11, 27, 8, 2, 41, tzinfo=UTC)),
        ("2026-11-27T13:02:41+0500", datetime(2026, 11, 27, 8, 2, 41, tzinfo=UTC)),
        (None, None),
        (..., None),
        ("", None),
    ],
)
def test_version_from_last_change_date(raw, expected):
    assert parse_record_webhook(record(last_change_date=raw)).version == expected


def test_naive_version_is_read_in_default_tz_or_dropped():
    body = record(last_change_date="2026-11-27 11:02:41")
    assert parse_record_webhook(body).version is None
    assert parse_record_webhook(body, default_tz="Asia/Yekaterinburg").version == datetime(
        2026, 11, 27, 6, 2, 41, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+79999856814", "+79999856814"),
        ("79169999900", "+79169999900"),
        ("89161234567", "+79161234567"),
        ("+7 999 123-45-67", "+79991234567"),
        (79161234567, "+79161234567"),
        ("+70001234567", None),  # placeholder, not a real number
        ("", None),
        (None, None),
    ],
)
def test_client_phone_formats(phone, expected):
    assert parse_record_webhook(record(client=client(phone=phone))).facts.patient.phone == expected


@pytest.mark.parametrize(
    ("changes", "sex"),
    [
        ({"sex": 1}, Sex.MALE),
        ({"sex": 2}, Sex.FEMALE),
        ({"sex": "2"}, Sex.FEMALE),
        ({"sex": 0}, Sex.UNKNOWN),
        ({"sex": ...}, Sex.UNKNOWN),
        ({"sex": None}, Sex.UNKNOWN),
        ({"sex": 3}, Sex.UNKNOWN),
        ({"sex": True}, Sex.UNKNOWN),
        ({"sex": "Женский", "sex_id": 2}, Sex.FEMALE),  # the older client shape: words in `sex`
        ({"sex": "Неизвестен", "sex_id": 1}, Sex.MALE),
    ],
)
def test_client_sex(changes, sex):
    assert parse_record_webhook(record(client=client(**changes))).facts.patient.sex is sex


def test_full_name_in_name_alone_is_not_split():
    body = record(client=client(name="Смирнов Иван Петрович", surname=..., patronymic=...))
    patient = parse_record_webhook(body).facts.patient
    assert (patient.first_name, patient.last_name, patient.patronymic) == (
        "Смирнов Иван Петрович",
        None,
        None,
    )


def test_display_name_used_when_name_is_empty():
    body = record(client=client(name="", surname="", patronymic="", display_name="Смирнов Иван Петрович"))
    patient = parse_record_webhook(body).facts.patient
    assert (patient.first_name, patient.last_name, patient.patronymic) == (
        "Смирнов Иван Петрович",
        None,
        None,
    )


# --- start time ------------------------------------------------------------------------------------


def test_datetime_wins_over_date():
    body = record(datetime="2026-12-03T10:00:00+05:00", date="2026-12-03 12:00:00")
    assert parse_record_webhook(body, default_tz="Europe/Moscow").facts.starts_at == datetime(
        2026, 12, 3, 10, 0, tzinfo=EKB
    )


def test_date_alone_is_read_in_default_tz():
    body = record(datetime=..., date="2026-12-03 10:00:00")
    starts_at = parse_record_webhook(body, default_tz="Asia/Yekaterinburg").facts.starts_at
    assert starts_at == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "default_tz"),
    [
        ({"datetime": ...}, None),  # only the naive `date`, and no zone to read it in
        ({"datetime": None}, None),
        ({"datetime": ""}, None),
        ({"datetime": ..., "date": ...}, None),
        ({"datetime": ..., "date": ...}, "Europe/Moscow"),
        ({"datetime": "2026-12-03T10:00:00"}, None),  # no offset
        ({"datetime": "3 декабря, 10:00"}, "Europe/Moscow"),
        ({"datetime": 1764745200}, "Europe/Moscow"),
    ],
)
def test_upsert_without_usable_start_fails_on_datetime(changes, default_tz):
    with pytest.raises(PayloadError) as caught:
        parse_record_webhook(record(**changes), default_tz=default_tz)
    assert caught.value.field == "datetime"


# --- deletes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("deleted", [True, 1, "1", "true"])
def test_update_with_deleted_flag_is_a_delete(deleted):
    body = record(deleted=deleted)
    body["status"] = "update"
    event = parse_record_webhook(body)
    assert event.action is EventAction.DELETE
    assert event.facts.state is BookingState.CANCELLED
    assert event.facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)


@pytest.mark.parametrize(
    "data",
    [
        {"id": 987654321},
        {"id": "987654321"},
        {"id": 987654321, "datetime": "not a time"},
        {"id": 987654321, "datetime": "2026-12-03T10:00:00+03:00", "client": "weird"},
    ],
)
def test_delete_with_thin_data_has_no_facts(data):
    body = {
        "company_id": 512345,
        "resource": "record",
        "resource_id": 987654321,
        "status": "delete",
        "data": data,
    }
    event = parse_record_webhook(body)
    assert event.action is EventAction.DELETE
    assert event.external_id == "987654321"
    assert event.version is None
    assert event.facts is None


@pytest.mark.parametrize("data", [None, {}, []])
def test_delete_without_data_falls_back_to_resource_id(data):
    body = {"company_id": 512345, "resource": "record", "resource_id": 55, "status": "delete", "data": data}
    if data == []:
        with pytest.raises(PayloadError) as caught:
            parse_record_webhook(body)
        assert caught.value.field == "data"
        return
    event = parse_record_webhook(body)
    assert (event.action, event.external_id, event.facts) == (EventAction.DELETE, "55", None)


# --- what is ignored, and what is an error ---------------------------------------------------------


@pytest.mark.parametrize("resource", ["client", "staff", "schedule", "good", "company", "salon", "records"])
def test_non_record_resource_is_ignored(resource):
    body = {"company_id": 512345, "resource": resource, "resource_id": 1, "status": "update", "data": []}
    assert parse_record_webhook(body) is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("record", "body"),
        (None, "body"),
        ({"status": "create", "data": {}}, "resource"),
        ({"resource": "record", "data": {}}, "status"),
        ({"resource": "record", "status": "create"}, "data"),
        ({"resource": None, "status": "create", "data": {}}, "resource"),
        ({"resource": "record", "status": "upsert", "data": {}}, "status"),
        ({"resource": "record", "status": "create", "data": None}, "data"),
        ({"resource": "record", "status": "create", "data": []}, "data"),
        ({"resource": "record", "status": "update", "data": {"datetime": "2026-12-03T10:00:00+03:00"}}, "id"),
    ],
)
def test_malformed_envelope(body, field):
    with pytest.raises(PayloadError) as caught:
        parse_record_webhook(body)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"deleted": "maybe"}, "deleted"),
        ({"deleted": 2}, "deleted"),
        ({"attendance": "came"}, "attendance"),
        ({"last_change_date": "yesterday"}, "last_change_date"),
        ({"client": "Иван"}, "client"),
        ({"staff": ["Иванов"]}, "staff"),
        ({"seance_length": "half an hour"}, "seance_length"),
    ],
)
def test_malformed_record_fields(changes, field):
    with pytest.raises(PayloadError) as caught:
        parse_record_webhook(record(**changes))
    assert caught.value.field == field
    assert field in str(caught.value)


def test_payload_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(PayloadError("record has no start time", field="datetime")))
    assert (str(error), error.field) == ("record has no start time", "datetime")
