"""The amoCRM mapping file (every error names its key), the shipped mappings/amocrm.yaml, and leads mapped
through it as the issue says: statuses to states, custom fields to the visit, the main contact to the patient."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, SourceEvent
from connector.entrypoints.bootstrap import MAPPINGS_DIR
from connector.sources.amocrm import lead_event, main_contact_id
from connector.sources.amocrm_mapping import load_amocrm_mapping
from connector.sources.errors import PayloadError
from connector.sources.generic import load_mappings
from connector.sources.mapping import MappingError
from tests.fixtures import sample

SHIPPED = MAPPINGS_DIR / "amocrm.yaml"
MINIMAL = {"source": "amocrm", "pipelines": {7001: {"booked": [55501]}}, "lead_fields": {"starts_at": 801234}}


def shipped():
    return load_amocrm_mapping(yaml.safe_load(SHIPPED.read_text(encoding="utf-8")), source=str(SHIPPED),
                               name="amocrm")


def load(name: str) -> dict:
    return json.loads(sample("amocrm", name).read_text(encoding="utf-8"))


LEAD, CONTACT = load("lead_24681357.json"), load("contact_11223344.json")


def with_status(status_id: int, lead: dict | None = None) -> dict:
    changed = copy.deepcopy(lead or LEAD)
    changed["status_id"] = status_id
    return changed


def with_field(field_id: int, value, lead: dict | None = None) -> dict:
    changed = copy.deepcopy(lead or LEAD)
    for field in changed["custom_fields_values"]:
        if field["field_id"] == field_id:
            field["values"] = [] if value is None else [{"value": value}]
    return changed


# --- the shipped file -------------------------------------------------------------------------------------------


def test_the_shipped_mapping_maps_the_sample_lead_and_contact():
    event = lead_event(LEAD, CONTACT, shipped(), "Europe/Moscow")
    assert event == SourceEvent(
        EventAction.UPSERT, "24681357", datetime(2026, 11, 27, 8, 0, tzinfo=UTC),
        BookingFacts(
            external_id="24681357",
            starts_at=datetime(2026, 12, 3, 7, 0, tzinfo=UTC),  # 10:00 in Moscow
            state=BookingState.ACTIVE,
            patient=Patient(phone="+79161234562", first_name="Иван", last_name="Смирнов",
                            external_id="11223344"),
            doctor_name="Иванов Сергей Петрович",
            doctor_specialty="Кардиолог",
            services=("Приём кардиолога первичный",),
            branch_id="4401",
            address="ул. Лесная, д. 5",
        ))


@pytest.mark.parametrize(("status_id", "state"), [(55501, BookingState.ACTIVE), (143, BookingState.CANCELLED),
                                                  (142, BookingState.ATTENDED)])
def test_the_shipped_statuses_give_their_states(status_id, state):
    event = lead_event(with_status(status_id), CONTACT, shipped(), "Europe/Moscow")
    assert event is not None and event.facts is not None and event.facts.state is state


def test_a_status_the_mapping_does_not_list_is_no_booking_of_ours():
    assert lead_event(with_status(55500), CONTACT, shipped(), "Europe/Moscow") is None
    other_pipeline = {**LEAD, "pipeline_id": 7002}
    assert lead_event(other_pipeline, CONTACT, shipped(), "Europe/Moscow") is None


def test_the_generic_loader_leaves_the_amocrm_file_to_its_own_loader():
    assert "amocrm" not in load_mappings(MAPPINGS_DIR) and "generic" in load_mappings(MAPPINGS_DIR)


# --- mapping leads ----------------------------------------------------------------------------------------------


def test_a_deleted_lead_is_a_delete_with_its_change_time():
    event = lead_event({**LEAD, "is_deleted": True}, None, shipped(), "Europe/Moscow")
    assert event == SourceEvent(EventAction.DELETE, "24681357", datetime(2026, 11, 27, 8, 0, tzinfo=UTC), None)


def test_a_lost_lead_whose_time_was_cleared_is_a_delete():
    lead = with_field(801234, None, with_status(143))
    event = lead_event(lead, CONTACT, shipped(), "Europe/Moscow")
    assert event is not None and event.action is EventAction.DELETE


def test_a_booked_lead_without_a_visit_time_is_refused_naming_the_field():
    with pytest.raises(PayloadError) as caught:
        lead_event(with_field(801234, None), CONTACT, shipped(), "Europe/Moscow")
    assert caught.value.field == "starts_at"


@pytest.mark.parametrize(("value", "expected"), [
    (1796281200, datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    ("1796281200", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    ("2026-12-03T10:00:00+03:00", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
    ("2026-12-03T10:00:00", datetime(2026, 12, 3, 5, 0, tzinfo=UTC)),  # no offset: the clinic's zone (+05:00)
])
def test_the_visit_time_is_read_as_unix_seconds_or_rfc3339(value, expected):
    event = lead_event(with_field(801234, value), CONTACT, shipped(), "Asia/Yekaterinburg")
    assert event is not None and event.facts is not None and event.facts.starts_at == expected


@pytest.mark.parametrize("value", ["завтра в 10", True, "99999999999999"])
def test_a_visit_time_that_is_no_time_is_refused(value):
    with pytest.raises(PayloadError) as caught:
        lead_event(with_field(801234, value), CONTACT, shipped(), "Europe/Moscow")
    assert caught.value.field == "starts_at"


def test_a_lead_without_updated_at_is_refused():
    lead = {key: value for key, value in LEAD.items() if key != "updated_at"}
    with pytest.raises(PayloadError) as caught:
        lead_event(lead, CONTACT, shipped(), "Europe/Moscow")
    assert caught.value.field == "updated_at"


def test_a_lead_without_contact_or_fields_still_maps_what_it_has():
    lead = {**with_field(801234, 1796281200), "custom_fields_values": [LEAD["custom_fields_values"][0]]}
    event = lead_event(lead, None, shipped(), "Europe/Moscow")
    assert event is not None and event.facts is not None
    assert event.facts.patient == Patient() and event.facts.doctor_name is None and event.facts.branch_id is None


def test_a_contact_with_only_a_full_name_is_greeted_by_it():
    contact = {**CONTACT, "first_name": "", "last_name": None}
    event = lead_event(LEAD, contact, shipped(), "Europe/Moscow")
    assert event is not None and event.facts is not None
    assert event.facts.patient.first_name == "Смирнов Иван Петрович" and event.facts.patient.last_name is None


@pytest.mark.parametrize(("name", "expected"), [
    ("Смирнов Иван Петрович", ("Иван", "Смирнов", "Петрович")),
    ("Смирнов Иван", ("Иван", "Смирнов", None)),
    ("Иван", ("Иван", None, None)),
])
def test_a_full_name_is_read_as_fio_when_the_mapping_says_so(name, expected):
    mapping = load_amocrm_mapping({**MINIMAL, "contact_fields": {"name": "fio"}}, source="m", name="m")
    contact = {**CONTACT, "name": name, "first_name": "Smth", "last_name": "Else"}
    event = lead_event(with_status(55501), contact, mapping, "Europe/Moscow")
    assert event is not None and event.facts is not None
    patient = event.facts.patient
    assert (patient.first_name, patient.last_name, patient.patronymic) == expected


def test_amocrm_null_custom_fields_read_as_none():
    contact = {**CONTACT, "custom_fields_values": None}
    event = lead_event(LEAD, contact, shipped(), "Europe/Moscow")
    assert event is not None and event.facts is not None and event.facts.patient.phone is None


def test_optional_fields_of_a_fuller_mapping():
    mapping = load_amocrm_mapping({**MINIMAL, "lead_fields": {
        "starts_at": 801234, "duration_minutes": 900, "comment": 901, "address": 902, "branch": 801238,
        "service": 903}, "contact_fields": {"phone": 100, "patronymic": 904}}, source="m", name="m")
    lead = copy.deepcopy(LEAD)
    lead["custom_fields_values"] += [
        {"field_id": 900, "values": [{"value": "30"}]}, {"field_id": 901, "values": [{"value": " Натощак "}]},
        {"field_id": 902, "values": [{"value": "ул. Садовая, 1"}]},
        {"field_id": 903, "values": [{"value": "ЭКГ"}, {"value": "Эхо"}]}]
    contact = copy.deepcopy(CONTACT)
    contact["custom_fields_values"].append({"field_id": 904, "values": [{"value": "Петрович"}]})
    event = lead_event(lead, contact, mapping, "Europe/Moscow")
    assert event is not None and event.facts is not None
    facts = event.facts
    assert (facts.duration, facts.comment, facts.address, facts.branch_id, facts.services) == (
        timedelta(minutes=30), "Натощак", "ул. Садовая, 1", "4401", ("ЭКГ", "Эхо"))
    assert (facts.patient.phone, facts.patient.patronymic) == ("+79161234562", "Петрович")


def test_a_duration_that_is_no_number_is_refused():
    mapping = load_amocrm_mapping({**MINIMAL, "lead_fields": {"starts_at": 801234, "duration_minutes": 801235}},
                                  source="m", name="m")
    with pytest.raises(PayloadError) as caught:
        lead_event(with_status(55501), None, mapping, "Europe/Moscow")
    assert caught.value.field == "duration_minutes"


def test_the_main_contact_is_the_one_marked_main_else_the_first():
    def lead(*contacts):
        return {"_embedded": {"contacts": list(contacts)}}

    assert main_contact_id(lead({"id": 1, "is_main": False}, {"id": 2, "is_main": True})) == "2"
    assert main_contact_id(lead({"id": 3}, {"id": 4})) == "3"
    assert main_contact_id(lead()) is None and main_contact_id({}) is None


# --- the file's errors name their keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "key"), [
    ({"source": "bitrix24"}, "source"),
    ({"source": None}, "source"),
    ({"pipelines": {}}, "pipelines"),
    ({"pipelines": {"воронка": {"booked": [1]}}}, "pipelines.воронка"),
    ({"pipelines": {7001: []}}, "pipelines.7001"),
    ({"pipelines": {7001: {"bookd": [55501]}}}, "pipelines.7001.bookd"),
    ({"pipelines": {7001: {"booked": ["пятьдесят"]}}}, "pipelines.7001.booked"),
    ({"pipelines": {7001: {"booked": [55501], "cancelled": [55501]}}}, "pipelines.7001.cancelled"),
    ({"lead_fields": {}}, "lead_fields.starts_at"),
    ({"lead_fields": {"starts_at": 801234, "docter": 801235}}, "lead_fields.docter"),
    ({"lead_fields": {"starts_at": -5}}, "lead_fields.starts_at"),
    ({"lead_fields": {"starts_at": 801234, "doctor": [1]}}, "lead_fields.doctor"),
    ({"contact_fields": {"phone": ""}}, "contact_fields.phone"),
    ({"contact_fields": {"email": "EMAIL"}}, "contact_fields.email"),
    ({"contact_fields": {"name": "surname_first"}}, "contact_fields.name"),
    ({"phone_region": "XX"}, "phone_region"),
    ({"statuses": {}}, "statuses"),
])
def test_every_mapping_error_names_its_key(change, key):
    raw = {**MINIMAL, **change}
    if change.get("lead_fields") == {}:
        raw["lead_fields"] = {}
    with pytest.raises(MappingError) as caught:
        load_amocrm_mapping(raw, source="mappings/clinic.yaml", name="clinic")
    assert caught.value.key == key and caught.value.source == "mappings/clinic.yaml"
    assert str(caught.value).startswith(f"mappings/clinic.yaml: {key}: ")


@pytest.mark.parametrize("missing", ["source", "pipelines", "lead_fields"])
def test_a_missing_required_key_is_named(missing):
    raw = {key: value for key, value in MINIMAL.items() if key != missing}
    with pytest.raises(MappingError) as caught:
        load_amocrm_mapping(raw, source="m", name="m")
    assert caught.value.key == missing


def test_a_mapping_that_is_not_an_object_is_refused():
    with pytest.raises(MappingError):
        load_amocrm_mapping(["source: amocrm"], source="m", name="m")


def test_statuses_may_be_one_id_or_text_ids():
    mapping = load_amocrm_mapping({**MINIMAL, "pipelines": {"7001": {"booked": "55501", "no_show": 55504}}},
                                  source="m", name="m")
    assert mapping.state_of(7001, 55501) is BookingState.ACTIVE
    assert mapping.state_of("7001", "55504") is BookingState.NO_SHOW
    assert mapping.state_of(None, 55501) is None


def test_the_shipped_file_is_commented_for_an_administrator():
    text = Path(SHIPPED).read_text(encoding="utf-8")
    keyed = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
             and ":" in line and not line.strip().endswith(":")]
    assert keyed and all("#" in line for line in keyed if not line.startswith(("source", "phone_region")))
