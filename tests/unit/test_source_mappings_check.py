"""Start-up refuses a tenant whose source names a mapping it cannot read with: a missing file, a file written for
another source, a Bitrix24 write-back field that the mapping reads as a fact (its echo would plan again)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.entrypoints.bootstrap import MAPPINGS_DIR, check_mappings
from connector.sources.mapping import load_mappings
from connector.tenants import TenantConfigError, demo_tenant

MAPPINGS = load_mappings(MAPPINGS_DIR)
BITRIX = {"webhook_url": "https://clinic.bitrix24.ru/rest/1/c0de", "application_token": "app-token"}
AMO = {"subdomain": "clinic", "token": "long-lived"}


def tenant(sources: dict, writeback: dict | None = None):
    return replace(demo_tenant("a-long-enough-token-123"), sources=sources, writeback_block=writeback)


def test_the_shipped_mappings_serve_their_sources():
    check_mappings(tenant({"amocrm": AMO, "bitrix24": BITRIX, "generic": {"mapping": "generic"}},
                          {"bitrix24": {"comment": True, "field": "UF_CRM_NOTIFY"}}), MAPPINGS)


@pytest.mark.parametrize(("sources", "words"), [
    ({"amocrm": {**AMO, "mapping": "clinic_x"}}, "sources.amocrm.mapping names 'clinic_x', but mappings/ has only"),
    ({"amocrm": {**AMO, "mapping": "bitrix24"}}, "'bitrix24', which is not a mapping for amocrm"),
    ({"bitrix24": {**BITRIX, "mapping": "generic"}}, "'generic', which is not a mapping for bitrix24"),
    ({"generic": {"mapping": "amocrm"}}, "'amocrm', which is not a mapping for generic"),
])
def test_a_mapping_of_the_wrong_kind_or_none_stops_the_start(sources, words):
    with pytest.raises(TenantConfigError, match="tenant demo: ") as error:
        check_mappings(tenant(sources), MAPPINGS)
    assert words in str(error.value)


def test_a_write_back_field_the_mapping_reads_stops_the_start():
    with pytest.raises(TenantConfigError, match=r"deal.starts_at: reads UF_CRM_1725365197310"):
        check_mappings(tenant({"bitrix24": BITRIX}, {"bitrix24": {"field": "UF_CRM_1725365197310"}}), MAPPINGS)
