"""Bitrix24's outgoing webhook read into hints, and the tenant's `sources.bitrix24` / `writeback.bitrix24` typed."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from marshmallow import ValidationError

from connector.sources.bitrix24 import parse_hints
from connector.sources.bitrix24_settings import (
    Bitrix24Schema,
    Bitrix24Source,
    Bitrix24Writeback,
    Bitrix24WritebackSchema,
)
from connector.sources.brackets import parse_form
from connector.sources.crm import Hint
from connector.sources.errors import PayloadError
from connector.sources.signatures import AuthError
from tests.fixtures import sample

TOKEN = "app-token-from-the-handler-settings"
URL = "https://clinic.bitrix24.ru/rest/1/s3cr3tc0de"
SETTINGS = Bitrix24Source(webhook_url=URL, application_token=TOKEN)


def sample_body() -> dict:
    return parse_form(sample("bitrix24", "deal_update_webhook.txt").read_bytes())


def form(event: str, *, token: str | None = TOKEN, **fields: str) -> dict:
    pairs = {"event": event, "ts": "1795766400", "auth[domain]": "clinic.bitrix24.ru", **fields}
    if token is not None:
        pairs["auth[application_token]"] = token
    return parse_form(urlencode(pairs).encode())


# --- hints ----------------------------------------------------------------------------------------------------


def test_the_sample_deal_update_is_one_hint_for_its_deal():
    assert parse_hints(sample_body(), SETTINGS) == [Hint("4455")]


@pytest.mark.parametrize(("event", "fields", "hint"), [
    ("ONCRMDEALADD", {"data[FIELDS][ID]": "17"}, Hint("17")),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID]": "0017"}, Hint("17")),
    ("ONCRMDEALMOVETOCATEGORY", {"data[FIELDS][ID]": "6675", "data[FIELDS][CATEGORY_ID]": "1"}, Hint("6675")),
    ("ONCRMDEALDELETE", {"data[FIELDS][ID]": "17"}, Hint("17", deleted=True)),
    ("onCrmDealUpdate", {"data[FIELDS][ID]": "17"}, Hint("17")),  # the case event.bind writes it in
    ("ONBOOKINGADD", {"data[ID]": "66"}, Hint("booking-66")),
    ("ONBOOKINGUPDATE", {"data[ID]": "66"}, Hint("booking-66")),
    ("ONBOOKINGDELETE", {"data[ID]": "66"}, Hint("booking-66", deleted=True)),
    ("ONBOOKINGUPDATE", {"data[FIELDS][ID]": "66"}, Hint("booking-66")),
    ("ONCRMCONTACTUPDATE", {"data[FIELDS][ID]": "6677"}, Hint("contact-6677")),  # its deals are read again
    ("ONCRMCONTACTADD", {"data[FIELDS][ID]": "6677"}, Hint("contact-6677")),
])
def test_deal_and_booking_events(event, fields, hint):
    assert parse_hints(form(event, **fields), SETTINGS) == [hint]


def test_a_booking_and_a_deal_with_the_same_number_are_different_bookings():
    deal = parse_hints(form("ONCRMDEALUPDATE", **{"data[FIELDS][ID]": "66"}), SETTINGS)
    booking = parse_hints(form("ONBOOKINGUPDATE", **{"data[ID]": "66"}), SETTINGS)
    assert deal[0].external_id != booking[0].external_id


@pytest.mark.parametrize("event", ["ONCRMCONTACTDELETE", "ONCRMLEADADD", "ONCRMDEALUSERFIELDADD", "ONTASKADD"])
def test_events_we_do_not_book_from_are_no_hints(event):
    assert parse_hints(form(event, **{"data[FIELDS][ID]": "17"}), SETTINGS) == []


def test_another_portals_token_is_refused_without_echoing_it():
    body = form("ONCRMDEALUPDATE", token="someone-elses-token", **{"data[FIELDS][ID]": "17"})
    with pytest.raises(AuthError) as caught:
        parse_hints(body, SETTINGS)
    assert "someone-elses-token" not in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize("body", [
    form("ONCRMDEALUPDATE", token=None, **{"data[FIELDS][ID]": "17"}),
    form("ONCRMDEALUPDATE", token="", **{"data[FIELDS][ID]": "17"}),
    {"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "17"}}, "auth": "x"},
    {},
])
def test_a_body_without_the_token_is_refused(body):
    with pytest.raises(AuthError):
        parse_hints(body, SETTINGS)


def test_the_token_is_checked_before_anything_else():
    with pytest.raises(AuthError):
        parse_hints({"auth": {"application_token": "wrong"}}, SETTINGS)


@pytest.mark.parametrize(("event", "fields", "field"), [
    ("", {"data[FIELDS][ID]": "17"}, "event"),
    ("ONCRMDEALUPDATE", {}, "data[FIELDS][ID]"),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID]": "abc"}, "data[FIELDS][ID]"),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID]": "0"}, "data[FIELDS][ID]"),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID]": "-5"}, "data[FIELDS][ID]"),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID]": "1" * 19}, "data[FIELDS][ID]"),
    ("ONCRMDEALUPDATE", {"data[FIELDS][ID][0]": "17"}, "data[FIELDS][ID]"),
    ("ONBOOKINGUPDATE", {}, "data[ID]"),
    ("ONBOOKINGUPDATE", {"data[ID]": "x"}, "data[ID]"),
])
def test_malformed_bodies_name_the_field(event, fields, field):
    with pytest.raises(PayloadError) as caught:
        parse_hints(form(event, **fields), SETTINGS)
    assert caught.value.field == field


def test_a_body_that_is_not_a_form_is_malformed():
    with pytest.raises(PayloadError):
        parse_hints([], SETTINGS)  # type: ignore[arg-type]


# --- settings -------------------------------------------------------------------------------------------------


def test_settings_with_defaults_and_a_trailing_slash_dropped():
    loaded = Bitrix24Schema().load({"webhook_url": URL + "/", "application_token": TOKEN})
    assert loaded == Bitrix24Source(webhook_url=URL, application_token=TOKEN, mapping="bitrix24", timeout=None)


def test_settings_never_show_the_secrets():
    loaded = Bitrix24Schema().load({"webhook_url": URL, "application_token": TOKEN, "mapping": "clinic_b24",
                                    "timeout": [3, 10]})
    assert "s3cr3tc0de" not in repr(loaded) and TOKEN not in repr(loaded)
    assert (loaded.mapping, loaded.timeout) == ("clinic_b24", [3, 10])


@pytest.mark.parametrize(("settings", "key"), [
    ({"application_token": TOKEN}, "webhook_url"),
    ({"webhook_url": URL}, "application_token"),
    ({"webhook_url": URL, "application_token": "  "}, "application_token"),
    ({"webhook_url": "clinic.bitrix24.ru/rest/1/s3cr3tc0de", "application_token": TOKEN}, "webhook_url"),
    ({"webhook_url": "ftp://clinic.bitrix24.ru/rest/1/s3cr3tc0de", "application_token": TOKEN}, "webhook_url"),
    ({"webhook_url": "https://clinic.bitrix24.ru/", "application_token": TOKEN}, "webhook_url"),
    ({"webhook_url": URL + "?auth=s3cr3tc0de", "application_token": TOKEN}, "webhook_url"),
    ({"webhook_url": URL, "application_token": TOKEN, "mapping": ""}, "mapping"),
    ({"webhook_url": URL, "application_token": TOKEN, "timeout": 0}, "timeout"),
    ({"webhook_url": URL, "application_token": TOKEN, "webhok_url": URL}, "webhok_url"),
])
def test_bad_settings_name_the_key_and_never_quote_the_url(settings, key):
    with pytest.raises(ValidationError) as caught:
        Bitrix24Schema().load(settings)
    assert key in caught.value.messages
    assert "s3cr3tc0de" not in str(caught.value.messages)


def test_writeback_settings():
    assert Bitrix24WritebackSchema().load({}) == Bitrix24Writeback(comment=True, field=None)
    assert Bitrix24WritebackSchema().load({"comment": False, "field": "UF_CRM_1725365197399"}) == \
        Bitrix24Writeback(comment=False, field="UF_CRM_1725365197399")


@pytest.mark.parametrize(("settings", "key"), [
    ({"field": "ufCrm_1725365197399"}, "field"),
    ({"field": "TITLE"}, "field"),
    ({"comment": "yes please"}, "comment"),
    ({"comment": False}, "_schema"),
    ({"note": True}, "note"),
])
def test_bad_writeback_settings(settings, key):
    with pytest.raises(ValidationError) as caught:
        Bitrix24WritebackSchema().load(settings)
    assert key in caught.value.messages
