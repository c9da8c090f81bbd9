"""Wahelp (wahelp.ru): MAX, Telegram and WhatsApp by phone number through one aggregator account; wire formats only.

One message is three calls (providers.md §1.2-1.3, read from a Swagger export of "Wahelp Rest API" and two
working clients):

    POST /app/user/login                                        {"login", "password"} → data.access_token
    POST /app/projects/{project}/channels/{uuid}/users          {"phone"} → data.id (the recipient in that channel)
    POST /app/projects/{project}/channels/{uuid}/send_message/{user_id}   {"text"} → the message object

with `Authorization: Bearer <token>` and `X-Project: <project>` on the project calls. The token is cached on the
instance; a 401 logs in again once and repeats the call. Status changes come back as `channel.message.updated`
webhooks to /callbacks/wahelp/<tenant>?secret=…. A 2xx send is SENT when its answer says sent (or later) and
QUEUED otherwise: providers.md §6.2 reads a bare "send 2xx" as only accepted.

UNCONFIRMED (providers.md §1), hence parsed defensively and kept configurable:
* the canonical host: `base_url` is the API root (default https://wahelp.ru/api; app.wahelp.ru/api and
  app.wahelp.me/api are seen in clients);
* the phone format the users call wants: digits without "+" by default, `phone_format: e164` sends "+7…";
* error codes: none are documented. "This number has no such messenger" and rate limits are recognised by the
  phrases a production client matches (номер не зарегистрирован, мессенджер не подключен, слишком много попыток…);
  an answer to the users call that is an error but names an existing user id is taken as "already there";
* where send_message puts the message id and status (data, data.message or the top level);
* the whole webhook payload: the event name, `status`/`state` under data or data.message, its values (we map
  sent/delivered/read/failed/error and near synonyms; anything else gives no report) and the time field;
* webhook authentication: Wahelp documents none, so the URL carries our own `secret`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from connector.channels.base import (
    CallbackRequest,
    CallbackResult,
    Channel,
    OutboundMessage,
    Recipient,
    SendResult,
    StatusReport,
    TransientError,
)
from connector.core.model import AttemptStatus
from connector.transport import wire
from connector.transport.wire import json_or_none, request_timeout, require_secret, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://wahelp.ru/api"
STATUS_EVENT = "channel.message.updated"

# Phrases, not codes: Wahelp documents no error codes (providers.md §1.4).
# Matched on the scrubbed text, so "Номер <number> не зарегистрирован…" counts too.
_NOT_REGISTERED = re.compile(r"номер.{0,40}?не (зарегистрирован|подключен)|мессенджер.{0,40}?не подключен|"
                             r"messenger.{0,40}?not connected")
_RATE_LIMITED = re.compile(r"слишком много попыток|too many requests")
_ACCOUNT = re.compile(r"баланс|balance|недостаточно средств|insufficient funds|оплат|тариф|payment|unauthori[sz]ed|"
                      r"unauthenticated|forbidden|доступ запрещ|access denied")
_PHONE_LIKE = re.compile(r"\+?\d[\d\s()\-]{5,}\d")  # any run of 7+ digits a provider may echo back

# providers.md §1.6 names sent/delivered/read/failed/error; the rest are synonyms seen in clients, plus the
# WhatsApp Web ack names (pending/server/device/read/played), since Wahelp drives WhatsApp Web accounts. A guess.
_STATUSES = {
    **dict.fromkeys(("queued", "queue", "pending", "new", "created", "waiting", "in_queue"), AttemptStatus.QUEUED),
    **dict.fromkeys(("sent", "send", "sended", "server"), AttemptStatus.SENT),
    **dict.fromkeys(("delivered", "delivery", "delivered_to_recipient", "device"), AttemptStatus.DELIVERED),
    **dict.fromkeys(("read", "readed", "seen", "viewed", "played"), AttemptStatus.READ),
    **dict.fromkeys(("failed", "fail", "error", "not_delivered", "undelivered"), AttemptStatus.FAILED),
    "expired": AttemptStatus.EXPIRED,
}
_REFUSED = (AttemptStatus.FAILED, AttemptStatus.EXPIRED)


class _RefusedError(Exception):
    """The account itself is refused (login, credentials): every send is REJECTED until ops fix the config."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any  # parsed JSON, or None
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and not (isinstance(self.body, Mapping) and self.body.get("success") is False)


class WahelpChannel(Channel):
    """Config: base_url, login, password and/or token, project_id, channels {max|telegram|whatsapp: channel uuid},
    callback_secret, timeout (seconds, or [connect, read]), phone_format ("digits" or "e164")."""

    name = "wahelp"
    channels = frozenset({"max", "telegram", "whatsapp"})
    has_receipts = True

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None):
        super().__init__(config, session)
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = request_timeout(config.get("timeout"), self.name)
        self._token: str | None = config.get("token") or None
        self._lock = threading.Lock()

    def can_address(self, recipient: Recipient, channel: str) -> bool:
        return recipient.phone is not None and channel in self.channels

    # ---- sending ----

    def send(self, message: OutboundMessage) -> SendResult:
        uuid = (self.config.get("channels") or {}).get(message.channel)
        if not uuid:
            return SendResult(AttemptStatus.REJECTED, error=f"no wahelp channel configured for {message.channel}")
        project = self.config.get("project_id")
        if not project:
            return SendResult(AttemptStatus.REJECTED, error="no wahelp project_id configured")
        if not message.recipient.phone:
            return SendResult(AttemptStatus.NOT_REGISTERED, error="recipient has no phone")
        channel_path = f"/app/projects/{project}/channels/{uuid}"
        try:
            user = self._call("POST", f"{channel_path}/users", {"phone": self._phone(message.recipient.phone)})
            user_id = _user_id(user)
            if user_id is None:
                return _refusal("wahelp users", user, message.text)
            sent = self._call("POST", f"{channel_path}/send_message/{user_id}", {"text": message.text})
            if not sent.ok:
                return _refusal("wahelp send_message", sent, message.text)
            return _accepted(sent.body)
        except _RefusedError as refused:
            return SendResult(AttemptStatus.REJECTED, error=str(refused))

    def _phone(self, e164: str) -> str:
        return e164 if self.config.get("phone_format") == "e164" else e164.lstrip("+")

    def _call(self, method: str, path: str, payload: Mapping[str, Any]) -> _Answer:
        """One project call with the cached token; a 401 logs in again once and repeats it."""
        token = self._token or self._fresh_token(stale=None)
        answer = self._request(method, path, payload, token)
        if answer.status == 401 and self._can_login():
            log.info("wahelp: token refused, logging in again")
            answer = self._request(method, path, payload, self._fresh_token(stale=token))
        return answer

    def _can_login(self) -> bool:
        return bool(self.config.get("login") and self.config.get("password"))

    def _fresh_token(self, stale: str | None) -> str:
        with self._lock:
            if self._token and self._token != stale:  # another thread logged in meanwhile
                return self._token
            if not self._can_login():
                raise _RefusedError("wahelp: no token and no login/password configured")
            credentials = {"login": self.config["login"], "password": self.config["password"]}
            answer = self._request("POST", "/app/user/login", credentials, token=None, project=False)
            token = _token_of(answer.body) if answer.ok else None
            if not token:
                raise _RefusedError(f"wahelp login refused: HTTP {answer.status} {_words(answer.body)}".rstrip())
            self._token = token
            return token

    def _request(self, method: str, path: str, payload: Mapping[str, Any], token: str | None,
                 project: bool = True) -> _Answer:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if project and self.config.get("project_id"):
            headers["X-Project"] = str(self.config["project_id"])
        response = wire.request(self.http, method, self.base_url + path, provider=self.name, what=_what(path),
                                timeout=self.timeout, json=payload, headers=headers)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return _Answer(response.status_code, json_or_none(response), retry_after)

    # ---- callbacks ----

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        require_secret(self.config.get("callback_secret"), request.query.get("secret"),
                       "wahelp callback: missing or wrong secret")
        try:
            payload = json.loads(request.body or b"")
        except (ValueError, UnicodeDecodeError):
            return CallbackResult(status_code=400, body='{"ok": false, "error": "invalid json"}')
        events = payload if isinstance(payload, list) else [payload]
        return CallbackResult(reports=tuple(report for event in events for report in _reports(event)))


# ---- wire format helpers (pure) ----

def _what(path: str) -> str:
    """The call's name for an error, without the ids in its path: login, users or send_message."""
    parts = path.strip("/").split("/")
    return "send_message" if "send_message" in parts else parts[-1]


def _token_of(body: Any) -> str | None:
    """data.access_token (Swagger export); data.token.token and a top-level access_token are seen in clients."""
    if not isinstance(body, Mapping):
        return None
    raw_data = body.get("data")
    data = raw_data if isinstance(raw_data, Mapping) else {}
    raw_nested = data.get("token")
    nested = raw_nested if isinstance(raw_nested, Mapping) else {}
    token = data.get("access_token") or nested.get("token") or body.get("access_token")
    return str(token) if token else None


def _user_id(answer: _Answer) -> str | None:
    """The recipient id from the users call; also from an error that names the existing user (seen in a client)."""
    body = answer.body if isinstance(answer.body, Mapping) else {}
    data = body.get("data")
    if not isinstance(data, Mapping) or answer.status in (401, 402, 403, 404):
        return None
    if not answer.ok and _NOT_REGISTERED.search(_words(body).lower()):
        return None
    raw_user = data.get("user")
    user = raw_user if isinstance(raw_user, Mapping) else {}
    found = data.get("id") or data.get("user_id") or user.get("id")
    return str(found) if found not in (None, "") else None


def _refusal(step: str, answer: _Answer, text: str) -> SendResult:
    """A refusal in our words: not registered, rate limited (transient), account/config (rejected) or failed."""
    words = _words(answer.body, text)
    low = words.lower()
    error = f"{step}: HTTP {answer.status}" + (f" {words}" if words else "")
    if answer.ok:
        error = f"{step}: answered without an id" + (f" {words}" if words else "")
    if _NOT_REGISTERED.search(low):
        return SendResult(AttemptStatus.NOT_REGISTERED, error=error)
    if _RATE_LIMITED.search(low):
        raise TransientError(error, retry_after=answer.retry_after)
    if answer.status in (401, 402, 403, 404) or _ACCOUNT.search(low):
        return SendResult(AttemptStatus.REJECTED, error=error)
    return SendResult(AttemptStatus.FAILED, error=error)


def _accepted(body: Any) -> SendResult:
    """send_message answered 2xx: SENT when it says so, QUEUED when it only took the message."""
    found = next(_messages(body), None)
    message, outer = found if found else ({}, {})
    provider_id = _message_id(message, outer)
    raw = _raw_status(message, outer)
    status = _STATUSES.get(raw or "")
    missing = None if provider_id else "wahelp send_message: no message id in the answer"
    if status in _REFUSED:
        return SendResult(status, provider_id, error=f"wahelp send_message: status {raw}")
    if status in (AttemptStatus.SENT, AttemptStatus.DELIVERED, AttemptStatus.READ):
        return SendResult(AttemptStatus.SENT, provider_id, error=missing)
    return SendResult(AttemptStatus.QUEUED, provider_id, error=missing)


def _reports(event: Any) -> list[StatusReport]:
    if not isinstance(event, Mapping):
        return []
    name = event.get("event") or event.get("event_type")
    if name is None and isinstance(event.get("type"), str) and "." in event["type"]:
        name = event["type"]
    if name is not None and str(name).lower() != STATUS_EVENT:
        return []
    reports = []
    for message, outer in _messages(event):
        report = _report(message, outer)
        if report:
            reports.append(report)
    return reports


def _messages(body: Any) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(message object, its container) pairs: under data, data.message, data[…], message, or the body itself."""
    if not isinstance(body, Mapping):
        return
    payload = body.get("data", body.get("message", body))
    for item in payload if isinstance(payload, list) else [payload]:
        if isinstance(item, Mapping):
            inner = item.get("message")
            yield (inner, item) if isinstance(inner, Mapping) else (item, body)


def _report(message: Mapping[str, Any], outer: Mapping[str, Any]) -> StatusReport | None:
    if str(message.get("direction") or "").lower() in ("in", "incoming", "inbound") or message.get("is_incoming"):
        return None  # a patient's own message: its status is not one of ours
    provider_id = _message_id(message, outer)
    raw = _raw_status(message, outer)
    if not provider_id or not raw:
        return None
    status = _STATUSES.get(raw)
    if status is None:
        log.info("wahelp callback: unmapped status", extra={"fields": {"raw_status": raw[:40],
                                                                         "provider_message_id": provider_id}})
        return None
    error = _words({"error": message.get("error") or message.get("error_text") or message.get("status_text")})
    return StatusReport(status=status, provider_message_id=provider_id, raw_status=raw, error=error or None,
                        at=_when(message.get("status_at") or message.get("updated_at") or outer.get("status_at")))


def _message_id(message: Mapping[str, Any], outer: Mapping[str, Any]) -> str | None:
    found = message.get("id") or message.get("message_id") or outer.get("message_id")
    return str(found) if found not in (None, "") and not isinstance(found, Mapping | list) else None


def _raw_status(message: Mapping[str, Any], outer: Mapping[str, Any]) -> str | None:
    raw = message.get("status") or message.get("state") or outer.get("status") or outer.get("state")
    return str(raw).strip().lower() if isinstance(raw, str | int) and not isinstance(raw, bool) else None


def _when(value: Any) -> datetime | None:
    """Unix seconds (or milliseconds) or ISO 8601 with a zone; a zoneless time is not guessed (Moscow? UTC?)."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000 if value > 1e12 else value, UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if text.replace(".", "", 1).isdigit():
                return _when(float(text))
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else None
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _words(body: Any, text: str = "") -> str:
    """The provider's own words from an error body, with anything phone-like and the message text taken out."""
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    if isinstance(body, Mapping):
        for key in ("message", "error", "errors", "detail", "description", "status_text"):
            collect(body.get(key))
    words = " ".join(" ".join(found).split())
    if text and len(text) > 3:
        words = words.replace(" ".join(text.split()), "<text>")
    return _PHONE_LIKE.sub("<number>", words)[:200]
