"""SMS.ru (sms.ru): SMS with operator delivery receipts, by callback or by polling.

Wire format (providers.md §5.1; status mapping §6.2):

    POST {base_url}/sms/send    api_id, to=<digits>, msg, json=1 [, from, test=1]
        → {"status": "OK", "status_code": 100,
           "sms": {"<phone>": {"status": "OK", "status_code": 100, "sms_id": "…"}
                              | {"status": "ERROR", "status_code": 207, "status_text": "…"}}, "balance": …}
    POST {base_url}/sms/status  api_id, sms_id=<id>[,<id>…] (up to 100), json=1
        → {"status": "OK", "status_code": 100, "sms": {"<id>": {"status": "OK", "status_code": 103, …}}}
    callback (registered in the SMS.ru cabinet): POST form, field data[] repeated (or data[0], data[1] …),
        each a newline-separated record "sms_status\\n<sms_id>\\n<status_code>\\n…"; the answer must be "100".

POST is used for every call: the credentials stay out of URLs, and a third-party client spec says SMS.ru
answers 210 to a GET where it wants a POST.

Delivery status codes (sms/status, callbacks) → AttemptStatus, per §6.2:

    100 queued · 101, 102 sent · 103 delivered · 104 expired · 105, 108 rejected · 106, 107 failed ·
    110 read (Viber only) · 130–132 rejected · 150 not_registered · -1 (not found): no report

Send/request error codes → SendResult status (§5.1, §6.2):

    202 bad number / no route, 207 no route, 209 in the stop-list      → NOT_REGISTERED
    200 bad api_id, 201 funds, 203 empty text, 204 sender not approved,
    205 too long, 206 daily limit, 208 bad time, 210 GET for POST       → REJECTED
    any other code                                                      → FAILED

A successful send is QUEUED (its per-number status_code is 100, "queued" in §6.2), with the sms_id.
HTTP 429 and 5xx, timeouts and connection errors raise TransientError (429 with its Retry-After).

UNCONFIRMED (not in providers.md; from a third-party client spec, or my reading):
* codes beyond 210: 212, 216, 217, 221, 230–233, 300–302 are treated as REJECTED; 214 (number abroad with
  "Russia only" set), 215 (global stop-list) as NOT_REGISTERED; 220 (service temporarily unavailable) and
  500 (server error) as transient;
* the fourth line of a callback record being the unix time of the status (used as `at` when it parses);
* that SMS.ru answers HTTP 429 at all; it is handled like any 429.
* Status codes the table does not know (and -1) yield no report rather than a guessed terminal state.

Callbacks carry no signature: the URL registered with SMS.ru must carry `?secret=<callback_secret>`.
Nothing of a patient goes into errors: messages carry codes and our own labels, never the phone or
SMS.ru's status_text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import requests

from connector.channels.base import (
    CallbackRequest,
    CallbackResult,
    Channel,
    ChannelError,
    HttpRefused,
    OutboundMessage,
    SendResult,
    StatusReport,
    TransientError,
)
from connector.core.model import AttemptStatus as S
from connector.transport.wire import (
    int_or_none,
    phone_digits,
    post_form_for_json,
    request_timeout,
    require_secret,
)

DEFAULT_BASE_URL = "https://sms.ru"
STATUS_BATCH = 100  # ids per sms/status request

DELIVERY_STATUSES: dict[int, S] = {
    100: S.QUEUED,
    101: S.SENT,
    102: S.SENT,
    103: S.DELIVERED,
    104: S.EXPIRED,
    105: S.REJECTED,
    106: S.FAILED,
    107: S.FAILED,
    108: S.REJECTED,
    110: S.READ,
    130: S.REJECTED,
    131: S.REJECTED,
    132: S.REJECTED,
    150: S.NOT_REGISTERED,
}

# Request / per-number errors of sms/send. Labels are ours (never SMS.ru's status_text).
SEND_ERRORS: dict[int, tuple[S, str]] = {
    200: (S.REJECTED, "wrong api_id"),
    201: (S.REJECTED, "insufficient funds"),
    202: (S.NOT_REGISTERED, "bad recipient or no route"),
    203: (S.REJECTED, "empty text"),
    204: (S.REJECTED, "sender name not approved"),
    205: (S.REJECTED, "message too long"),
    206: (S.REJECTED, "daily limit reached"),
    207: (S.NOT_REGISTERED, "no route to this number"),
    208: (S.REJECTED, "bad time parameter"),
    209: (S.NOT_REGISTERED, "number in the stop-list"),
    210: (S.REJECTED, "GET used where POST is required"),
    # UNCONFIRMED: from a third-party client spec, not providers.md
    212: (S.REJECTED, "text not in UTF-8"),
    214: (S.NOT_REGISTERED, "number abroad, account sends to Russia only"),
    215: (S.NOT_REGISTERED, "number in the global stop-list"),
    216: (S.REJECTED, "forbidden word in the text"),
    217: (S.REJECTED, "credit advertising without the required phrase"),
    221: (S.REJECTED, "a letter sender name is required"),
    230: (S.REJECTED, "daily limit to this number"),
    231: (S.REJECTED, "identical messages per minute limit"),
    232: (S.REJECTED, "identical messages per day limit"),
    233: (S.REJECTED, "repeated code messages limit"),
    300: (S.REJECTED, "token invalid"),
    301: (S.REJECTED, "wrong api_id or login/password"),
    302: (S.REJECTED, "account not confirmed"),
}
TRANSIENT_CODES = {220: "service temporarily unavailable", 500: "server error"}  # UNCONFIRMED, see above




class SmsRuChannel(Channel):
    """Config: api_id, sender (registered name, sent as `from`), callback_secret, test (bool),
    base_url (default https://sms.ru), timeout (seconds, or [connect, read])."""

    name = "smsru"
    channels = frozenset({"sms"})
    has_receipts = True
    can_poll = True
    status_window = timedelta(days=3)  # SMS validity runs for days; three is our assumption of its memory

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None):
        super().__init__(config, session)
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = request_timeout(config.get("timeout"), self.name)

    # --- send -------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        digits = phone_digits(message.recipient.phone)
        if not digits:
            return SendResult(S.NOT_REGISTERED, error="smsru: no phone number")
        data = {"api_id": self._api_id(), "to": digits, "msg": message.text, "json": "1"}
        if self.config.get("sender"):
            data["from"] = str(self.config["sender"])
        if _truthy(self.config.get("test")):
            data["test"] = "1"
        try:
            body = self._post("sms/send", data)
        except HttpRefused as refused:
            return SendResult(S.REJECTED, error=str(refused))

        if body.get("status") != "OK":
            return _send_error(int_or_none(body.get("status_code")))
        entries = body.get("sms")
        if not isinstance(entries, Mapping) or not entries:
            raise TransientError("smsru: send answer without a per-number result")
        entry = entries.get(digits)
        if entry is None and len(entries) == 1:
            entry = next(iter(entries.values()))  # SMS.ru may key it differently from what we sent
        if not isinstance(entry, Mapping):
            raise TransientError("smsru: send answer without a per-number result")
        code = int_or_none(entry.get("status_code"))
        if entry.get("status") != "OK":
            return _send_error(code)
        sms_id = entry.get("sms_id")
        if not sms_id:
            raise TransientError("smsru: send answer without sms_id")
        status = DELIVERY_STATUSES.get(code, S.QUEUED) if code is not None else S.QUEUED
        return SendResult(status, provider_message_id=str(sms_id))

    # --- poll -------------------------------------------------------------------------------------------

    def poll(self, provider_message_ids: Sequence[str]) -> list[StatusReport]:
        ids = [str(i) for i in dict.fromkeys(provider_message_ids) if i]
        reports: list[StatusReport] = []
        for start in range(0, len(ids), STATUS_BATCH):
            batch = ids[start : start + STATUS_BATCH]
            body = self._post("sms/status", {"api_id": self._api_id(), "sms_id": ",".join(batch), "json": "1"})
            if body.get("status") != "OK":
                code = int_or_none(body.get("status_code"))
                if code in TRANSIENT_CODES:
                    raise TransientError(f"smsru: status request code {code} ({TRANSIENT_CODES[code]})")
                label = SEND_ERRORS.get(code, (None, "unknown error"))[1] if code is not None else "no code"
                raise ChannelError(f"smsru: status request refused, code {code} ({label})")
            entries = body.get("sms")
            if not isinstance(entries, Mapping):
                continue
            for sms_id in batch:
                entry = entries.get(sms_id)
                if isinstance(entry, Mapping):
                    report = _report(sms_id, int_or_none(entry.get("status_code")))
                    if report is not None:
                        reports.append(report)
        return reports

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        require_secret(self.config.get("callback_secret"), request.query.get("secret"),
                       "smsru: callback secret missing or wrong")
        reports: list[StatusReport] = []
        for key, value in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True):
            if not (key == "data" or (key.startswith("data[") and key.endswith("]"))):
                continue
            lines = value.replace("\r\n", "\n").split("\n")
            if len(lines) < 3 or lines[0].strip() != "sms_status":
                continue  # other record types (e.g. call checks) are not ours
            at = None
            if len(lines) > 3 and lines[3].strip().isdigit():
                at = datetime.fromtimestamp(int(lines[3].strip()), UTC)
            report = _report(lines[1].strip(), int_or_none(lines[2].strip()), at)
            if report is not None:
                reports.append(report)
        return CallbackResult(reports=reports, body="100", content_type="text/plain")

    # --- HTTP -------------------------------------------------------------------------------------------

    def _api_id(self) -> str:
        api_id = self.config.get("api_id")
        if not api_id:
            raise ChannelError("smsru: api_id is not configured")
        return str(api_id)

    def _post(self, path: str, data: Mapping[str, str]) -> Mapping[str, Any]:
        return post_form_for_json(self.http, f"{self.base_url}/{path}", data, timeout=self.timeout,
                                  provider="smsru", what=path)


def _send_error(code: int | None) -> SendResult:
    if code in TRANSIENT_CODES:
        raise TransientError(f"smsru: code {code} ({TRANSIENT_CODES[code]})")
    status, label = SEND_ERRORS.get(code, (S.FAILED, "unknown error")) if code is not None else (S.FAILED, "no code")
    return SendResult(status, error=f"smsru {code}: {label}")


def _report(sms_id: str, code: int | None, at: datetime | None = None) -> StatusReport | None:
    status = DELIVERY_STATUSES.get(code) if code is not None else None
    if status is None or not sms_id:
        return None  # -1 (not found) or a code we do not know: no report rather than a guess
    failed = status in (S.FAILED, S.REJECTED, S.NOT_REGISTERED, S.EXPIRED)
    return StatusReport(
        status,
        provider_message_id=sms_id,
        at=at,
        error=f"smsru status {code}" if failed else None,
        raw_status=str(code),
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
