"""Small helpers every adapter needs to read and write wire formats.

Pure functions, no provider knowledge: what a provider calls things, and what its answers mean, stays in its adapter.
Where an error leaves through one of these (a bad timeout in the config, a refused callback), the caller passes the
provider's name or its own words, so the message still says which provider it was.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from connector.channels.base import DEFAULT_TIMEOUT, CallbackAuthError, ChannelError, TransientError

Timeout = float | tuple[float, float]


def request_timeout(value: Any, provider: str) -> Timeout:
    """The `timeout` for requests from a config value: DEFAULT_TIMEOUT when unset (None); seconds as a number or a
    numeric string (from the environment); or [connect, read] as a list or tuple of two.

    Anything else (text that is not a number, zero or less, infinity or NaN, a bool, a list of another length)
    raises ValueError naming the provider when the adapter is built, rather than on every send.
    """
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, list | tuple):
        if len(value) == 2:
            connect, read = (_seconds(part) for part in value)
            if connect is not None and read is not None:
                return connect, read
    else:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
    raise ValueError(f"{provider}: timeout must be seconds > 0 or [connect, read], not {value!r}")


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from `now` (default: the current time): delay-seconds or an HTTP date.

    Never negative (a date in the past is 0.0); None when the header is absent or not understood (including an
    infinite or NaN number). A date without a zone, and a naive `now`, are taken as UTC.
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (_utc(when) - _utc(now)).total_seconds())


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def secret_matches(expected: Any, given: Any) -> bool:
    """Whether a callback proves it knows our secret. Constant-time; an unset (empty) expected secret accepts
    nothing, and an absent or empty given one never matches. Non-string values compare by their text."""
    if not expected or not given:
        return False
    return hmac.compare_digest(str(given).encode(), str(expected).encode())


def require_secret(expected: Any, given: Any, refusal: str) -> None:
    """Raise CallbackAuthError(refusal) unless `given` matches `expected` (see secret_matches).

    `refusal` is the adapter's own words and names the provider: it goes into the audit trail of the callback.
    """
    if not secret_matches(expected, given):
        raise CallbackAuthError(refusal)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by its name in any case (a framework-free Mapping need not be case-insensitive)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def json_or_none(response: requests.Response) -> Any:
    """The response body parsed as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def dig(value: Any, *keys: str) -> Any:
    """value[k1][k2]… through nested mappings; None as soon as a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def phone_digits(phone: str | None) -> str:
    """The ASCII digits of a phone ("+7 (916) 123-45-67" → "79161234567"); "" for None."""
    return "".join(char for char in phone or "" if "0" <= char <= "9")


def int_or_none(value: Any) -> int | None:
    """An int from a number or numeric text (a float is truncated, as int() does); None for anything else,
    including bools, which JSON keeps apart from numbers, and infinities."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` UTF-16 units (the stricter count), on a word boundary when one is near, + "…"."""
    if utf16_len(text) <= limit:
        return text
    budget, units, end = limit - 1, 0, 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > budget:
            break
        end = index + 1
    head = text[:end]
    if not text[end].isspace():
        boundary = max((i for i, char in enumerate(head) if char.isspace()), default=-1)
        if boundary > len(head) // 2:
            head = head[:boundary]
    return head.rstrip() + "…"


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: never less than in code points, so a limit held in these units holds in both."""
    return len(text.encode("utf-16-le")) // 2


class HttpRefused(ChannelError):
    """A non-2xx answer that is neither a 429 nor a 5xx (a wrong base_url, a proxy refusing us…)."""

    def __init__(self, provider: str, status_code: int):
        super().__init__(f"{provider}: HTTP {status_code}")
        self.status_code = status_code


def post_form_for_json(http: requests.Session, url: str, data: Mapping[str, str], *, timeout: Timeout,
                       provider: str, what: str) -> Mapping[str, Any]:
    """POST a form, expect a JSON object. Timeouts, connection errors, 429 and 5xx are TransientError (the
    library's exception is not chained: its text holds the URL, and with it credentials or a phone)."""
    try:
        response = http.post(url, data=data, timeout=timeout)
    except requests.Timeout:
        raise TransientError(f"{provider}: {what} timed out") from None
    except requests.RequestException as error:
        raise TransientError(f"{provider}: {what} failed ({type(error).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientError(f"{provider}: HTTP {response.status_code}", retry_after)
    if not 200 <= response.status_code < 300:
        raise HttpRefused(provider, response.status_code)
    body = json_or_none(response)
    if body is None:
        raise TransientError(f"{provider}: {what} answer is not JSON")
    if not isinstance(body, Mapping):
        raise TransientError(f"{provider}: {what} answer is not a JSON object")
    return body
