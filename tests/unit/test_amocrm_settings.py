"""`sources.amocrm` and `writeback.amocrm` of a tenant: typed at start-up, a typo named by its key."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from connector.sources.amocrm_settings import (
    AmocrmOAuth,
    AmocrmSchema,
    AmocrmSource,
    AmocrmWriteback,
    AmocrmWritebackSchema,
)

OAUTH = {"client_id": "id-1", "client_secret": "secret-1", "redirect_uri": "https://connector.example/amo",
         "refresh_token": "refresh-1"}


def test_a_long_lived_token_and_the_defaults():
    source = AmocrmSchema().load({"subdomain": "Clinic", "token": "long-lived-token"})
    assert source == AmocrmSource(subdomain="clinic", token="long-lived-token")
    assert source.api_base == "https://clinic.amocrm.ru" and source.mapping == "amocrm"
    assert "long-lived-token" not in repr(source)


def test_oauth_settings_and_a_stand_in_base_url():
    source = AmocrmSchema().load({"subdomain": "clinic", "base_url": "http://127.0.0.1:5000/", "token": OAUTH,
                                  "mapping": "clinic_amocrm", "timeout": [2, 10]})
    assert source.oauth == AmocrmOAuth(**OAUTH) and source.token is None
    assert source.api_base == "http://127.0.0.1:5000" and source.mapping == "clinic_amocrm"
    assert "secret-1" not in repr(source.oauth) and "refresh-1" not in repr(source.oauth)


@pytest.mark.parametrize(("block", "key"), [
    ({"token": "t"}, "subdomain"),
    ({"subdomain": "clinic"}, "token"),
    ({"subdomain": "clinic", "token": ""}, "token"),
    ({"subdomain": "clinic", "token": 5}, "token"),
    ({"subdomain": "clinic", "token": {**OAUTH, "client_secret": ""}}, "token"),
    ({"subdomain": "clinic", "token": {"client_id": "x"}}, "token"),
    ({"subdomain": "clinic.amocrm.ru", "token": "t"}, "subdomain"),
    ({"subdomain": "clinic", "token": "t", "base_url": "not a url"}, "base_url"),
    ({"subdomain": "clinic", "token": "t", "timeout": 0}, "timeout"),
    ({"subdomain": "clinic", "token": "t", "mapping": ""}, "mapping"),
    ({"subdomain": "clinic", "token": "t", "subdomian": "x"}, "subdomian"),
])
def test_a_bad_key_is_named(block, key):
    with pytest.raises(ValidationError) as caught:
        AmocrmSchema().load(block)
    assert key in caught.value.messages


def test_the_writeback_block():
    assert AmocrmWritebackSchema().load({}) == AmocrmWriteback(note=True, field_id=None)
    assert AmocrmWritebackSchema().load({"note": False, "field_id": 801299}) == AmocrmWriteback(False, 801299)
    for bad in ({"field_id": "801299x"}, {"field_id": 0}, {"comment": True}):
        with pytest.raises(ValidationError):
            AmocrmWritebackSchema().load(bad)
