"""The Bitrix24 mapping file: the shipped one maps the samples as the issue says; every error names its key."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.core.intake import content_hash
from connector.core.model import BookingState, EventAction
from connector.sources.bitrix24 import map_booking, map_deal
from connector.sources.bitrix24_mapping import Bitrix24Mapping, check_writeback_field, load_bitrix24_mapping
from connector.sources.errors import PayloadError
from connector.sources.generic import load_mappings
from connector.sources.mapping import MappingError
from tests.fixtures import sample

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
MSK = timezone(timedelta(hours=3))
TZ = "Europe/Moscow"
WRITEBACK_FIELD = "UF_CRM_1725365197399"


def shipped_raw() -> dict[str, Any]:
    return yaml.safe_load((MAPPINGS / "bitrix24.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def mapping() -> Bitrix24Mapping:
    return load_bitrix24_mapping(shipped_raw(), source="mappings/bitrix24.yaml", name="bitrix24")


def deal(**changes: Any) -> dict[str, Any]:
    """The sample deal with fields replaced (a value of ... removes the field)."""
    item = copy.deepcopy(json.loads(sample("bitrix24", "crm_item_get_deal_4455.json").read_text("utf-8")))
    item = item["result"]["item"]
    for key, value in changes.items():
        if value is ...:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def contact(**changes: Any) -> dict[str, Any]:
    result = json.loads(sample("bitrix24", "crm_contact_get_6677.json").read_text("utf-8"))["result"]
    return {**result, **changes}


def load(**changes: Any) -> Bitrix24Mapping:
    raw = shipped_raw()
    for key, value in changes.items():
        *parents, last = key.split("__")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return load_bitrix24_mapping(raw, source="clinic.yaml", name="clinic")


# --- the shipped mapping and the samples --------------------------------------------------------------------


def test_the_shipped_mapping_maps_the_sample_deal_and_contact(mapping):
    event = map_deal(deal(), contact(), mapping, TZ)
    assert event is not None
    assert (event.action, event.external_id) == (EventAction.UPSERT, "4455")
    assert event.version == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert event.version.tzinfo is UTC
    facts = event.facts
    assert facts.external_id == "4455"
    assert facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)
    assert facts.state is BookingState.ACTIVE  # stage C1:PREPARATION, semantics P
    assert facts.timezone is None  # the tenant's zone
    assert facts.patient.phone == "+79161234564"
    assert (facts.patient.first_name, facts.patient.last_name, facts.patient.patronymic) == (
        "Иван", "Смирнов", "Петрович")
    assert facts.patient.external_id == "6677"
    assert facts.doctor_name == "Иванов Сергей Петрович"
    assert facts.services == ("Приём кардиолога первичный",)
    assert facts.address == "ул. Лесная, д. 5"
    assert (facts.doctor_specialty, facts.branch_id, facts.comment, facts.preparation) == (None, None, None, None)


@pytest.mark.parametrize(("changes", "state"), [
    ({"stageSemanticId": "P", "stageId": "C1:NEW"}, BookingState.ACTIVE),
    ({"stageSemanticId": "F", "stageId": "C1:LOSE"}, BookingState.CANCELLED),
    ({"stageSemanticId": "S", "stageId": "C1:WON"}, BookingState.ATTENDED),  # by stage id
    ({"stageSemanticId": "p", "stageId": "C1:NEW"}, BookingState.ACTIVE),
    ({"stageSemanticId": "S", "stageId": "C1:OTHER_WIN"}, None),  # S is not mapped: not ours
    ({"stageSemanticId": ..., "stageId": ...}, None),
])
def test_stages_of_the_shipped_mapping(mapping, changes, state):
    event = map_deal(deal(**changes), contact(), mapping, TZ)
    assert (event.facts.state if event else None) is state


def test_a_stage_id_wins_over_its_semantics():
    mapping = load(stage_ids={"C1:PREPARATION": "no_show"})
    assert map_deal(deal(), contact(), mapping, TZ).facts.state is BookingState.NO_SHOW


def test_categories_limit_the_pipelines_read():
    mapping = load(categories=[1])
    assert map_deal(deal(categoryId=1), contact(), mapping, TZ) is not None
    assert map_deal(deal(categoryId="1"), contact(), mapping, TZ) is not None
    assert map_deal(deal(categoryId=0), contact(), mapping, TZ) is None


def test_a_deal_without_a_visit_time_yet_is_no_booking(mapping):
    for empty in ("", None, ..., []):
        assert map_deal(deal(UF_CRM_1725365197310=empty), contact(), mapping, TZ) is None


def test_the_write_back_field_changes_no_fact(mapping):
    # The echo of our own write (ONCRMDEALUPDATE) re-reads the deal with the field set: same facts, a duplicate.
    without = map_deal(deal(), contact(), mapping, TZ)
    written = map_deal(deal(**{WRITEBACK_FIELD: "Напоминание доставлено в MAX 02.12 18:02"}), contact(), mapping, TZ)
    assert written.facts == without.facts
    assert content_hash(written.facts) == content_hash(without.facts)
    assert not mapping.reads(WRITEBACK_FIELD)
    check_writeback_field(mapping, WRITEBACK_FIELD, source="mappings/bitrix24.yaml")


def test_a_mapping_that_reads_the_write_back_field_is_refused_at_start_up():
    mapping = load(deal__comment=f"join(' ', [comments, {WRITEBACK_FIELD}])")
    assert mapping.reads(WRITEBACK_FIELD)
    with pytest.raises(MappingError) as caught:
        check_writeback_field(mapping, WRITEBACK_FIELD, source="clinic.yaml")
    assert caught.value.key == "deal.comment"


def test_without_a_contact_the_booking_keeps_its_facts(mapping):
    event = map_deal(deal(contactId=0), None, mapping, TZ)
    assert event.facts.patient.phone is None and event.facts.doctor_name == "Иванов Сергей Петрович"


@pytest.mark.parametrize(("phones", "expected"), [
    ([{"VALUE": "8 (916) 123-45-60", "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"},
      {"VALUE": "+7 916 123-45-62", "VALUE_TYPE": "MOBILE", "TYPE_ID": "PHONE"}], "+79161234562"),
    ([{"VALUE": "8 (916) 123-45-60", "VALUE_TYPE": "WORK", "TYPE_ID": "PHONE"}], "+79161234560"),
    ([], None),
    (None, None),
])
def test_the_mobile_number_is_preferred(mapping, phones, expected):
    assert map_deal(deal(), contact(PHONE=phones), mapping, TZ).facts.patient.phone == expected


def test_multiple_fields_and_numbers_read_as_text():
    mapping = load(deal__doctor="UF_CRM_D", deal__services="UF_CRM_S", deal__branch_id="categoryId",
                   deal__duration_minutes="UF_CRM_M", deal__timezone="UF_CRM_Z")
    event = map_deal(deal(UF_CRM_D=["Иванов С. П.", "Петрова А. А."], UF_CRM_S=["ЭКГ", "", "Приём"], UF_CRM_M="30",
                          UF_CRM_Z="Asia/Yekaterinburg", UF_CRM_1725365197310="2026-12-03T12:00:00"),
                     contact(), mapping, TZ)
    facts = event.facts
    assert facts.doctor_name == "Иванов С. П., Петрова А. А."
    assert facts.services == ("ЭКГ", "Приём")
    assert facts.branch_id == "1"
    assert facts.duration == timedelta(minutes=30)
    assert facts.timezone == "Asia/Yekaterinburg"
    assert facts.starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)  # naive: read in the deal's zone


def test_long_texts_are_fitted_not_refused():
    mapping = load(deal__comment="UF_CRM_C")
    assert len(map_deal(deal(UF_CRM_C="к" * 10_000), contact(), mapping, TZ).facts.comment) == 4000


@pytest.mark.parametrize(("changes", "field"), [
    ({"UF_CRM_1725365197310": "2026-12-03"}, "deal.starts_at"),  # a date field: no hour
    ({"UF_CRM_1725365197310": "завтра в 10"}, "deal.starts_at"),
    ({"UF_CRM_1725365197310": 1796281200}, "deal.starts_at"),
    ({"UF_CRM_1725365197310": "9999-12-03T10:00:00+03:00"}, "deal.starts_at"),
    ({"updatedTime": "вчера"}, "updatedTime"),
    ({"id": ...}, "id"),
    ({"UF_CRM_1725365197311": {"id": 5}}, "deal.doctor"),
])
def test_unreadable_deals_name_the_field(mapping, changes, field):
    with pytest.raises(PayloadError) as caught:
        map_deal(deal(**changes), contact(), mapping, TZ)
    assert caught.value.field == field


@pytest.mark.parametrize(("changes", "field"), [
    ({"deal__timezone": "UF_CRM_Z"}, "deal.timezone"),
    ({"deal__duration_minutes": "UF_CRM_Z"}, "deal.duration_minutes"),
])
def test_bad_zone_and_duration_name_the_key(changes, field):
    with pytest.raises(PayloadError) as caught:
        map_deal(deal(UF_CRM_Z="Mars/Olympus"), contact(), load(**changes), TZ)
    assert caught.value.field == field


# --- the booking module -------------------------------------------------------------------------------------

BOOKING = {"id": 66, "name": "booking 1", "description": None, "resourceIds": [1, 2],
           "datePeriod": {"from": {"timestamp": 1796281200, "timezone": "Asia/Yekaterinburg"},
                          "to": {"timestamp": 1796283000, "timezone": "Asia/Yekaterinburg"}}}


def test_a_booking_of_the_booking_module_is_read_only_when_the_mapping_says_so(mapping):
    assert map_booking(BOOKING, contact(), mapping, TZ) is None
    event = map_booking(BOOKING, contact(), load(booking_module=True), TZ)
    assert (event.action, event.external_id, event.version) == (EventAction.UPSERT, "booking-66", None)
    facts = event.facts
    assert facts.starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert facts.timezone == "Asia/Yekaterinburg"
    assert facts.duration == timedelta(minutes=30)
    assert facts.state is BookingState.ACTIVE
    assert facts.patient.phone == "+79161234564"


@pytest.mark.parametrize(("booking", "field"), [
    ({**BOOKING, "datePeriod": {}}, "datePeriod.from.timestamp"),
    ({**BOOKING, "datePeriod": {"from": {"timestamp": "soon"}}}, "datePeriod.from.timestamp"),
    ({**BOOKING, "datePeriod": {"from": {"timestamp": 1796281200, "timezone": "Nowhere/City"}}},
     "datePeriod.from.timezone"),
    ({**BOOKING, "id": None}, "id"),
])
def test_unreadable_bookings_name_the_field(booking, field):
    with pytest.raises(PayloadError) as caught:
        map_booking(booking, None, load(booking_module=True), TZ)
    assert caught.value.field == field


# --- loading ------------------------------------------------------------------------------------------------


def test_the_generic_loader_leaves_the_bitrix24_file_to_its_own_loader():
    assert "bitrix24" not in load_mappings(MAPPINGS) and "generic" in load_mappings(MAPPINGS)


@pytest.mark.parametrize(("changes", "key"), [
    ({"source": "amocrm"}, "source"),
    ({"source": ...}, "source"),
    ({"deal": ...}, "deal"),
    ({"deal__starts_at": ...}, "deal.starts_at"),
    ({"deal__starts_at": "UF_CRM_[1"}, "deal.starts_at"),
    ({"deal__starts_at": "  "}, "deal.starts_at"),
    ({"deal__doctr": "UF_CRM_1"}, "deal.doctr"),
    ({"contact__phone": "PHONE[?"}, "contact.phone"),
    ({"contact__email": "EMAIL"}, "contact.email"),
    ({"stage_semantics": {"X": "active"}}, "stage_semantics"),
    ({"stage_semantics": {"P": "booked"}}, "stage_semantics"),
    ({"stage_semantics": "P"}, "stage_semantics"),
    ({"stage_semantics": ..., "stage_ids": ...}, "stage_semantics"),
    ({"stage_ids": {"C1:NEW": "maybe"}}, "stage_ids"),
    ({"categories": ["first"]}, "categories"),
    ({"categories": []}, "categories"),
    ({"booking_module": "sometimes"}, "booking_module"),
    ({"phone_region": "XX"}, "phone_region"),
    ({"pipeline": 1}, "pipeline"),
])
def test_every_mapping_error_names_its_key(changes, key):
    with pytest.raises(MappingError) as caught:
        load(**changes)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"clinic.yaml: {key}: ")


def test_a_mapping_that_is_not_an_object():
    with pytest.raises(MappingError, match="clinic.yaml: the mapping must be a YAML object"):
        load_bitrix24_mapping(["source", "bitrix24"], source="clinic.yaml", name="clinic")


def test_stage_semantics_alone_or_stage_ids_alone_will_do():
    assert load(stage_ids=...).stage_ids == {}
    only_ids = load(stage_semantics=..., stage_ids={"C1:NEW": "active"})
    assert only_ids.state_of(deal(stageId="C1:NEW")) is BookingState.ACTIVE
    assert only_ids.state_of(deal()) is None
