"""MAX messenger Bot API (VK): send to a patient who opened the clinic bot, and read the bot's webhook updates.

Wire format (providers.md §2; OpenAPI snapshot max-messenger-bot/max-bot-api-schemas schema_2026_07_01.json, v0.0.32):

* `POST {base_url}/messages?user_id=<int64>` with `Authorization: <token>` (raw, no `Bearer`; the `access_token` query
  parameter is no longer accepted) and a `NewMessageBody` `{"text": ...}`, text maxLength 4000.
  200 → `SendMessageResult` `{"message": {..., "body": {"mid": ...}}}`: `message.body.mid` is the provider id.
* Errors: HTTP 400/401/403/404/405/429/503 with `{"code": "<key>", "message": "<text>"}` (401: `verify.token`).
* Webhook: one `Update` per POST, `update_type` + `timestamp` (ms), the subscription secret echoed in the
  `X-Max-Bot-Api-Secret` header. `bot_started` (`user`, `chat_id`, `payload` from the deep link ≤ 512 chars),
  `bot_stopped`, `dialog_removed`, `message_callback` (`callback{callback_id, payload, user}`, `message` = the bot
  message that carried the keyboard, may be null), `message_created` (`message.sender`, `message.link{type: reply,
  sender, message{mid}}`, contact attachments `{vcf_info, hash, max_info}`).
* No delivery or read receipts exist for dialogs: a 200 is final (has_receipts False). A button press or a reply to
  one of our messages is reported as READ.
* Limits: 30 requests/s per bot, at most 2 messages/s into one dialog; both enforced here before each send.

UNCONFIRMED (no vendor source found; taken from third-party clients, so they are matched loosely):
* The error for a user who never started, stopped or deleted the bot. Observed in the wild:
  `403 {"code": "chat.denied", "message": "Key: error.dialog.suspended, args: [<user_id>,]"}` and `dialog.not.found` /
  `error.dialog.notfound`, `chat.not.found`. One report says an unmoderated bot gets the same `error.dialog.suspended`
  for everyone: we cannot tell that apart, so it surfaces as NOT_REGISTERED on every patient.
* Whether a 429 carries `Retry-After` (honoured when present).
* The vCard layout of a shared contact (`TEL...:<number>` line), and that `max_info` is the contact's own MAX profile.
  The `hash` that proves the number belongs to the account is not checked (its algorithm is not documented here);
  a contact is only taken when `max_info.user_id` is the sender.
* The host may need the Минцифры root certificate: set `ca_bundle` to a PEM file when the default bundle fails.

Config: `token` (required), `webhook_secret` (required for callbacks), `base_url` (default https://platform-api2.max.ru),
`timeout` (seconds, or [connect, read]; default connector.channels.base.DEFAULT_TIMEOUT), `ca_bundle` (optional path).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from connector.channels.base import (
    CallbackRequest,
    CallbackResult,
    Channel,
    Link,
    OutboundMessage,
    Recipient,
    SendResult,
    StatusReport,
)
from connector.core.model import AttemptStatus
from connector.transport import wire
from connector.transport.wire import (
    dig,
    header,
    json_or_none,
    request_timeout,
    require_secret,
    truncate,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://platform-api2.max.ru"
TEXT_LIMIT = 4000
SECRET_HEADER = "X-Max-Bot-Api-Secret"
PER_CHAT_RATE = 2.0  # messages per second into one dialog
OVERALL_RATE = 30.0  # requests per second per bot

# Error codes and message keys meaning "this user cannot be written to" (see the module docstring: UNCONFIRMED).
_UNREACHABLE_CODES = frozenset({"chat.denied", "dialog.not.found", "chat.not.found", "user.not.found"})
_UNREACHABLE_KEYS = ("dialog.suspended", "dialog.notfound", "chat.denied", "dialog.not.found", "chat.not.found")
_REJECTED_STATUSES = frozenset({400, 401, 403, 404, 405})


class ChatRateLimiter:
    """At most `per_chat` messages a second into one chat and `overall` requests a second, evenly spaced.

    Thread-safe; the caller sleeps until its turn. A caller waiting for its chat does not hold up other chats.
    """

    def __init__(self, per_chat: float = PER_CHAT_RATE, overall: float = OVERALL_RATE,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self._chat_interval = 1.0 / per_chat
        self._interval = 1.0 / overall
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._next_chat: dict[str, float] = {}

    def acquire(self, chat: str) -> None:
        while True:
            with self._lock:
                now = self._clock()
                wait = max(self._next, self._next_chat.get(chat, float("-inf"))) - now
                if wait <= 0:
                    self._next = now + self._interval
                    if len(self._next_chat) > 256:
                        self._next_chat = {key: at for key, at in self._next_chat.items() if at > now}
                    self._next_chat[chat] = now + self._chat_interval
                    return
            self._sleep(wait)


class MaxBotChannel(Channel):
    name = "max_bot"
    channels = frozenset({"max"})
    has_receipts = False
    can_poll = False

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        super().__init__(config, session)
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.token = str(config.get("token") or "")
        self.webhook_secret = str(config.get("webhook_secret") or "")
        self.timeout = request_timeout(config.get("timeout"), self.name)
        self.ca_bundle = config.get("ca_bundle")
        self.limiter = ChatRateLimiter(clock=clock, sleep=sleep)

    # --- sending ---------------------------------------------------------------------------------------------

    def can_address(self, recipient: Recipient, channel: str) -> bool:
        return channel in self.channels and bool(recipient.links.get(self.name))

    def send(self, message: OutboundMessage) -> SendResult:
        user_id = message.recipient.links.get(self.name)
        if not user_id:
            return SendResult(AttemptStatus.NOT_REGISTERED, error="max_bot: no linked MAX user")
        if not self.token:
            return SendResult(AttemptStatus.REJECTED, error="max_bot: no token configured")
        self.limiter.acquire(str(user_id))
        extra = {"verify": self.ca_bundle} if self.ca_bundle else {}
        response = wire.request(self.http, "POST", f"{self.base_url}/messages", provider=self.name, what="send",
                                timeout=self.timeout, params={"user_id": str(user_id)},
                                json={"text": truncate(message.text, TEXT_LIMIT)},
                                headers={"Authorization": self.token}, **extra)
        return self._result(response)

    def _result(self, response: requests.Response) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            mid = dig(json_or_none(response), "message", "body", "mid")
            if mid is None:
                return SendResult(AttemptStatus.SENT, error="max_bot: accepted without message.body.mid")
            return SendResult(AttemptStatus.SENT, provider_message_id=str(mid))
        code, text = _error(response)
        words = _scrub(" ".join(part for part in (code, text) if part))
        error = f"max_bot: HTTP {status}" + (f" {words}" if words else "")
        lowered = (text or "").lower()
        if code in _UNREACHABLE_CODES or any(key in lowered for key in _UNREACHABLE_KEYS):
            return SendResult(AttemptStatus.NOT_REGISTERED, error=error)
        if status in _REJECTED_STATUSES:
            return SendResult(AttemptStatus.REJECTED, error=error)
        return SendResult(AttemptStatus.FAILED, error=error)

    # --- webhook ---------------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        require_secret(self.webhook_secret, header(request.headers, SECRET_HEADER),
                       "max_bot: missing or wrong X-Max-Bot-Api-Secret")
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            log.warning("max_bot: webhook body is not JSON; ignored")
            return CallbackResult()
        listed = body.get("updates") if isinstance(body, dict) else None
        updates = listed if isinstance(listed, list) else [body]
        reports: list[StatusReport] = []
        links: list[Link] = []
        for update in updates:
            if isinstance(update, dict):
                try:
                    self._update(update, reports, links)
                except (TypeError, ValueError, AttributeError):
                    log.warning("max_bot: malformed %s update; ignored", _kind(update))
        return CallbackResult(reports=reports, links=links)

    def _update(self, update: dict, reports: list[StatusReport], links: list[Link]) -> None:
        kind = update.get("update_type")
        at = _from_millis(update.get("timestamp"))
        if kind == "bot_started":
            user_id = dig(update, "user", "user_id")
            if user_id is not None:
                payload = update.get("payload")
                links.append(Link(self.name, str(user_id), payload=str(payload) if payload else None))
        elif kind in ("bot_stopped", "dialog_removed"):
            user_id = dig(update, "user", "user_id")
            if user_id is not None:
                links.append(Link(self.name, str(user_id), active=False))
        elif kind == "message_callback":
            mid = dig(update, "message", "body", "mid")
            user_id = dig(update, "callback", "user", "user_id")
            if mid is not None:
                reports.append(StatusReport(AttemptStatus.READ, provider_message_id=str(mid),
                                            at=_from_millis(dig(update, "callback", "timestamp")) or at,
                                            raw_status=kind))
            elif user_id is not None:
                links.append(Link(self.name, str(user_id)))
        elif kind == "message_created":
            self._message_created(update.get("message") or {}, at, reports, links)
        else:
            log.debug("max_bot: update type %s ignored", _kind(update))

    def _message_created(self, message: dict, at: datetime | None, reports: list[StatusReport],
                         links: list[Link]) -> None:
        sender = message.get("sender") or {}
        user_id = sender.get("user_id")
        chat_type = dig(message, "recipient", "chat_type")
        if user_id is None or sender.get("is_bot") or (chat_type is not None and chat_type != "dialog"):
            return  # our own echo, or a group chat: not a patient's dialog with the bot
        link = message.get("link") or {}
        replied = dig(link, "message", "mid")
        replied_to_bot = dig(link, "sender", "is_bot") is not False  # absent sender: trust the reply
        if link.get("type") == "reply" and replied is not None and replied_to_bot:
            reports.append(StatusReport(AttemptStatus.READ, provider_message_id=str(replied), at=at,
                                        raw_status="message_created"))
            return
        links.append(Link(self.name, str(user_id), phone=_own_contact_phone(message, user_id)))


# --- helpers (max_bot's own; the shared ones are in connector.transport.wire) -------------------------------------

def _error(response: requests.Response) -> tuple[str | None, str | None]:
    body = json_or_none(response)
    if isinstance(body, dict):
        code, text = body.get("code"), body.get("message") or body.get("error")
        return (str(code) if code else None), (str(text) if text else None)
    return None, (response.text or "").strip()[:200] or None


def _scrub(text: str) -> str:
    """The provider's words for the audit trail, without ids it echoes (`args: [<user_id>,]`)."""
    return re.sub(r"\d{5,}", "#", text)[:200]


def _from_millis(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    return None


def _kind(update: dict) -> str:
    kind = update.get("update_type")
    return kind if isinstance(kind, str) and kind.replace("_", "").isalnum() else "?"


def _own_contact_phone(message: dict, user_id: Any) -> str | None:
    """The phone of a contact the user shared of themselves (request_contact button), raw from the vCard."""
    attachments: Iterable[Any] = dig(message, "body", "attachments") or ()
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("type") != "contact":
            continue
        payload = attachment.get("payload") or {}
        if dig(payload, "max_info", "user_id") != user_id:
            continue  # someone else's card: never link a number the sender does not own
        for line in str(payload.get("vcf_info") or "").splitlines():
            name, _, value = line.partition(":")
            if name.upper().startswith("TEL") and value.strip():
                return value.strip()
    return None
