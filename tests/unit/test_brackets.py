"""PHP bracket forms as amoCRM and Bitrix24 post them, read into nested JSON."""

from __future__ import annotations

import pytest

from connector.sources.brackets import MAX_DEPTH, FormError, parse_form
from tests.fixtures import sample


def test_the_amocrm_sample_reads_as_its_v2_shape():
    body = parse_form(sample("amocrm", "lead_status_webhook.txt").read_bytes().strip())
    [lead] = body["leads"]["status"]
    assert (lead["id"], lead["status_id"], lead["pipeline_id"]) == ("24681357", "55501", "7001")
    assert lead["custom_fields"][0]["values"] == ["1796281200"]
    assert body["account"] == {"subdomain": "clinic", "id": "31415926", "_links": {"self": "https://clinic.amocrm.ru"}}


def test_the_bitrix24_sample_reads_with_its_auth():
    body = parse_form(sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip())
    assert body["event"] == "ONCRMDEALUPDATE" and body["data"] == {"FIELDS": {"ID": "4455"}}
    assert body["auth"]["application_token"] == "app-token-from-the-handler-settings"


@pytest.mark.parametrize(("raw", "expected"), [
    (b"leads[add][1][id]=2&leads[add][0][id]=1", {"leads": {"add": [{"id": "1"}, {"id": "2"}]}}),  # index order
    (b"a[]=x&a[]=y", {"a": ["x", "y"]}),  # empty brackets append
    (b"a[0]=x&a[b]=y", {"a": {"0": "x", "b": "y"}}),  # mixed keys stay a mapping
    (b"a=1&a[b]=2", {"a": {"b": "2"}}),  # a parent wins over a plain value, whichever comes first
    (b"a[b]=2&a=1", {"a": {"b": "2"}}),
    (b"a[b]x[c]=1", {"a": {"b": "1"}}),  # text between brackets ends the key, as in PHP
    (b"a[=1&]=2", {"a[": "1", "]": "2"}),  # an unclosed bracket is a plain key
    (b"name=%D0%98%D0%B2%D0%B0%D0%BD+%D0%9F.&empty=", {"name": "Иван П.", "empty": ""}),
    (b"", {}),
])
def test_shapes(raw, expected):
    assert parse_form(raw) == expected


def test_a_key_nested_too_deep_is_refused():
    assert parse_form(b"a" + b"[b]" * (MAX_DEPTH - 1) + b"=1")
    with pytest.raises(FormError, match="deeper than"):
        parse_form(b"a" + b"[b]" * MAX_DEPTH + b"=1")


def test_bytes_that_are_not_utf8_are_refused_saying_where():
    with pytest.raises(FormError, match="not UTF-8 text.*at byte 2"):
        parse_form(b"a=\xff")
