"""The declarative JMESPath mapping: loading and validating mapping files, and parsing payloads with them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connector.core.model import BookingState, EventAction, Sex
from connector.sources.errors import PayloadError
from connector.sources.generic import (
    MappingError,
    compile_mapping,
    load_mapping,
    load_mappings,
    parse_generic,
)
from tests.fixtures import sample

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
MSK = timezone(timedelta(hours=3))

MINIMAL = {"external_id": "id", "starts_at": "start"}


def fixture() -> dict[str, Any]:
    return json.loads(sample("generic", "booking_created.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(MAPPINGS / "generic.yaml")


def with_changes(body: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A copy of `body` with dotted paths set (a value of ... removes the key)."""
    body = copy.deepcopy(body)
    for path, value in paths.items():
        *parents, last = path.split("__")
        node = body
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return body


def write(tmp_path: Path, text: str, name: str = "source.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the fixture -----------------------------------------------------------------------------------


def test_fixture_maps_fully(mapping):
    event = parse_generic(fixture(), mapping, "Asia/Yekaterinburg")
    assert event.action is EventAction.UPSERT
    assert event.external_id == "B-1001"
    assert event.version == datetime(2026, 11, 27, 11, 0, tzinfo=MSK)
    facts = event.facts
    assert facts.external_id == "B-1001"
    assert facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)
    assert facts.state is BookingState.ACTIVE
    assert facts.timezone == "Europe/Moscow"
    assert facts.duration is None
    assert facts.patient.phone == "+79161234566"
    assert (facts.patient.first_name, facts.patient.last_name, facts.patient.patronymic) == (
        "Иван",
        "Смирнов",
        "Петрович",
    )
    assert facts.patient.sex is Sex.MALE
    assert facts.doctor_name == "Иванов Сергей Петрович"
    assert facts.doctor_specialty == "кардиолог"
    assert facts.services == ("Приём кардиолога первичный",)
    assert facts.preparation == "За 4 часа до приёма не есть и не пить."
    assert facts.comment is None
    assert facts.branch_id == "lesnaya"
    assert facts.address == "ул. Лесная, д. 5"


def test_load_mappings_keys_by_stem(tmp_path):
    write(tmp_path, "external_id: id\nstarts_at: start\n", "clinic_a.yaml")
    write(tmp_path, "external_id: id\nstarts_at: start\n", "clinic_b.yml")
    write(tmp_path, "not a mapping", "README.md")
    assert sorted(load_mappings(tmp_path)) == ["clinic_a", "clinic_b"]
    assert "generic" in load_mappings(MAPPINGS)


def test_load_mappings_rejects_duplicate_stems(tmp_path):
    write(tmp_path, "external_id: id\nstarts_at: start\n", "a.yaml")
    write(tmp_path, "external_id: id\nstarts_at: start\n", "a.yml")
    with pytest.raises(MappingError, match="a.yml"):
        load_mappings(tmp_path)


def test_load_mappings_missing_directory(tmp_path):
    with pytest.raises(MappingError, match="does not exist"):
        load_mappings(tmp_path / "nowhere")


# --- payload variants ------------------------------------------------------------------------------

VARIANTS = {
    "updated": (with_changes(fixture(), event="booking.updated"), lambda e: e.action is EventAction.UPSERT),
    "event value in other case": (
        with_changes(fixture(), event=" Booking.Updated "),
        lambda e: e.action is EventAction.UPSERT,
    ),
    "naive start read in payload timezone": (
        with_changes(fixture(), booking__start="2026-12-03 10:00", booking__timezone="Asia/Yekaterinburg"),
        lambda e: (
            e.facts.starts_at == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
            and e.facts.timezone == "Asia/Yekaterinburg"
        ),
    ),
    "naive start read in default_tz": (
        with_changes(fixture(), booking__start="2026-12-03T10:00:00", booking__timezone=...),
        lambda e: e.facts.starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC) and e.facts.timezone is None,
    ),
    "offset wins over timezone": (
        with_changes(fixture(), booking__start="2026-12-03T10:00:00+05:00"),
        lambda e: e.facts.starts_at == datetime(2026, 12, 3, 5, 0, tzinfo=UTC),
    ),
    "no version": (with_changes(fixture(), booking__updated_at=...), lambda e: e.version is None),
    "state cancelled": (
        with_changes(fixture(), booking__status="cancelled"),
        lambda e: e.action is EventAction.UPSERT and e.facts.state is BookingState.CANCELLED,
    ),
    "state from table": (
        with_changes(fixture(), booking__status="Completed"),
        lambda e: e.facts.state is BookingState.ATTENDED,
    ),
    "state no_show": (
        with_changes(fixture(), booking__status="no_show"),
        lambda e: e.facts.state is BookingState.NO_SHOW,
    ),
    "state null": (
        with_changes(fixture(), booking__status=None),
        lambda e: e.facts.state is BookingState.ACTIVE,
    ),
    "sex ж": (with_changes(fixture(), patient__sex="ж"), lambda e: e.facts.patient.sex is Sex.FEMALE),
    "sex 2 as int": (with_changes(fixture(), patient__sex=2), lambda e: e.facts.patient.sex is Sex.FEMALE),
    "sex 1 as string": (with_changes(fixture(), patient__sex="1"), lambda e: e.facts.patient.sex is Sex.MALE),
    "sex unknown word": (
        with_changes(fixture(), patient__sex="other"),
        lambda e: e.facts.patient.sex is Sex.UNKNOWN,
    ),
    "sex absent": (with_changes(fixture(), patient__sex=...), lambda e: e.facts.patient.sex is Sex.UNKNOWN),
    "phone national": (
        with_changes(fixture(), patient__phone="8 (916) 123-45-67"),
        lambda e: e.facts.patient.phone == "+79161234567",
    ),
    "phone as number": (
        with_changes(fixture(), patient__phone=79161234567),
        lambda e: e.facts.patient.phone == "+79161234567",
    ),
    "phone invalid": (with_changes(fixture(), patient__phone="12"), lambda e: e.facts.patient.phone is None),
    "no patient": (with_changes(fixture(), patient=...), lambda e: e.facts.patient.first_name is None),
    "services as list": (
        with_changes(fixture(), service__name=["Приём", None, " ", "ЭКГ"]),
        lambda e: e.facts.services == ("Приём", "ЭКГ"),
    ),
    "numeric id": (with_changes(fixture(), booking__id=1001), lambda e: e.external_id == "1001"),
    "numeric branch": (with_changes(fixture(), clinic__id=7), lambda e: e.facts.branch_id == "7"),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_payload_variants(mapping, name):
    body, check = VARIANTS[name]
    event = parse_generic(body, mapping, "Europe/Moscow")
    assert check(event), event


@pytest.mark.parametrize("value", ["booking.cancelled", "booking.deleted"])
def test_delete_actions(mapping, value):
    event = parse_generic(with_changes(fixture(), event=value), mapping, "Europe/Moscow")
    assert event.action is EventAction.DELETE
    assert event.facts.state is BookingState.CANCELLED
    assert event.facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)


def test_delete_with_only_an_id_has_no_facts(mapping):
    event = parse_generic({"event": "booking.deleted", "booking": {"id": "B-1001"}}, mapping, "Europe/Moscow")
    assert (event.action, event.external_id, event.version, event.facts) == (
        EventAction.DELETE,
        "B-1001",
        None,
        None,
    )


def test_cancel_target_keeps_the_booking():
    raw = {**MINIMAL, "action": "type", "actions": {"cancel": "cancel", "new": "upsert"}}
    event = parse_generic(
        {"type": "cancel", "id": 5, "start": "2026-12-03T10:00:00+03:00"}, raw, "Europe/Moscow"
    )
    assert event.action is EventAction.UPSERT
    assert event.facts.state is BookingState.CANCELLED


def test_plain_dict_mapping_without_action_is_upsert():
    event = parse_generic({"id": "x", "start": "2026-12-03T10:00:00+03:00"}, MINIMAL, "Europe/Moscow")
    assert (event.action, event.external_id, event.version) == (EventAction.UPSERT, "x", None)
    assert event.facts.patient.phone is None and event.facts.services == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, timedelta(minutes=30)),
        ("45", timedelta(minutes=45)),
        (1.5, timedelta(seconds=90)),
        (0, None),
        (None, None),
    ],
)
def test_duration_minutes(value, expected):
    raw = {**MINIMAL, "duration_minutes": "minutes"}
    body = {"id": "x", "start": "2026-12-03T10:00:00+03:00", "minutes": value}
    assert parse_generic(body, raw, "Europe/Moscow").facts.duration == expected


def test_phone_region_reads_national_numbers():
    raw = {**MINIMAL, "patient": {"phone": "phone"}, "phone_region": "GB"}
    body = {"id": "x", "start": "2026-12-03T10:00:00+03:00", "phone": "07911 123456"}
    assert parse_generic(body, raw, "Europe/London").facts.patient.phone == "+447911123456"


# --- payload errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_changes(fixture(), booking__start=...), "starts_at"),
        (with_changes(fixture(), booking__start=""), "starts_at"),
        (with_changes(fixture(), booking__start="next Tuesday"), "starts_at"),
        (with_changes(fixture(), booking__start=1764745200), "starts_at"),
        (with_changes(fixture(), booking__id=...), "external_id"),
        (with_changes(fixture(), booking__id={"value": 1}), "external_id"),
        (with_changes(fixture(), event=...), "action"),
        (with_changes(fixture(), event="booking.exploded"), "action"),
        (with_changes(fixture(), booking__status="pending_payment"), "state"),
        (with_changes(fixture(), booking__timezone="Mars/Olympus"), "timezone"),
        (with_changes(fixture(), booking__updated_at="recently"), "version"),
        (with_changes(fixture(), patient__first_name={"ru": "Иван"}), "patient.first_name"),
        (with_changes(fixture(), service__name=[{"title": "Приём"}]), "services"),
        ([1, 2], "body"),
    ],
)
def test_payload_errors_name_the_field(mapping, body, field):
    with pytest.raises(PayloadError) as caught:
        parse_generic(body, mapping, "Europe/Moscow")
    assert caught.value.field == field
    if field != "body":
        assert str(caught.value).startswith(field)


def test_missing_start_names_the_expression(mapping):
    with pytest.raises(PayloadError, match="booking.start"):
        parse_generic(with_changes(fixture(), booking__start=...), mapping, "Europe/Moscow")


def test_runtime_expression_error_is_a_payload_error():
    raw = {**MINIMAL, "comment": "length(note)"}
    with pytest.raises(PayloadError) as caught:
        parse_generic({"id": "x", "start": "2026-12-03T10:00:00+03:00", "note": 5}, raw, "Europe/Moscow")
    assert caught.value.field == "comment"


# --- mapping errors --------------------------------------------------------------------------------

BASE_YAML = "external_id: booking.id\nstarts_at: booking.start\n"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (BASE_YAML + "start_at: booking.start\n", "start_at", "unknown key"),
        (BASE_YAML + "patient:\n  phon: patient.phone\n", "patient.phon", "unknown key"),
        (BASE_YAML + "doctor:\n  speciality: doctor.specialty\n", "doctor.speciality", "unknown key"),
        ("starts_at: booking.start\n", "external_id", "Missing"),
        ("external_id: booking.id\n", "starts_at", "Missing"),
        (BASE_YAML + "comment: booking.[comment\n", "comment", "invalid JMESPath"),
        (BASE_YAML + "patient:\n  phone: 'patient..phone'\n", "patient.phone", "invalid JMESPath"),
        (BASE_YAML + 'address: ""\n', "address", "empty"),
        (BASE_YAML + "address: 5\n", "address", "Not a valid string"),
        (BASE_YAML + "action: event\nactions:\n  booking.created: create\n", "actions", "not one of"),
        (BASE_YAML + "actions:\n  booking.created: upsert\n", "actions", "needs an 'action'"),
        (BASE_YAML + "state: s\nstates:\n  done: finished\n", "states", "not one of"),
        (BASE_YAML + "states:\n  done: attended\n", "states", "needs a 'state'"),
        (BASE_YAML + "patient:\n  sex: s\n  sexes:\n    m: man\n", "patient.sexes", "not one of"),
        (BASE_YAML + "patient:\n  sexes:\n    m: male\n", "patient.sexes", "needs a 'sex'"),
        (BASE_YAML + "phone_region: XX\n", "phone_region", "unknown phone region"),
    ],
)
def test_bad_mapping_fails_load_naming_file_and_key(tmp_path, text, key, words):
    path = write(tmp_path, text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert caught.value.key == key
    assert caught.value.source == str(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: ")
    assert words in message


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "must be a YAML object"), ("- a\n- b\n", "must be a YAML object"), ("a: [\n", "not valid YAML")],
)
def test_unusable_file_fails_load_naming_file(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(MappingError, match=words) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(str(path))
    assert caught.value.key is None


def test_missing_file(tmp_path):
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "absent.yaml")


def test_several_problems_are_all_reported(tmp_path):
    path = write(tmp_path, "external_id: a.[\nstart: b\n")
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert "external_id" in message and "start" in message and "starts_at" in message


def test_compile_mapping_is_what_load_mapping_uses():
    compiled = compile_mapping({**MINIMAL, "patient": {"sex": "s", "sexes": {3: "female"}}}, name="x")
    assert compiled.name == "x"
    assert set(compiled.expressions) == {"external_id", "starts_at", "patient.sex"}
    assert compiled.sexes["3"] is Sex.FEMALE and compiled.sexes["male"] is Sex.MALE
