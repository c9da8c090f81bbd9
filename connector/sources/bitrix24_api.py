"""A small Bitrix24 REST client over a portal's inbound webhook URL (shared/docs/crm.md §2.2-2.3). Wire only.

Every call is `POST {webhook_url}/{method}.json` with a JSON body; an answer is `{"result": …}` or
`{"error": "...", "error_description": "..."}`. The URL's path holds the webhook's secret code, so it never goes
into an error message or a log: a message names the method, the HTTP status and Bitrix24's error code.

    CrmError(transient=True)    a timeout, a connection error, a 5xx, an answer that is not JSON, 503
                                QUERY_LIMIT_EXCEEDED or 429 OPERATION_TIME_LIMIT still there after RETRIES waits
                                (with retry_after), a listing cut short (MAX_PAGES)
    CrmError(transient=False)   401 (a revoked webhook, missing scope), 403, 404 ERROR_METHOD_NOT_FOUND, a 400
                                other than "not found": the request or the webhook is wrong, trying again won't help
    None                        from the getters when Bitrix24 says the entity is not found (a deleted deal)

Rate: the leaky bucket lets 2 requests/s through for good (Enterprise: 5), per portal and source IP, so requests to
one portal are spaced MIN_INTERVAL apart by one throttle per portal for the whole process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from connector.channels.base import TransientError
from connector.sources.crm import CrmError, newest
from connector.transport import wire
from connector.transport.sessions import new_session
from connector.transport.throttle import Throttle
from connector.transport.wire import dig, json_or_none, request_timeout, retry_after_seconds

__all__ = ["MIN_INTERVAL", "Bitrix24Api"]

MIN_INTERVAL = 0.5  # seconds between two requests to one portal: the leaky bucket's 2/s drains for good
RETRIES = 2  # a call is sent at most 1 + RETRIES times while the portal answers "too many"
WAIT_LIMIT = 1.0  # seconds: a 503 QUERY_LIMIT_EXCEEDED is waited out this long (two slots of the bucket drain)
MAX_WAIT = 30.0  # seconds: a longer 429 (operating_reset_at) goes back to the caller as retry_after
MAX_PAGES = 200  # a listing of 10 000 deals; a portal that keeps saying `next` stops here
PAGE_SIZE = 50  # crm.item.list's fixed page
_NOT_FOUND_CODES = frozenset({"NOT_FOUND", "1021"})  # crm.item.get; the booking module's "Booking not found"
_DESCRIPTION_LIMIT = 160

_THROTTLES: dict[str, Throttle] = {}
_THROTTLES_LOCK = threading.Lock()


def _portal_throttle(portal: str) -> Throttle:
    with _THROTTLES_LOCK:
        throttle = _THROTTLES.get(portal)
        if throttle is None:
            throttle = _THROTTLES[portal] = Throttle(MIN_INTERVAL, time.monotonic, time.sleep)
        return throttle


class _NotFound(CrmError):
    """Bitrix24 said the entity does not exist: None from the getters, a refusal from every other call."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message, transient=False, status_code=status_code)


class Bitrix24Api:
    """One portal's REST API through its inbound webhook URL (`https://{portal}/rest/{user_id}/{code}`).

    `sleep`, `clock` (monotonic) and `wall` (Unix time, for operating_reset_at) are for tests: given any, the client
    gets a throttle of its own on them instead of the portal's shared one.
    """

    def __init__(self, webhook_url: str, *, timeout: Any = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
                 wall: Callable[[], float] | None = None):
        self._base = webhook_url.rstrip("/")
        portal = urlsplit(self._base).hostname
        if not portal:
            raise ValueError("bitrix24: the webhook URL has no host")
        self.timeout = request_timeout(timeout, "bitrix24")
        self.http = session or new_session()
        self._wall = wall or time.time
        if sleep is None and clock is None:
            self._throttle = _portal_throttle(portal)
        else:
            self._throttle = Throttle(MIN_INTERVAL, clock or time.monotonic, sleep or time.sleep)

    def __repr__(self) -> str:  # never the URL: its path is the webhook's secret
        return "Bitrix24Api(<webhook>)"

    # --- the calls the adapter makes --------------------------------------------------------------------------

    def deal(self, deal_id: str) -> dict[str, Any] | None:
        """crm.item.get of a deal with user fields as written (`result.item`); None when it is not found."""
        body = self._maybe("crm.item.get", {"entityTypeId": 2, "id": int(deal_id), "useOriginalUfNames": "Y"})
        return None if body is None else _object(dig(body, "result", "item"), "crm.item.get", "result.item")

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        """crm.contact.get (`result`: NAME, LAST_NAME, SECOND_NAME, PHONE[]); None when it is not found."""
        body = self._maybe("crm.contact.get", {"id": int(contact_id)})
        return None if body is None else _object(body.get("result"), "crm.contact.get", "result")

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        """booking.v1.booking.get (`result.booking`); None when it is not found."""
        body = self._maybe("booking.v1.booking.get", {"id": int(booking_id)})
        return None if body is None else _object(dig(body, "result", "booking"), "booking.v1.booking.get",
                                                 "result.booking")

    def booking_clients(self, booking_id: str) -> list[dict[str, Any]]:
        """booking.v1.booking.client.list (`result.bookingClient`: {id, type: {module, code}}); [] when none."""
        body = self._maybe("booking.v1.booking.client.list", {"bookingId": int(booking_id)})
        clients = dig(body, "result", "bookingClient") if body is not None else None
        return [client for client in clients if isinstance(client, dict)] if isinstance(clients, list) else []

    def changed_deals(self, since: datetime, until: datetime, *,
                      max_pages: int = MAX_PAGES) -> Iterator[tuple[str, datetime]]:
        """(deal id, updatedTime in UTC) of every deal changed in [since, until), oldest first, page by page."""
        return self._changed(2, since, until, max_pages=max_pages)

    def changed_contacts(self, since: datetime, until: datetime, *,
                         max_pages: int = MAX_PAGES) -> Iterator[tuple[str, datetime]]:
        """(contact id, updatedTime in UTC) of every contact changed in [since, until), oldest first."""
        return self._changed(3, since, until, max_pages=max_pages)

    def _changed(self, entity_type: int, since: datetime, until: datetime, *,
                 max_pages: int) -> Iterator[tuple[str, datetime]]:
        """crm.item.list of one entity type by updatedTime, page by page (`next` must move on)."""
        if since.utcoffset() is None or until.utcoffset() is None:
            raise ValueError("bitrix24: since and until must carry a zone")
        query: dict[str, Any] = {
            "entityTypeId": entity_type, "select": ["id", "updatedTime"],
            "filter": {">=updatedTime": since.isoformat(timespec="seconds"),
                       "<updatedTime": until.isoformat(timespec="seconds")},
            "order": {"updatedTime": "ASC"}}
        start = 0
        for _page in range(max_pages):
            body = self.call("crm.item.list", {**query, "start": start})
            items = _listed_items(body)
            for item in items:
                yield _listed(item)
            following = body.get("next")
            if following is None or not items:
                return
            if isinstance(following, bool) or not isinstance(following, int) or following <= start:
                raise CrmError(f"bitrix24: crm.item.list: `next` {str(following)[:20]!r} does not move on",
                               transient=False)
            start = following
        raise CrmError(f"bitrix24: crm.item.list: stopped after {max_pages} pages", transient=True)

    def deals_of_contact(self, contact_id: str) -> list[str]:
        """The ids of the contact's newest deals (crm.newest of one page of crm.item.list, filtered by the deal's
        `contactId`; whether the filter also matches deals where the contact is not the first is UNCONFIRMED, so
        the contact's first deals are what is certain)."""
        body = self.call("crm.item.list", {"entityTypeId": 2, "select": ["id"], "order": {"id": "DESC"},
                                           "filter": {"=contactId": int(contact_id)}, "start": 0})
        ids = (str(item.get("id")) for item in _listed_items(body) if isinstance(item, dict))
        return newest(int(deal) for deal in ids if deal.isascii() and deal.isdigit() and int(deal) > 0)

    def has_comment(self, deal_id: str, text: str) -> bool:
        """Whether one of the deal's newest timeline comments (one page of crm.timeline.comment.list) reads
        `text`. A listing the portal refuses says False: a second comment is better than none."""
        try:
            body = self.call("crm.timeline.comment.list", {
                "filter": {"ENTITY_ID": int(deal_id), "ENTITY_TYPE": "deal"}, "select": ["ID", "COMMENT"],
                "order": {"ID": "DESC"}})
        except CrmError as error:
            if error.transient:
                raise
            return False
        comments = body.get("result")
        return isinstance(comments, list) and any(
            isinstance(comment, dict) and comment.get("COMMENT") == text for comment in comments)

    def add_comment(self, deal_id: str, text: str) -> None:
        """crm.timeline.comment.add on the deal (lower-case `fields`, as that method takes them)."""
        self.call("crm.timeline.comment.add",
                  {"fields": {"ENTITY_ID": int(deal_id), "ENTITY_TYPE": "deal", "COMMENT": text}})

    def set_field(self, deal_id: str, code: str, text: str) -> None:
        """crm.item.update of one user field of the deal, named as written (UF_CRM_…)."""
        self.call("crm.item.update",
                  {"entityTypeId": 2, "id": int(deal_id), "fields": {code: text}, "useOriginalUfNames": "Y"})

    # --- wire ---------------------------------------------------------------------------------------------------

    def _maybe(self, method: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return self.call(method, params)
        except _NotFound:
            return None

    def call(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One method's answer envelope; 503/429 waited out RETRIES times. Raises CrmError."""
        for tries in range(RETRIES + 1):
            response = self._send(method, params)
            body = json_or_none(response)
            body = body if isinstance(body, dict) else None
            wait = self._wait(response, body)
            if wait is None or tries == RETRIES or wait > MAX_WAIT:
                break
            self._throttle.hold(wait)  # every caller of this portal waits, not only this one
        return self._read(method, response, body)

    def _send(self, method: str, params: Mapping[str, Any]) -> requests.Response:
        self._throttle.wait()
        try:
            return wire.request(self.http, "POST", f"{self._base}/{method}.json", provider="bitrix24", what=method,
                                timeout=self.timeout, transient_statuses=False, json=dict(params),
                                headers={"Accept": "application/json"})
        except TransientError as error:  # its message names the method, never the URL
            raise CrmError(str(error), transient=True, retry_after=error.retry_after) from None

    def _wait(self, response: requests.Response, body: dict[str, Any] | None) -> float | None:
        """How long to wait before asking again when the portal says "too many"; None for any other answer."""
        status, code = response.status_code, _code(body)
        if status == 503 and code in (None, "QUERY_LIMIT_EXCEEDED"):
            header = retry_after_seconds(response.headers.get("Retry-After"))
            return WAIT_LIMIT if header is None else header
        if status == 429 or code in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"):
            header = retry_after_seconds(response.headers.get("Retry-After"))
            if header is not None:
                return header
            reset = dig(body, "time", "operating_reset_at")
            if isinstance(reset, int | float) and not isinstance(reset, bool):
                return max(0.0, float(reset) - self._wall())
            return WAIT_LIMIT
        return None

    def _read(self, method: str, response: requests.Response, body: dict[str, Any] | None) -> dict[str, Any]:
        status, code = response.status_code, _code(body)
        what = f"bitrix24: {method}: HTTP {status}{_described(code, body)}"
        wait = self._wait(response, body)
        if wait is not None or status >= 500:
            raise CrmError(what, transient=True, retry_after=wait, status_code=status)
        if status == 400 and _is_not_found(code, body):
            raise _NotFound(what, status)
        if not 200 <= status < 300 or code is not None or (body is not None and "error" in body):
            raise CrmError(what, transient=False, status_code=status)
        if body is None:
            raise CrmError(f"bitrix24: {method}: HTTP {status}, the answer is not a JSON object", transient=True,
                           status_code=status)
        return body


def _listed(item: Any) -> tuple[str, datetime]:
    ident = item.get("id") if isinstance(item, dict) else None
    changed = item.get("updatedTime") if isinstance(item, dict) else None
    if isinstance(ident, bool) or not isinstance(ident, int | str) or not str(ident).strip().isdigit():
        raise CrmError("bitrix24: crm.item.list: an item without an id", transient=False)
    try:
        moment = datetime.fromisoformat(changed) if isinstance(changed, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CrmError("bitrix24: crm.item.list: an item's updatedTime is not an ISO date-time with an offset",
                       transient=False)
    return str(int(str(ident).strip())), moment.astimezone(UTC)


def _code(body: Mapping[str, Any] | None) -> str | None:
    """Bitrix24's error code (`error`: a word, or a number in the booking module), None without one."""
    error = body.get("error") if body is not None else None
    if isinstance(error, bool) or error is None or error == "":
        return None
    if isinstance(error, Mapping):  # REST v3 writes {"code": …, "message": …}
        error = error.get("code")
    return str(error)[:60] if error is not None else None


def _is_not_found(code: str | None, body: Mapping[str, Any] | None) -> bool:
    """Bitrix24's word that the entity does not exist. Strict on purpose: a wrong URL or a missing scope (404
    ERROR_METHOD_NOT_FOUND, "Method not found!") read as "not found" would delete every booking it touched."""
    if code is not None:
        return code.upper() in _NOT_FOUND_CODES
    description = body.get("error_description") if body is not None else None  # crm.contact.get: "", "Not found"
    return body is not None and "error" in body and isinstance(description, str) and \
        description.strip().rstrip(".!").lower() == "not found"


def _described(code: str | None, body: Mapping[str, Any] | None) -> str:
    description = body.get("error_description") if body is not None else None
    text = " ".join(description.split()) if isinstance(description, str) else ""
    if len(text) > _DESCRIPTION_LIMIT:
        text = text[: _DESCRIPTION_LIMIT - 1] + "…"
    return (f" {code}" if code else "") + (f" «{text}»" if text else "")


def _listed_items(body: Mapping[str, Any]) -> list[Any]:
    """crm.item.list's `result.items`; CrmError when the answer has none."""
    items = dig(body, "result", "items")
    if not isinstance(items, list):
        raise CrmError("bitrix24: crm.item.list: the answer has no list in result.items", transient=False)
    return items


def _object(value: Any, method: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CrmError(f"bitrix24: {method}: the answer has no object in {where}", transient=False)
    return value
