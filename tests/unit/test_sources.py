"""The doors' registry, and the YCLIENTS branch check beside its parser (pure: no Flask, no database)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.entrypoints.bootstrap import MAPPINGS_DIR
from connector.sources import SOURCES
from connector.sources.errors import PayloadError
from connector.sources.generic import load_mappings
from connector.sources.yclients import check_company
from connector.tenants import demo_tenant
from tests.fixtures import sample

BRANCHES = frozenset({"512345", "77"})


@pytest.mark.parametrize(
    ("body", "company_ids"),
    [
        ({"company_id": 512345}, BRANCHES),
        ({"company_id": "77"}, BRANCHES),  # text or number: the same branch
        ({"company_id": 999}, frozenset()),  # the tenant names no branch: any is accepted
        ({"resource": "record"}, BRANCHES),  # the body names none: the parser judges it
        ([{"company_id": 999}], BRANCHES),  # not an object: the parser refuses it
    ],
)
def test_a_branch_of_the_tenant_passes(body, company_ids):
    check_company(body, company_ids)


@pytest.mark.parametrize("company_id", [999, "512346", None, {"id": 512345}, "x" * 500])
def test_another_branch_is_misrouted(company_id):
    with pytest.raises(PayloadError) as error:
        check_company({"company_id": company_id}, BRANCHES)
    assert error.value.field == "company_id"
    assert len(str(error.value)) < 200  # the sender's text is cut, not echoed whole


def test_every_door_reads_one_way_and_only_generic_takes_signatures():
    assert sorted(SOURCES) == ["amocrm", "bitrix24", "generic", "yclients"]
    assert {name: door.signed for name, door in SOURCES.items()} == {
        "yclients": False, "generic": True, "amocrm": False, "bitrix24": False}
    # A JSON door parses a body into one event; a CRM's names the entities the worker will fetch.
    assert {name: (door.parse is None) != (door.hints is None) for name, door in SOURCES.items()} == dict.fromkeys(
        SOURCES, True)
    assert [name for name, door in SOURCES.items() if not door.token_in_url] == ["bitrix24"]


def test_the_yclients_door_checks_the_branch_before_parsing():
    import json

    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    tenant = demo_tenant("a-long-enough-token-123")
    assert SOURCES["yclients"].parse(body, tenant, {}) is not None
    elsewhere = replace(tenant, sources={"yclients": {"company_id": 1}})
    with pytest.raises(PayloadError, match="not one of this tenant's branches"):
        SOURCES["yclients"].parse(body, elsewhere, {})


def test_the_generic_door_reads_with_the_tenants_mapping():
    import json

    body = json.loads(sample("generic", "booking_created.json").read_text(encoding="utf-8"))
    generic = load_mappings(MAPPINGS_DIR)["generic"]
    tenant = replace(demo_tenant("a-long-enough-token-123"), sources={"generic": {"mapping": "clinic"}})
    event = SOURCES["generic"].parse(body, tenant, {"clinic": generic})
    assert event is not None and event == SOURCES["generic"].parse(body, tenant, {"clinic": generic})
    with pytest.raises(KeyError):  # the mapping the tenant names, not the default one
        SOURCES["generic"].parse(body, tenant, {"generic": generic})
