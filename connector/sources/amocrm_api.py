"""A small amoCRM REST (API v4) client: read a lead and its contact, list what changed, write a note back.

Wire only: no database, no mapping, nothing of a patient in an error message (amoCRM's own `title` at most).
Authorisation comes from a token provider (`bearer()`, and `refreshed(after_401)` once when a call is answered
401): a plain long-lived token here, or connector.store.crm_tokens' database pair, whose single-use refresh
token only one process rotates at a time. `refresh_grant` is the OAuth call that provider makes.

Rate limit: at most 7 requests a second per account (shared/docs/crm.md §1.4), so calls to one account share a
process-wide throttle. A 429 comes as an HTML page with no Retry-After: it is waited out (1 s, then 2 s) and asked
again, and after that the caller gets a transient CrmError. A 503 alike (honouring a Retry-After if it sends one).

Errors are CrmError (connector.sources.crm):

    transient=True    a timeout, a connection failure, a 5xx, a 429 not waited out, an answer that is not the
                      JSON it should be (a proxy's page), a listing cut short at MAX_PAGES
    transient=False   401 after one refresh, 402 (account unpaid), 403, a 4xx amoCRM says is our mistake
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from connector.channels.base import TransientError
from connector.sources.crm import CrmError, newest
from connector.transport import wire
from connector.transport.sessions import new_session
from connector.transport.throttle import Throttle
from connector.transport.wire import json_or_none, request_timeout, retry_after_seconds

__all__ = ["AmocrmApi", "StaticToken", "TokenGrant", "TokenProvider", "listing_filter", "refresh_grant"]

MIN_INTERVAL = 1.0 / 7  # seconds between two requests to one account: ≤ 7 a second
WAITS = (1.0, 2.0)  # seconds to wait before asking again after a 429/503 (then the caller's backoff takes over)
MAX_RETRY_AFTER = 30.0  # a 503's Retry-After longer than this goes back to the caller
PAGE_SIZE = 250  # the largest `limit` amoCRM serves
MAX_PAGES = 400  # 100 000 leads in one reconciliation window: a server that never says "no more" stops here
_TITLE_LIMIT = 120

_throttles: dict[str, Throttle] = {}
_throttles_lock = threading.Lock()


class TokenProvider(Protocol):
    """Where the client gets its bearer token."""

    def bearer(self) -> str:
        """The token to use now."""
        ...

    def refreshed(self, after_401: str) -> str:
        """A token to try once more with, `after_401` having been refused; CrmError when there is none."""
        ...


class StaticToken:
    """A long-lived token: nothing to refresh, so a 401 is a refusal the operator must fix."""

    def __init__(self, token: str):
        self._token = token

    def __repr__(self) -> str:
        return "StaticToken(…)"

    def bearer(self) -> str:
        return self._token

    def refreshed(self, after_401: str) -> str:
        raise CrmError("amocrm: the long-lived token was refused (HTTP 401): issue a new one", transient=False,
                       status_code=401)


@dataclass(frozen=True)
class TokenGrant:
    """What amoCRM's token endpoint gives: a new access token and the next (single-use) refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds

    def __repr__(self) -> str:
        return f"TokenGrant(expires_in={self.expires_in})"


def account_throttle(base_url: str) -> Throttle:
    """The process-wide throttle of one account (its API base URL)."""
    with _throttles_lock:
        throttle = _throttles.get(base_url)
        if throttle is None:
            throttle = _throttles[base_url] = Throttle(MIN_INTERVAL, time.monotonic, time.sleep)
        return throttle


def listing_filter(since: datetime, until: datetime) -> dict[str, Any]:
    """The listing's window and order as query parameters, in one place: amoCRM's exact filter syntax is
    UNCONFIRMED (shared/docs/crm.md §0.3). Both ends are whole Unix seconds, inclusive: the caller drops what
    falls outside [since, until)."""
    return {"filter[updated_at][from]": int(since.timestamp()), "filter[updated_at][to]": int(until.timestamp()),
            "order[updated_at]": "asc"}


class AmocrmApi:
    """amoCRM API v4 of one account. `sleep` and `clock` are for tests: given either, the client gets a throttle
    of its own on them instead of the account's process-wide one."""

    def __init__(self, base_url: str, tokens: TokenProvider, *, timeout: Any = None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.timeout = request_timeout(timeout, "amocrm")
        self.http = session or new_session()
        if sleep is None and clock is None:
            self._throttle = account_throttle(self.base_url)
        else:
            self._throttle = Throttle(MIN_INTERVAL, clock or time.monotonic, sleep or time.sleep)

    def __repr__(self) -> str:
        return f"AmocrmApi(base_url={self.base_url!r})"

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        """The lead with its contacts' ids (`_embedded.contacts`); None when amoCRM has no such lead (204/404)."""
        response = self._call("GET", f"/api/v4/leads/{_path_id(lead_id)}", what="lead", params={"with": "contacts"})
        return self._object(response, what="lead", absent=(204, 404))

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        """The contact (its phone is a custom field); None when it is gone (204/404)."""
        response = self._call("GET", f"/api/v4/contacts/{_path_id(contact_id)}", what="contact")
        return self._object(response, what="contact", absent=(204, 404))

    def changed_leads(self, since: datetime, until: datetime, *, limit: int = PAGE_SIZE,
                      max_pages: int = MAX_PAGES) -> Iterator[tuple[str, datetime]]:
        """(lead id, updated_at in UTC) of every lead changed in [since, until), page after page, oldest first.
        Stops at a 204 (nothing), a page shorter than `limit`, or one without `_links.next`. A lead changed while
        the pages are read moves to the end and may push another onto a page already read: reconciliation reads
        with an overlap, so the next pass finds it."""
        for lead in self._listing("leads", {}, since, until, limit=limit, max_pages=max_pages):
            lead_id, changed = lead.get("id"), _unix(lead.get("updated_at"))
            if _whole(lead_id) is None or changed is None:
                raise CrmError("amocrm: leads list: a lead without a numeric id or updated_at", transient=False)
            if since <= changed < until:
                yield str(lead_id), changed

    def changed_contact_leads(self, since: datetime, until: datetime, *, limit: int = PAGE_SIZE,
                              max_pages: int = MAX_PAGES) -> Iterator[tuple[str, datetime]]:
        """(lead id, the contact's updated_at) for the newest leads (crm.newest) of every contact changed in
        [since, until) (`with=leads`; UNCONFIRMED on a real account): a new phone changes no lead, so these
        leads are read again with their contact."""
        for contact in self._listing("contacts", {"with": "leads"}, since, until, limit=limit, max_pages=max_pages):
            changed = _unix(contact.get("updated_at"))
            if changed is None or not since <= changed < until:
                continue
            linked = wire.dig(contact, "_embedded", "leads")
            leads = linked if isinstance(linked, list) else []
            ids = (_whole(lead.get("id")) for lead in leads if isinstance(lead, dict))
            for lead_id in newest(i for i in ids if i is not None and i > 0):
                yield lead_id, changed

    def _listing(self, kind: str, extra: Mapping[str, Any], since: datetime, until: datetime, *, limit: int,
                 max_pages: int) -> Iterator[dict[str, Any]]:
        """The entities of one listing (`leads`, `contacts`) changed in the window, page after page."""
        window = listing_filter(since, until)
        what = f"{kind} list"
        for page in range(1, max_pages + 1):
            response = self._call("GET", f"/api/v4/{kind}", what=what,
                                  params={**window, **extra, "page": page, "limit": limit})
            body = self._object(response, what=what, absent=(204,))
            if body is None:
                return
            entities = _page(body, kind)
            yield from entities
            if len(entities) < limit or not wire.dig(body, "_links", "next", "href"):
                return
        raise CrmError(f"amocrm: {what}: stopped after {max_pages} pages", transient=True)

    def add_note(self, lead_id: str, service: str, text: str) -> None:
        """A service message on the lead's timeline: `service` is the sender's name, `text` the message."""
        body = [{"note_type": "service_message", "params": {"service": service, "text": text}}]
        response = self._call("POST", f"/api/v4/leads/{_path_id(lead_id)}/notes", what="lead note", json=body)
        _refusal(response, "lead note")

    def has_note(self, lead_id: str, text: str) -> bool:
        """Whether one of the lead's newest service messages (one page) reads `text`. A listing amoCRM refuses
        (the filter's form is UNCONFIRMED) says False: a second note is better than none."""
        response = self._call("GET", f"/api/v4/leads/{_path_id(lead_id)}/notes", what="lead notes",
                              params={"filter[note_type]": "service_message", "order[id]": "desc", "limit": 50})
        try:
            body = self._object(response, what="lead notes", absent=(204,))
        except CrmError as error:
            if error.transient:
                raise
            return False
        notes = wire.dig(body, "_embedded", "notes")
        return isinstance(notes, list) and any(
            isinstance(note, dict) and wire.dig(note, "params", "text") == text for note in notes)

    def set_field(self, lead_id: str, field_id: int, text: str) -> None:
        """One custom field of the lead set to `text`."""
        body = {"custom_fields_values": [{"field_id": field_id, "values": [{"value": text}]}]}
        response = self._call("PATCH", f"/api/v4/leads/{_path_id(lead_id)}", what="lead field", json=body)
        _refusal(response, "lead field")

    # --- wire ---------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        """One call: a 401 refreshes the token once and asks again; a 429/503 is waited out (WAITS)."""
        token = self.tokens.bearer()
        refreshed, waits = False, iter(WAITS)
        while True:
            response = self._send(method, path, token, what=what, **kwargs)
            status = response.status_code
            if status == 401 and not refreshed:
                token, refreshed = self.tokens.refreshed(token), True
                continue
            if status in (429, 503):
                told = retry_after_seconds(response.headers.get("Retry-After"))  # amoCRM's 429 sends none
                wait = next(waits, None)
                if wait is not None and told is not None:
                    wait = told
                if wait is None or wait > MAX_RETRY_AFTER:
                    raise CrmError(f"amocrm: {what}: HTTP {status}", transient=True, status_code=status,
                                   retry_after=told if told is not None else WAITS[-1])
                self._throttle.hold(wait)  # every caller of this account waits too
                continue
            return response

    def _send(self, method: str, path: str, token: str, *, what: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/hal+json, application/json"}
        self._throttle.wait()
        try:
            return wire.request(self.http, method, self.base_url + path, provider="amocrm", what=what,
                                timeout=self.timeout, transient_statuses=False, headers=headers, **kwargs)
        except TransientError as error:
            raise CrmError(str(error), transient=True, retry_after=error.retry_after) from None

    @staticmethod
    def _object(response: requests.Response, *, what: str, absent: tuple[int, ...]) -> dict[str, Any] | None:
        status = response.status_code
        if status in absent:
            return None
        _refusal(response, what)
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise CrmError(f"amocrm: {what}: HTTP {status}, the answer is not a JSON object", transient=True,
                           status_code=status)
        return body


def refresh_grant(base_url: str, client_id: str, client_secret: str, redirect_uri: str, refresh_token: str, *,
                  timeout: Any = None, session: requests.Session | None = None) -> TokenGrant:
    """POST {base}/oauth2/access_token with grant_type=refresh_token: the new pair. A refused refresh token
    (401 «Token has been revoked»: used already) is a CrmError with transient=False and status_code 401."""
    body = {"client_id": client_id, "client_secret": client_secret, "grant_type": "refresh_token",
            "refresh_token": refresh_token, "redirect_uri": redirect_uri}
    try:
        response = wire.request(session or new_session(), "POST", base_url.rstrip("/") + "/oauth2/access_token",
                                provider="amocrm", what="token refresh", timeout=request_timeout(timeout, "amocrm"),
                                transient_statuses=False, json=body)
    except TransientError as error:
        raise CrmError(str(error), transient=True, retry_after=error.retry_after) from None
    answer = json_or_none(response)
    answer = answer if isinstance(answer, dict) else {}
    status = response.status_code
    if status == 429 or status >= 500:
        raise CrmError(f"amocrm: token refresh: HTTP {status}", transient=True, status_code=status)
    if not 200 <= status < 300:
        raise CrmError(f"amocrm: token refresh: HTTP {status}{_quoted(answer.get('hint') or answer.get('title'))}",
                       transient=False, status_code=status)
    access, refresh, expires = answer.get("access_token"), answer.get("refresh_token"), _whole(answer.get("expires_in"))
    if not (isinstance(access, str) and access and isinstance(refresh, str) and refresh and expires is not None):
        raise CrmError("amocrm: token refresh: the answer lacks access_token, refresh_token or expires_in",
                       transient=True, status_code=status)
    return TokenGrant(access, refresh, expires)


def _refusal(response: requests.Response, what: str) -> None:
    """CrmError for anything but a 2xx: 5xx transient, 4xx a refusal naming amoCRM's `title`."""
    status = response.status_code
    if 200 <= status < 300:
        return
    body = json_or_none(response)
    title = body.get("title") if isinstance(body, dict) else None
    raise CrmError(f"amocrm: {what}: HTTP {status}{_quoted(title)}", transient=status >= 500, status_code=status)


def _page(body: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    entities = wire.dig(body, "_embedded", kind)
    if entities is None:
        return []
    if not isinstance(entities, list) or not all(isinstance(entity, dict) for entity in entities):
        raise CrmError(f"amocrm: {kind} list: `_embedded.{kind}` is not a list of objects", transient=False)
    return entities


def _path_id(value: str) -> str:
    """An id as it goes into a path: digits only (no "../", no query smuggled in)."""
    number = _whole(value)
    if number is None or number <= 0:
        raise CrmError(f"amocrm: {str(value)[:40]!r} is not an amoCRM id", transient=False)
    return str(number)


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _unix(value: Any) -> datetime | None:
    seconds = _whole(value)
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None and seconds < 7_258_118_400 else None


def _quoted(title: Any) -> str:
    if not isinstance(title, str) or not title.strip():
        return ""
    title = " ".join(title.split())
    return f" «{title[:_TITLE_LIMIT]}»"
