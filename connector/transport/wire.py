"""The HTTP code every adapter shares, channels and sources alike: one outbound call, and the wire formats.

No provider knowledge: what a provider calls things, and what its answers mean, stays in its adapter. Where an
error leaves through one of these, the caller passes the provider's name (and what it was doing), so the message
still says which provider it was.

`request` is the one place where a transport failure becomes our error. requests raises (2.32+, urllib3 2):

    requests.RequestException
    ├── ConnectionError
    │   ├── ConnectTimeout              no connection within the connect timeout    → TransientError
    │   ├── (MaxRetryError inside)      refused, DNS (NewConnectionError,           → TransientError
    │   │                               NameResolutionError); SSLError and
    │   │                               ProxyError from the handshake
    │   ├── (ClosedPoolError inside)    the session was closed                      → TransientError
    │   ├── (ProtocolError inside)      RemoteDisconnected, ConnectionResetError    → OutcomeUnknownError
    │   │                               after the request was written
    │   └── (ReadTimeoutError inside)   the body stalled after the headers came     → OutcomeUnknownError
    ├── Timeout
    │   └── ReadTimeout                 sent, no answer within the read timeout     → OutcomeUnknownError
    ├── ChunkedEncodingError,           the answer was cut off                      → OutcomeUnknownError
    │   ContentDecodingError
    ├── TooManyRedirects                sent, and answered with redirects           → OutcomeUnknownError
    └── anything else                   InvalidURL, MissingSchema, InvalidHeader,   → TransientError
                                        InvalidJSONError, RetryError…

    HTTP 429                            → TransientError, retry_after from Retry-After (seconds or an HTTP date)
    HTTP 5xx                            → TransientError (Retry-After honoured when a 503 sends one)

TransientError versus OutcomeUnknownError is the question "may the provider have taken this request?": only
failures before the first byte left are TransientError proper. A ConnectionError is "before" only when urllib3
gave up connecting (MaxRetryError, ClosedPoolError): requests' default adapter retries nothing (Retry(0,
read=False)), so urllib3 re-raises an error on a sent request as itself and wraps only the others. Any other shape
counts as "after", since a wrong "before" would send a patient the same message twice. (A session mounted with
an adapter that retries reads would blur this: none of ours is.)

Anything else is TransientError too, not a FAILED result: no provider said no to this message, the dispatcher
bounds the retries of a TransientError (and then records FAILED with the reason), and an exception type a future
requests adds is likelier weather than a verdict. Most of these come from a broken base_url: the error names the
type, so the operator sees it.

The library's exception is dropped, not chained (neither __cause__ nor __context__) and its text never used: it
holds the URL, and a URL may hold a token (Telegram's is in the path), a recipient's id or a phone. The error names
the exception types only, which is all an operator needs to tell a refused port from a DNS failure or a reset.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ClosedPoolError, MaxRetryError, ProtocolError, ReadTimeoutError

from connector.channels.base import (
    DEFAULT_TIMEOUT,
    CallbackAuthError,
    HttpRefused,
    OutcomeUnknownError,
    TransientError,
)
from connector.transport.sessions import environment

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


def request(http: requests.Session, method: str, url: str, *, provider: str, what: str, timeout: Timeout,
            retry_after: Callable[[requests.Response], float | None] | None = None,
            transient_statuses: bool = True, **kwargs: Any) -> requests.Response:
    """One HTTP call, with every transport failure translated as the module docstring draws it.

    `what` names the call in the error ("sms/send", "sendMessage"): never an id, a phone or a URL. `retry_after`
    reads a 429's delay where the provider puts it somewhere else than Retry-After (None: use the header).
    `transient_statuses=False` hands 429 and 5xx back with the rest, for a caller that reads its own envelope on
    them. Every other answer is returned as it is: what a 4xx means is the provider's vocabulary.
    """
    failure: TransientError | None = None
    if not http.trust_env:  # a new_session(): the environment's settings, read once for this origin
        parts = urlsplit(url)
        proxies, verify = environment(f"{parts.scheme}://{parts.netloc}/")
        kwargs.setdefault("proxies", proxies)
        kwargs.setdefault("verify", verify)
    try:
        response = http.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as error:
        failure = _translated(error, f"{provider}: {what}")
    if failure is not None:  # raised out here, so not even __context__ holds the library's error
        raise failure from None
    status = response.status_code
    if transient_statuses and (status == 429 or status >= 500):
        delay = retry_after(response) if retry_after else None
        if delay is None:
            delay = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientError(f"{provider}: {what}: HTTP {status}", delay)
    return response


def _translated(error: requests.RequestException, call: str) -> TransientError:
    names = _names(error)
    if isinstance(error, requests.ConnectTimeout):
        return TransientError(f"{call} timed out connecting (connect timeout), not sent ({names})")
    inner = error.args[0] if error.args else None
    if isinstance(error, requests.ReadTimeout) or (
            isinstance(error, requests.ConnectionError) and isinstance(inner, ReadTimeoutError)):
        return OutcomeUnknownError(f"{call} timed out waiting for the answer (read timeout), outcome unknown ({names})")
    if isinstance(error, requests.ConnectionError):
        if isinstance(inner, MaxRetryError | ClosedPoolError):
            return TransientError(f"{call} could not connect, not sent ({names})")
        return OutcomeUnknownError(f"{call} lost the connection after sending, outcome unknown ({names})")
    if isinstance(error, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
                  | requests.TooManyRedirects):
        return OutcomeUnknownError(f"{call} answer was lost, outcome unknown ({names})")
    return TransientError(f"{call} failed ({names})")


def _names(error: requests.RequestException) -> str:
    """The exception's type and the low-level reason's (NewConnectionError, RemoteDisconnected…): types only."""
    inner: Any = error.args[0] if error.args else None
    if isinstance(inner, MaxRetryError):
        inner = inner.reason
    elif isinstance(inner, ProtocolError) and len(inner.args) > 1:
        inner = inner.args[1]
    name = type(error).__name__
    if isinstance(inner, BaseException) and type(inner).__name__ not in (name, f"{name}Error"):  # no echo
        return f"{name}: {type(inner).__name__}"
    return name


def post_form_for_json(http: requests.Session, url: str, data: Mapping[str, str], *, timeout: Timeout,
                       provider: str, what: str) -> Mapping[str, Any]:
    """POST a form, expect a JSON object (the SMS gateways). Transport failures, 429 and 5xx as `request` has
    them; any other non-2xx is HttpRefused; an answer that is not a JSON object is a TransientError."""
    response = request(http, "POST", url, provider=provider, what=what, timeout=timeout, data=data)
    if not 200 <= response.status_code < 300:
        raise HttpRefused(provider, response.status_code)
    body = json_or_none(response)
    if body is None:
        raise TransientError(f"{provider}: {what} answer is not JSON")
    if not isinstance(body, Mapping):
        raise TransientError(f"{provider}: {what} answer is not a JSON object")
    return body
