"""Telegram Bot API: send to a patient who started the clinic bot, and read the bot's webhook updates.

Wire format (providers.md §3.1; core.telegram.org/bots/api as quoted by the aiogram and teloxide docs):

* `POST {base_url}/bot<token>/sendMessage` with JSON `{"chat_id": ..., "text": ...}` (1-4096 characters; sent as
  plain text, no parse_mode, so nothing in it can fail to parse). Answer: `{"ok": true, "result": Message}`;
  `result.message_id` is the provider id (unique within the chat only).
* Errors: `{"ok": false, "error_code": N, "description": "...", "parameters": {"retry_after": s}}`.
  403 `Forbidden: bot can't initiate conversation with a user` / `bot was blocked by the user` /
  `user is deactivated`, 400 `Bad Request: chat not found` → NOT_REGISTERED; 401 → REJECTED;
  429 → retry after `parameters.retry_after`.
* Webhook: one `Update` per POST; the secret given to setWebhook comes back in `X-Telegram-Bot-Api-Secret-Token`.
  Read here: `message` (`/start <payload>` from a deep link `t.me/<bot>?start=<payload>`, a shared `contact`, a
  `reply_to_message`), `callback_query` (a button under one of our messages) and `my_chat_member` (`kicked` when
  the user blocks the bot, `member` when they restart it). Private chats only.
* The answer to a `callback_query` update carries `answerCallbackQuery` in the webhook response body (Bot API:
  "making requests when getting updates"), so the button stops spinning without a second call.
* No delivery or read receipts exist: `ok: true` is final (has_receipts False).

The token is part of every URL: it never goes into an error string or a log line, and library exceptions (whose
text holds the URL) are translated without their message or their chain.

UNCONFIRMED: that a successful sendMessage is the last word (no receipt method found in any SDK); the deep-link and
request_contact behaviour (standard, not re-read from the official page in this session); whether the 4096 limit counts
UTF-16 units or code points (we cut by UTF-16 units, the stricter).

Config: `token` (required), `webhook_secret` (required for callbacks), `base_url` (default https://api.telegram.org),
`timeout` (seconds, or [connect, read]; default connector.channels.base.DEFAULT_TIMEOUT).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
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
    TransientError,
)
from connector.core.model import AttemptStatus
from connector.transport import wire
from connector.transport.wire import (
    dig,
    header,
    json_or_none,
    request_timeout,
    require_secret,
    retry_after_seconds,
    truncate,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org"
TEXT_LIMIT = 4096
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# 400 descriptions meaning "no such chat for this bot"; any 403 means the bot may not write there.
_UNREACHABLE_400 = ("chat not found", "peer_id_invalid", "user not found")


class TelegramBotChannel(Channel):
    name = "telegram_bot"
    channels = frozenset({"telegram"})
    has_receipts = False
    can_poll = False

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None):
        super().__init__(config, session)
        self.base_url = str(config.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.token = str(config.get("token") or "")
        self.webhook_secret = str(config.get("webhook_secret") or "")
        self.timeout = request_timeout(config.get("timeout"), self.name)

    # --- sending ---------------------------------------------------------------------------------------------

    def can_address(self, recipient: Recipient, channel: str) -> bool:
        return channel in self.channels and bool(recipient.links.get(self.name))

    def send(self, message: OutboundMessage) -> SendResult:
        chat_id = message.recipient.links.get(self.name)
        if not chat_id:
            return SendResult(AttemptStatus.NOT_REGISTERED, error="telegram_bot: no linked Telegram chat")
        if not self.token:
            return SendResult(AttemptStatus.REJECTED, error="telegram_bot: no token configured")
        # The token is in the path: connector.transport.wire.request keeps the URL out of every error and chain.
        response = wire.request(self.http, "POST", f"{self.base_url}/bot{self.token}/sendMessage", provider=self.name,
                                what="sendMessage", timeout=self.timeout, retry_after=_retry_after,
                                json={"chat_id": _chat_id(chat_id), "text": truncate(message.text, TEXT_LIMIT)})
        return self._result(response)

    def _result(self, response: requests.Response) -> SendResult:
        body = json_or_none(response)
        body = body if isinstance(body, dict) else {}
        status = response.status_code
        if 200 <= status < 300 and body.get("ok") is True:
            message_id = dig(body, "result", "message_id")
            if message_id is None:
                return SendResult(AttemptStatus.SENT, error="telegram_bot: ok without result.message_id")
            return SendResult(AttemptStatus.SENT, provider_message_id=str(message_id))
        code = body.get("error_code") if isinstance(body.get("error_code"), int) else status
        description = str(body.get("description") or "")
        error = f"telegram_bot: {code}" + (f" {_scrub(description, self.token)}" if description else "")
        if code == 429 or status == 429:
            raise TransientError(error, retry_after=_retry_after(response))
        if status >= 500 or (isinstance(code, int) and code >= 500):
            raise TransientError(error)
        lowered = description.lower()
        if code == 403 or (code == 400 and any(words in lowered for words in _UNREACHABLE_400)):
            return SendResult(AttemptStatus.NOT_REGISTERED, error=error)
        if code in (400, 401, 404):  # bad request, bad token, no such method (a wrong token path or base_url)
            return SendResult(AttemptStatus.REJECTED, error=error)
        return SendResult(AttemptStatus.FAILED, error=error)

    # --- webhook ---------------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        require_secret(self.webhook_secret, header(request.headers, SECRET_HEADER),
                       "telegram_bot: missing or wrong X-Telegram-Bot-Api-Secret-Token")
        try:
            update = json.loads(request.body or b"null")
        except ValueError:
            log.warning("telegram_bot: webhook body is not JSON; ignored")
            return CallbackResult()
        if not isinstance(update, dict):
            return CallbackResult()
        try:
            return self._update(update)
        except (TypeError, ValueError, AttributeError):
            log.warning("telegram_bot: malformed update; ignored")
            return CallbackResult()

    def _update(self, update: dict) -> CallbackResult:
        if isinstance(update.get("message"), dict):
            return self._message(update["message"])
        if isinstance(update.get("callback_query"), dict):
            return self._callback_query(update["callback_query"])
        if isinstance(update.get("my_chat_member"), dict):
            return self._my_chat_member(update["my_chat_member"])
        log.debug("telegram_bot: update without a handled field ignored")
        return CallbackResult()

    def _message(self, message: dict) -> CallbackResult:
        chat_id = dig(message, "chat", "id")
        sender = message.get("from") or {}
        if chat_id is None or dig(message, "chat", "type") != "private" or sender.get("is_bot"):
            return CallbackResult()
        address = str(chat_id)
        text = message.get("text")
        start = re.fullmatch(r"/start(?:@\w+)?(?:\s+(.*))?", text.strip(), re.DOTALL) if isinstance(text, str) else None
        if start:
            payload = (start.group(1) or "").strip()
            return CallbackResult(links=[Link(self.name, address, payload=payload or None)])
        contact = message.get("contact")
        if isinstance(contact, dict) and contact.get("phone_number"):
            # Only the sender's own number (request_contact); a forwarded card of someone else links nothing.
            if contact.get("user_id") is not None and contact.get("user_id") == sender.get("id"):
                return CallbackResult(links=[Link(self.name, address, phone=str(contact["phone_number"]))])
            return CallbackResult(links=[Link(self.name, address)])
        replied = message.get("reply_to_message")
        if isinstance(replied, dict) and replied.get("message_id") is not None and dig(replied, "from", "is_bot"):
            report = StatusReport(AttemptStatus.READ, provider_message_id=str(replied["message_id"]),
                                  at=_from_seconds(message.get("date")), raw_status="reply")
            return CallbackResult(reports=[report])
        return CallbackResult(links=[Link(self.name, address)])

    def _callback_query(self, query: dict) -> CallbackResult:
        answer = {"method": "answerCallbackQuery", "callback_query_id": str(query.get("id"))}
        body = json.dumps(answer) if query.get("id") is not None else '{"ok": true}'
        message_id = dig(query, "message", "message_id")
        if message_id is None:  # a button under an inline-mode message, or one too old to be sent back
            user_id = dig(query, "from", "id")
            links = [Link(self.name, str(user_id))] if user_id is not None else []
            return CallbackResult(links=links, body=body)
        report = StatusReport(AttemptStatus.READ, provider_message_id=str(message_id), raw_status="callback_query")
        return CallbackResult(reports=[report], body=body)

    def _my_chat_member(self, change: dict) -> CallbackResult:
        chat_id = dig(change, "chat", "id")
        status = dig(change, "new_chat_member", "status")
        if chat_id is None or dig(change, "chat", "type") != "private":
            return CallbackResult()
        if status == "kicked":
            return CallbackResult(links=[Link(self.name, str(chat_id), active=False)])
        if status == "member":
            return CallbackResult(links=[Link(self.name, str(chat_id))])
        return CallbackResult()


# --- helpers (telegram_bot's own; the shared ones are in connector.transport.wire) --------------------------------

def _chat_id(value: str) -> int | str:
    return int(value) if re.fullmatch(r"-?\d+", str(value)) else str(value)


def _scrub(text: str, token: str) -> str:
    """The provider's words for the audit trail, without long ids and (belt and braces) without the token."""
    if token:
        text = text.replace(token, "<token>")
    return re.sub(r"\d{5,}", "#", text)[:200]


def _retry_after(response: requests.Response) -> float | None:
    """A 429's delay: Telegram puts it in the body (parameters.retry_after); Retry-After when it is not there."""
    seconds = dig(json_or_none(response), "parameters", "retry_after")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return float(seconds)
    return retry_after_seconds(response.headers.get("Retry-After"))


def _from_seconds(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=UTC)
    return None
