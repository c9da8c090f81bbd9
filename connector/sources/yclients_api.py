"""A small YCLIENTS REST client for the safety-net sync: YCLIENTS never retries a failed webhook, so the worker
periodically reads the records changed since its last pass (shared/docs/yclients.md §2, §3.1, §3.7, §5).

Wire format only: no database, and nothing of a patient is logged or put into an error message. One retry rule:
a 429 is waited out (its Retry-After, seconds or an HTTP date, when at most MAX_RETRY_AFTER) and the same page
asked again, a few times, because a listing that gives up mid-way has to start over on the next pass; anything
else the caller decides when to try again, honouring `retry_after`. Errors are one type, YclientsApiError:

    transient=True    a timeout, a connection error, a 5xx, a 429 not waited out (with retry_after when the server
                      gives one), an answer that is not the JSON envelope (a proxy's error page), a listing cut
                      short (MAX_PAGES reached)
    transient=False   401/402/403/404 and other refusals (licence expired, no rights, unknown company…),
                      `success: false` on a 2xx; the message names the HTTP status and YCLIENTS' meta.message

Rate limit: "200 запросов в минуту, или 5 запросов в секунду на один IP-адрес" (§2). The two figures disagree
(5/s is 300/min), so requests are spaced at least 0.3 s apart, which keeps under both. The limit is per IP, so
every client built without an injected clock/sleep shares one process-wide throttle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, overload

import requests

from connector.channels.base import TransientError
from connector.sources.crm import CrmError
from connector.transport import wire
from connector.transport.sessions import new_session
from connector.transport.throttle import Throttle
from connector.transport.wire import int_or_none, json_or_none, request_timeout, retry_after_seconds

__all__ = ["DEFAULT_BASE_URL", "YclientsApi", "YclientsApiError"]

DEFAULT_BASE_URL = "https://api.yclients.com/api/v1"
ACCEPT = "application/vnd.yclients.v2+json"  # response format 2.0: always success / data / meta (§2, §5.13)
MIN_INTERVAL = 60.0 / 200  # seconds between two requests: ≤ 200/min, hence also ≤ 5/s
MAX_PAGES = 100  # pages per listing: 20 000 records at 200 a page; a server that never says "no more" stops here
MAX_RETRY_AFTER = 60.0  # seconds: a 429 asking for longer goes back to the caller (the next sync pass)
WAIT_429 = 10.0  # seconds, a 429 without Retry-After (YCLIENTS documents none): [SM] waits 10 s too (§2)
RETRIES_429 = 2  # a page is asked at most 1 + RETRIES_429 times while the server answers 429
NOT_FOUND = "не найдено"  # a list endpoint's way of saying "nothing matched" (§2, [SM])
_MESSAGE_LIMIT = 200  # meta.message is YCLIENTS' own text; cut it anyway, an error message is no place for essays


class YclientsApiError(CrmError):
    """A YCLIENTS call failed. `transient`: worth trying again later (after `retry_after` seconds when known).

    The message never contains tokens or patient data: it names the call, the HTTP status and YCLIENTS'
    meta.message (texts such as «Необходимо продлить лицензию…», «Недостаточно прав»). `status_code` is the
    HTTP status when there was an answer.
    """


_SHARED_THROTTLE = Throttle(MIN_INTERVAL, time.monotonic, time.sleep)  # one per process: the limit is per IP


class YclientsApi:
    """YCLIENTS REST API v1 for one account (a partner token, and a user token for the salon's data).

    config: base_url (default https://api.yclients.com/api/v1), partner_token (required), user_token (optional;
    records need it), timeout (seconds or [connect, read]; default connector.channels.base.DEFAULT_TIMEOUT).
    `sleep` and `clock` are for tests: given either, this client gets a throttle of its own on them.
    """

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None, *,
                 sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None):
        partner_token = str(config.get("partner_token") or "").strip()
        if not partner_token:
            raise ValueError("yclients: partner_token is required")
        user_token = str(config.get("user_token") or "").strip()
        self._authorization = f"Bearer {partner_token}" + (f", User {user_token}" if user_token else "")
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = request_timeout(config.get("timeout"), "yclients")
        self.http = session or new_session()
        if sleep is None and clock is None:
            self._throttle = _SHARED_THROTTLE
        else:
            self._throttle = Throttle(MIN_INTERVAL, clock or time.monotonic, sleep or time.sleep)

    def __repr__(self) -> str:  # never show the tokens
        return f"YclientsApi(base_url={self.base_url!r})"

    def changed_records(self, company_id: str | int, *, changed_after: datetime, changed_before: datetime,
                        page_size: int = 200, max_pages: int = MAX_PAGES) -> Iterator[dict[str, Any]]:
        """Every record changed in the window, deleted ones included (with_deleted=1), page by page.

        `changed_after` / `changed_before` must carry a zone; they are sent as ISO 8601 with their offset.
        UNCONFIRMED (§3.1, §5.4): which zone YCLIENTS reads these in; its own example has no offset, so it may
        well ignore ours and read the wall time as company-local. Pass them in the company's zone (then both
        readings agree) and read with an overlap; dedupe by (id, last_change_date).

        Records are yielded as YCLIENTS sends them (§1.4; parse leniently). A record changed while we page may
        appear twice or move to a page already read: the overlap of the next pass covers that. Stops once
        meta.total_count distinct records are read, at an empty page, or at `success: false` with "Не найдено"
        (an empty result) — never merely at a short page: the largest `count` YCLIENTS serves is unconfirmed
        (§3.1), and a server that caps it answers short pages with more to come. Raises YclientsApiError, possibly
        after some records were yielded, when the listing cannot be read to its end: a page that brings no record
        not already read (a server ignoring `page`), or `max_pages` pages without reaching the end.
        """
        company = _company_path_id(company_id)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"yclients: page_size must be a positive int, not {page_size!r}")
        after, before = _iso(changed_after, "changed_after"), _iso(changed_before, "changed_before")
        if changed_after > changed_before:
            raise ValueError("yclients: changed_after is later than changed_before")
        window = {"changed_after": after, "changed_before": before, "with_deleted": 1}
        yield from self._record_pages(company, window, page_size=page_size, max_pages=max_pages)

    def _record_pages(self, company: str, window: Mapping[str, Any], *, page_size: int,
                      max_pages: int) -> Iterator[dict[str, Any]]:
        """The records of `window`, page after page, to the listing's end (the rules: changed_records)."""
        page, size, total = 1, page_size, None
        seen: set[str] = set()  # the ids read so far: what counts towards total_count
        while True:
            if page > max_pages:
                raise YclientsApiError(f"yclients: records: stopped after {max_pages} pages, "
                                       f"{len(seen)} of {_count(total)} read", transient=True)
            body = self._get(f"/records/{company}", {**window, "page": page, "count": size}, what="records",
                             empty_when_not_found=True)
            if body is None:  # "Не найдено": nothing (more) matched
                return
            records = _records(body)
            total = int_or_none(_meta(body).get("total_count"))
            if not records:  # the server has nothing at this offset, whatever total_count said
                return
            ids = {str(record.get("id")) for record in records}
            if ids <= seen:  # a server that ignores `page` would keep us here forever
                raise YclientsApiError(f"yclients: records page {page} repeats records already read, "
                                       f"{len(seen)} of {_count(total)} read", transient=False)
            seen |= ids
            yield from records
            if total is not None and len(seen) >= total:
                return
            if page == 1 and len(records) < size:
                # The server serves fewer than asked: ask for just that many from now on, so that page N starts
                # where page N-1 ended whether it counts offsets by the size asked or the size served.
                size = len(records)
            page += 1

    def get_record(self, company_id: str | int, record_id: str | int) -> dict[str, Any]:
        """GET /record/{company}/{record} (§3.3): the record's `data` object, as YCLIENTS sends it."""
        path = f"/record/{_company_path_id(company_id)}/{_path_id(record_id, 'record_id')}"
        return _data_object(self._get(path, {"include_consumables": 0, "include_finance_transactions": 0},
                                      what="record"), "record")

    def put_record(self, company_id: str | int, record_id: str | int, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT /record/{company}/{record} (§3.4): a full update, so `body` is the whole record (see
        connector.targets.yclients.record_update); the record as saved."""
        path = f"/record/{_company_path_id(company_id)}/{_path_id(record_id, 'record_id')}"
        return _data_object(self._call("PUT", path, None, what="record update", json=dict(body)), "record update")

    def company(self, company_id: str | int) -> dict[str, Any]:
        """GET /company/{id}: the `data` object (timezone_name, title, address…)."""
        body = self._get(f"/company/{_company_path_id(company_id)}", None, what="company")
        return _data_object(body, "company")

    # --- wire ---------------------------------------------------------------------------------------------------

    # Without `empty_when_not_found` a «Не найдено» is an error like any other refusal, so no None comes back.
    @overload
    def _get(self, path: str, params: Mapping[str, Any] | None, *, what: str,
             empty_when_not_found: Literal[False] = False) -> dict[str, Any]: ...

    @overload
    def _get(self, path: str, params: Mapping[str, Any] | None, *, what: str,
             empty_when_not_found: bool) -> dict[str, Any] | None: ...

    def _get(self, path: str, params: Mapping[str, Any] | None, *, what: str,
             empty_when_not_found: bool = False) -> dict[str, Any] | None:
        """GET one envelope: the body when `success` holds; None for a list's «Не найдено» (with the flag)."""
        return self._call("GET", path, params, what=what, empty_when_not_found=empty_when_not_found)

    def _call(self, method: str, path: str, params: Mapping[str, Any] | None, *, what: str,
              empty_when_not_found: bool = False, json: Any = None) -> dict[str, Any] | None:
        """One call and its envelope; a 429 is waited out a few times (a PUT of the whole record may be sent
        again as it is: it says the same thing twice)."""
        for tries in range(1, RETRIES_429 + 2):
            response = self._send(method, path, params, what=what, json=json)
            if response.status_code != 429 or tries > RETRIES_429:
                break
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = WAIT_429 if wait is None else wait
            if wait > MAX_RETRY_AFTER:
                break
            self._throttle.hold(wait)  # the limit is per IP: every client in this process waits
        return self._read(response, what=what, empty_when_not_found=empty_when_not_found)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, *, what: str,
              json: Any = None) -> requests.Response:
        headers = {"Authorization": self._authorization, "Accept": ACCEPT, "Content-Type": "application/json"}
        self._throttle.wait()
        # Transport failures are translated once, in connector.transport.wire (no URL, no chain);
        # 429 and 5xx are read here.
        try:
            return wire.request(self.http, method, self.base_url + path, provider="yclients", what=what,
                                timeout=self.timeout, transient_statuses=False, params=params, headers=headers,
                                **({"json": json} if json is not None else {}))
        except TransientError as error:
            raise YclientsApiError(str(error), transient=True) from None

    @staticmethod
    def _read(response: requests.Response, *, what: str, empty_when_not_found: bool) -> dict[str, Any] | None:
        status = response.status_code
        body = json_or_none(response)
        body = body if isinstance(body, dict) else None
        message = _message(body)
        if status == 429 or status >= 500:
            raise YclientsApiError(f"yclients: {what}: HTTP {status}{_quoted(message)}", transient=True,
                                   retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                                   status_code=status)
        if body is not None and _failed(body) and empty_when_not_found and _is_not_found(message):
            return None  # on a 200 or a 404 alike (§2: [SM] treats the message, not the status)
        if not 200 <= status < 300:
            raise YclientsApiError(f"yclients: {what}: HTTP {status}{_quoted(message)}", transient=False,
                                   status_code=status)
        if body is None:
            raise YclientsApiError(f"yclients: {what}: HTTP {status}, answer is not a JSON object", transient=True,
                                   status_code=status)
        if _failed(body):
            raise YclientsApiError(f"yclients: {what}: HTTP {status}, success false{_quoted(message)}",
                                   transient=False, status_code=status)
        return body


def _company_path_id(company_id: str | int) -> str:
    """The company id as it goes into a path: digits only (no "../", no query smuggled in)."""
    text = str(company_id).strip() if isinstance(company_id, int | str) and not isinstance(company_id, bool) else ""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ValueError(f"yclients: company_id must be a positive integer, not {company_id!r}")
    return str(int(text))


def _path_id(value: str | int, name: str) -> str:
    """An id as it goes into a path: digits only."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"yclients: {name} must be a whole number, not {value!r}")
    return text


def _data_object(body: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    data = body.get("data") if body is not None else None
    if not isinstance(data, dict):
        raise YclientsApiError(f"yclients: {what} answer has no object in 'data'", transient=False)
    return data


def _iso(moment: datetime, name: str) -> str:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"yclients: {name} must be a datetime with a zone")
    return moment.isoformat(timespec="seconds")  # 2026-11-27T11:02:41+03:00


def _records(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of one page: `data` as a list of objects (null read as none)."""
    records = body.get("data")
    if records is None:
        return []
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise YclientsApiError("yclients: records answer has no list of record objects in 'data'", transient=False)
    return records


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = body.get("meta")
    return meta if isinstance(meta, Mapping) else {}  # `meta` is {} or [] when empty (§5.8)


def _failed(body: Mapping[str, Any]) -> bool:
    success = body.get("success", True)
    return success is False or success in (0, "0", "false")


def _message(body: Mapping[str, Any] | None) -> str | None:
    """meta.message (YCLIENTS' own words; never meta.errors, which may echo submitted values)."""
    if body is None:
        return None
    message = _meta(body).get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    message = " ".join(message.split())
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


def _count(total: int | None) -> str:
    return "?" if total is None else str(total)


def _quoted(message: str | None) -> str:
    return f" «{message}»" if message else ""


def _is_not_found(message: str | None) -> bool:
    return message is not None and message.strip().rstrip(".!").lower() == NOT_FOUND
