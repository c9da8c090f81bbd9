"""SMSC (smsc.ru / smscentre.com): SMS with operator delivery receipts, by callback or by polling.

Wire format (providers.md §5.2; status mapping §6.2; smscentre.com/api/http/send/sms/sms_answer/ and
smscentre.com/api/http/status_messages/status_answer for the answers):

    POST {base_url}/send.php    login+psw | apikey, phones=+<E.164 digits>, mes, fmt=3, charset=utf-8
                                [, sender], id=<client id: our message id, or a number derived from it>
        → {"id": <n>, "cnt": <parts>}
        | {"error": "…", "error_code": N}            (N = 1, 2, 4, 5, 9)
        | {"error": "…", "error_code": N, "id": <n>} (N = 3, 6, 7, 8)
    POST {base_url}/status.php  login+psw | apikey, phone=<digits>, id=<n>, fmt=3
        → {"status": S, "last_date": "…", "last_timestamp": <unix>, "flag": …, "err": E}
        | {"error": "…", "error_code": N}            (1 parameters, 2 login, 4 IP blocked, 5 delete, 9 too many)
    callback (set in the SMSC cabinet, "Уведомления о событиях"): form fields id, phone, status, err, …

**status.php needs the phone as well as the id** (SMSC ids are not unique across numbers; a client id may even
repeat). `poll` gets only provider_message_ids, so the provider message id is `"<smsc id>:<phone digits>"`.
This puts the patient's number in the stored provider_message_id: it must not be logged as is. Callbacks
rebuild the same form from their `id` and `phone` fields. Every error string here carries codes only.

Send error_code → SendResult (order per §5.2, codes 1–4 and the id-carrying 3, 6, 7, 8 from sms_answer):

    1 parameters, 2 login/password (or IP not allowed), 3 funds, 5 date format, 6 forbidden text/sender → REJECTED
    7 bad phone format, 8 cannot be delivered to this number                                     → NOT_REGISTERED
    4 IP temporarily blocked                                                                      → TransientError
    9 identical request repeated within a minute                                                  → FAILED
      (an earlier identical send probably went through; retrying would risk a duplicate)

A successful send is QUEUED ("accepted by the gateway, not yet handed to the network", §6.1; SMSC's own
status for it is -1). HTTP 429 / 5xx, timeouts and connection errors raise TransientError.

Status codes (status.php, callbacks) → AttemptStatus, per §6.2:

    -1 queued · 0 sent · 1 delivered · 2, 4 read · 3 expired · 20 failed · 22, 25 not_registered ·
    23, 24, -2 rejected · -3 (not found): no report

UNCONFIRMED: the numbering of send errors 5–9 (order from a client enum, consistent with status.php's 5 and 9);
the callback's full field list and whether SMSC signs it (we rely on `?secret=` in the registered URL); `ts`
in a callback as the unix time of the status; the answer SMSC expects from the callback (we send 200 "OK");
whether status.php wants the phone with "+" (we send digits, as the official clients do); sending a client
`id` is per the official clients' docs (32-bit integer 1…2147483647), so a message id that is not one (ours are
hex) is sent as a number derived from it (`client_id`), and `lookup` asks status.php by phone + that number when
a send's answer was lost: -3 (or error_code 3) is "not found", i.e. not sent; anything else means SMSC has it.
"""

from __future__ import annotations

import hashlib
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

DEFAULT_BASE_URL = "https://smsc.ru/sys"
MAX_CLIENT_ID = 2_147_483_647
NOT_FOUND = -3  # status.php: no message with this id for this phone

STATUSES: dict[int, S] = {
    -2: S.REJECTED,
    -1: S.QUEUED,
    0: S.SENT,
    1: S.DELIVERED,
    2: S.READ,
    3: S.EXPIRED,
    4: S.READ,
    20: S.FAILED,
    22: S.NOT_REGISTERED,
    23: S.REJECTED,
    24: S.REJECTED,
    25: S.NOT_REGISTERED,
}
STATUS_LABELS = {-2: "stopped", 3: "expired", 20: "cannot be delivered", 22: "invalid number", 23: "prohibited",
                 24: "insufficient funds", 25: "unavailable number"}

SEND_ERRORS: dict[int, tuple[S, str]] = {
    1: (S.REJECTED, "parameter error"),
    2: (S.REJECTED, "wrong login or password"),
    3: (S.REJECTED, "insufficient funds"),
    5: (S.REJECTED, "bad date format"),
    6: (S.REJECTED, "message forbidden (text or sender)"),
    7: (S.NOT_REGISTERED, "bad phone format"),
    8: (S.NOT_REGISTERED, "message to this number cannot be delivered"),
    9: (S.FAILED, "identical request within a minute (an earlier one may have gone through)"),
}
STATUS_ERRORS = {1: "parameter error", 2: "wrong login or password", 4: "IP temporarily blocked",
                 5: "delete error", 9: "too many status requests"}




class SmscChannel(Channel):
    """Config: login + password, or apikey; sender; callback_secret; base_url (default https://smsc.ru/sys);
    timeout (seconds, or [connect, read])."""

    name = "smsc"
    channels = frozenset({"sms"})
    has_receipts = True
    can_poll = True
    can_lookup = True  # status.php answers by phone + the client id we send with every message
    status_window = timedelta(days=3)  # SMS validity runs for days; three is our assumption of its memory

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None):
        super().__init__(config, session)
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = request_timeout(config.get("timeout"), self.name)

    # --- send -------------------------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> SendResult:
        digits = phone_digits(message.recipient.phone)
        if not digits:
            return SendResult(S.NOT_REGISTERED, error="smsc: no phone number")
        data = {**self._auth(), "phones": "+" + digits, "mes": message.text, "fmt": "3", "charset": "utf-8"}
        if self.config.get("sender"):
            data["sender"] = str(self.config["sender"])
        # Our id, so that a send whose answer is lost can be asked about (`lookup`) instead of sent again.
        data["id"] = client_id(message.message_id)
        try:
            body = self._post("send.php", data)
        except HttpRefused as refused:
            return SendResult(S.REJECTED, error=str(refused))

        smsc_id = body.get("id")
        provider_id = _provider_id(smsc_id, digits) if smsc_id not in (None, "") else None
        if "error" in body or "error_code" in body:
            code = int_or_none(body.get("error_code"))
            if code == 4:
                raise TransientError("smsc: error_code 4 (IP temporarily blocked)")
            status, label = SEND_ERRORS.get(code, (S.FAILED, "unknown error")) if code is not None else (
                S.FAILED, "no error_code")
            return SendResult(status, provider_message_id=provider_id, error=f"smsc error_code {code}: {label}")
        if provider_id is None:
            raise TransientError("smsc: send answer without id")
        return SendResult(S.QUEUED, provider_message_id=provider_id)

    # --- poll -------------------------------------------------------------------------------------------

    def poll(self, provider_message_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        for provider_id in dict.fromkeys(provider_message_ids):
            smsc_id, _, digits = str(provider_id or "").partition(":")
            if not smsc_id or not digits:
                continue  # not an id this adapter made: nothing to ask
            body = self._status(digits, smsc_id)
            if body is None:
                continue  # not found: nothing to report
            report = _report(provider_id, int_or_none(body.get("status")), int_or_none(body.get("err")), _at(body))
            if report is not None:
                reports.append(report)
        return reports

    # --- lookup: a send whose answer was lost, asked about by the client id we sent ---------------------

    def lookup(self, message: OutboundMessage) -> SendResult | None:
        digits = phone_digits(message.recipient.phone)
        if not digits:
            return None  # send() never called SMSC for it
        smsc_id = client_id(message.message_id)
        body = self._status(digits, smsc_id)
        if body is None:
            return None
        code = int_or_none(body.get("status"))
        report = _report(_provider_id(smsc_id, digits), code, int_or_none(body.get("err")), _at(body))
        if report is None:
            # A status we cannot read still says SMSC holds the message: it took it, so it is not resent.
            return SendResult(S.QUEUED, provider_message_id=_provider_id(smsc_id, digits))
        return SendResult(report.status, provider_message_id=report.provider_message_id, error=report.error)

    def _status(self, digits: str, smsc_id: str) -> Mapping[str, Any] | None:
        """status.php's answer for one message; None when SMSC has no such message (status -3, or error_code 3
        in the multi-message form: both are documented for "not found", so both are read that way)."""
        body = self._post("status.php", {**self._auth(), "phone": digits, "id": smsc_id, "fmt": "3"})
        if "error" in body or "error_code" in body:
            code = int_or_none(body.get("error_code"))
            if code == 3:
                return None
            label = STATUS_ERRORS.get(code, "unknown error") if code is not None else "no error_code"
            if code == 4:
                raise TransientError(f"smsc: status error_code {code} ({label})")
            if code == 9:
                raise TransientError(f"smsc: status error_code {code} ({label})", retry_after=60.0)
            raise ChannelError(f"smsc: status request refused, error_code {code} ({label})")
        return None if int_or_none(body.get("status")) == NOT_FOUND else body

    # --- callbacks --------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        require_secret(self.config.get("callback_secret"), request.query.get("secret"),
                       "smsc: callback secret missing or wrong")
        fields = {k: v for k, v in request.query.items() if k != "secret"}
        fields.update(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        reports: list[StatusReport] = []
        smsc_id, digits = fields.get("id", "").strip(), phone_digits(fields.get("phone"))
        code = int_or_none(fields.get("status"))
        if smsc_id and digits and code is not None:  # else an incoming SMS or another event: not ours
            stamp = fields.get("ts", "").strip()
            at = datetime.fromtimestamp(int(stamp), UTC) if stamp.isdigit() else None
            report = _report(_provider_id(smsc_id, digits), code, int_or_none(fields.get("err")), at)
            if report is not None:
                reports.append(report)
        return CallbackResult(reports=reports, body="OK", content_type="text/plain")

    # --- HTTP -------------------------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        if self.config.get("apikey"):
            return {"apikey": str(self.config["apikey"])}
        if self.config.get("login") and self.config.get("password"):
            return {"login": str(self.config["login"]), "psw": str(self.config["password"])}
        raise ChannelError("smsc: neither apikey nor login + password is configured")

    def _post(self, path: str, data: Mapping[str, str]) -> Mapping[str, Any]:
        return post_form_for_json(self.http, f"{self.base_url}/{path}", data, timeout=self.timeout,
                                  provider="smsc", what=path)


def _report(provider_id: str, code: int | None, err: int | None, at: datetime | None) -> StatusReport | None:
    status = STATUSES.get(code) if code is not None else None
    if code is None or status is None:
        return None  # -3 (not found) or a code we do not know: no report rather than a guess
    error = None
    if status in (S.FAILED, S.REJECTED, S.NOT_REGISTERED, S.EXPIRED):
        error = f"smsc status {code} ({STATUS_LABELS.get(code, 'failed')})" + (f", err {err}" if err else "")
    return StatusReport(status, provider_message_id=provider_id, at=at, error=error, raw_status=str(code))


def _provider_id(smsc_id: Any, digits: str) -> str:
    return f"{smsc_id}:{digits}"


def _at(body: Mapping[str, Any]) -> datetime | None:
    stamp = int_or_none(body.get("last_timestamp"))
    return datetime.fromtimestamp(stamp, UTC) if stamp else None


def client_id(message_id: str) -> str:
    """The SMSC client id (an integer 1…2147483647) for our message id: the id itself when it is one, else a
    number derived from it (the same every time, so `lookup` finds what `send` sent). Two messages to the same
    phone sharing one is a chance of about one in two billion; status.php asks by phone and id together."""
    if message_id.isascii() and message_id.isdigit() and 1 <= int(message_id) <= MAX_CLIENT_ID:
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8")).digest()
    return str(int.from_bytes(digest[:8], "big") % MAX_CLIENT_ID + 1)
