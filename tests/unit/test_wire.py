"""The wire helpers shared by every adapter, channels and sources (connector.transport.wire)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from connector.channels.base import DEFAULT_TIMEOUT, CallbackAuthError
from connector.transport.wire import (
    dig,
    header,
    int_or_none,
    json_or_none,
    phone_digits,
    request_timeout,
    require_secret,
    retry_after_seconds,
    secret_matches,
    truncate,
    utf16_len,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

# --- request_timeout ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_TIMEOUT),
        (5, 5.0),
        (2.5, 2.5),
        ("7", 7.0),  # from the environment
        (" 0.5 ", 0.5),
        ([3, 20], (3.0, 20.0)),
        ((1, "2.5"), (1.0, 2.5)),
    ],
)
def test_request_timeout_accepts(value, expected):
    assert request_timeout(value, "smsru") == expected


@pytest.mark.parametrize(
    "value",
    ["", "soon", 0, -1, "0", float("inf"), "nan", True, [], [5], [1, 2, 3], [1, None], [0, 5], ["x", 5], {"read": 5}],
)
def test_request_timeout_refuses_what_requests_could_not_use_and_names_the_provider(value):
    with pytest.raises(ValueError, match=r"^wahelp: timeout"):
        request_timeout(value, "wahelp")


# --- retry_after_seconds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),  # never negative
        ("Mon, 02 Mar 2026 12:01:30 GMT", 90.0),  # a date in the future
        ("Mon, 02 Mar 2026 11:59:00 GMT", 0.0),  # a date in the past
        ("Mon, 02 Mar 2026 15:00:10 +0300", 10.0),  # another zone
        ("Mon, 02 Mar 2026 12:00:05 -0000", 5.0),  # no zone: UTC
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Mon, 32 Mar 2026 12:00:00 GMT", None),
    ],
)
def test_retry_after_seconds(value, expected):
    assert retry_after_seconds(value, now=NOW) == expected


def test_retry_after_takes_a_naive_now_as_utc():
    assert retry_after_seconds("Mon, 02 Mar 2026 12:00:20 GMT", now=NOW.replace(tzinfo=None)) == 20.0


def test_retry_after_date_defaults_to_the_current_time():
    soon = datetime.now(UTC) + timedelta(seconds=120)
    seconds = retry_after_seconds(soon.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert seconds is not None and 100 < seconds <= 120


# --- secret_matches / require_secret --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "given", "matches"),
    [
        ("s3cret", "s3cret", True),
        (12345, "12345", True),  # a number in the YAML compares by its text
        ("пароль", "пароль", True),
        ("s3cret", "s3cret ", False),
        ("s3cret", "S3CRET", False),
        ("s3cret", "other", False),
        ("s3cret", None, False),  # missing
        ("s3cret", "", False),
        ("", "", False),  # unset expected secret accepts nothing
        (None, None, False),
        (None, "anything", False),
        ("", "anything", False),
    ],
)
def test_secret_matches(expected, given, matches):
    assert secret_matches(expected, given) is matches


def test_require_secret_raises_the_adapters_own_words():
    require_secret("s3cret", "s3cret", "smsru: callback secret missing or wrong")
    with pytest.raises(CallbackAuthError, match=r"^smsru: callback secret missing or wrong$"):
        require_secret("s3cret", "wrong", "smsru: callback secret missing or wrong")
    with pytest.raises(CallbackAuthError, match="^max_bot: "):
        require_secret(None, None, "max_bot: missing or wrong X-Max-Bot-Api-Secret")


# --- header ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "name", "expected"),
    [
        ({"X-Telegram-Bot-Api-Secret-Token": "a"}, "X-Telegram-Bot-Api-Secret-Token", "a"),
        ({"x-telegram-bot-api-secret-token": "b"}, "X-Telegram-Bot-Api-Secret-Token", "b"),
        ({"X-MAX-BOT-API-SECRET": "c"}, "x-max-bot-api-secret", "c"),
        ({"Content-Type": "application/json"}, "X-Max-Bot-Api-Secret", None),
        ({}, "X-Max-Bot-Api-Secret", None),
        ({"X-Max-Bot-Api-Secret": ""}, "X-Max-Bot-Api-Secret", ""),
    ],
)
def test_header_is_looked_up_in_any_case(headers, name, expected):
    assert header(headers, name) == expected


# --- phone_digits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("+79161234567", "79161234567"),
        ("+7 (916) 123-45-67", "79161234567"),
        ("8 916 123 45 67", "89161234567"),
        ("", ""),
        (None, ""),
        ("no phone", ""),
        ("+7 916 ²³", "7916"),  # only ASCII digits: never "²" into a provider's `to`
        ("٧٩١٦", ""),
    ],
)
def test_phone_digits(phone, expected):
    assert phone_digits(phone) == expected


# --- int_or_none ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (103, 103),
        ("103", 103),
        (" 7 ", 7),
        ("-1", -1),
        (0, 0),
        (1700000000.9, 1700000000),  # truncated, as int() does
        (None, None),
        ("", None),
        ("OK", None),
        ("1.5", None),
        ([], None),
        ({}, None),
        (True, None),  # not a status code
        (False, None),
        (float("inf"), None),
        (float("nan"), None),
    ],
)
def test_int_or_none(value, expected):
    assert int_or_none(value) == expected


# --- dig, json_or_none ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "keys", "expected"),
    [
        ({"message": {"body": {"mid": "m1"}}}, ("message", "body", "mid"), "m1"),
        ({"message": {"body": None}}, ("message", "body", "mid"), None),
        ({"message": "text"}, ("message", "body"), None),
        ({"result": [1]}, ("result", "message_id"), None),
        (None, ("a",), None),
        ({"a": 1}, (), {"a": 1}),
    ],
)
def test_dig(value, keys, expected):
    assert dig(value, *keys) == expected


def _response(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.encoding = "utf-8"
    return response


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"ok": true}', {"ok": True}), (b"[1, 2]", [1, 2]), (b"null", None), (b"<html>", None), (b"", None)],
)
def test_json_or_none(body, expected):
    assert json_or_none(_response(body)) == expected


# --- truncate -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("one two three four", 12, "one two…"),  # on a word boundary
        ("abcdefghij", 5, "abcd…"),  # no boundary near: cut mid-word
        ("😀😀😀", 4, "😀…"),  # an emoji is two UTF-16 units
    ],
)
def test_truncate(text, limit, expected):
    cut = truncate(text, limit)
    assert cut == expected
    assert utf16_len(cut) <= limit
