"""The sandbox provider: every channel simulated, deterministically, by the last digit of the phone number.

No network. Its delivery reports travel the same path as a real provider's callbacks: it says which a send will
cause (`reports_after`, the SelfReporting protocol, outside the Channel port); the worker stores them
(sandbox_callback) and, when due, hands them to `parse_callback` and the receipts use case
(connector.usecases.sandbox_reports).

    0 MAX delivered                       5 not in MAX nor Telegram, WhatsApp stays sent → SMS delivered
    1 MAX delivered, then read            6 in no messenger → SMS delivered
    2 not in MAX → Telegram delivered     7 every channel fails → the job fails
    3 MAX stays sent (step timeout) →     8 MAX answers 5xx twice, then delivered
      not in Telegram → WhatsApp delivered 9 MAX's delivered arrives only after its step timed out and
    4 not in MAX nor Telegram →              Telegram delivered (a late receipt)
      WhatsApp delivered
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from connector.channels.base import (
    CallbackRequest,
    CallbackResult,
    Channel,
    OutboundMessage,
    SendResult,
    StatusReport,
    TransientError,
)
from connector.core.model import AttemptStatus as S

# digit → channel → (answer to the send, reports that follow: (delay key, status))
_NOT_THERE = (S.NOT_REGISTERED, ())
_DELIVERED = (S.SENT, (("delay", S.DELIVERED),))
_SILENT = (S.SENT, ())
_SCRIPT: dict[int, dict[str, tuple[S, tuple[tuple[str, S], ...]]]] = {
    0: {"max": _DELIVERED},
    1: {"max": (S.SENT, (("delay", S.DELIVERED), ("read_delay", S.READ)))},
    2: {"max": _NOT_THERE},
    3: {"max": _SILENT, "telegram": _NOT_THERE},
    4: {"max": _NOT_THERE, "telegram": _NOT_THERE},
    5: {"max": _NOT_THERE, "telegram": _NOT_THERE, "whatsapp": _SILENT},
    6: {"max": _NOT_THERE, "telegram": _NOT_THERE, "whatsapp": _NOT_THERE},
    7: {channel: (S.FAILED, ()) for channel in ("max", "telegram", "whatsapp", "sms")},
    8: {"max": _DELIVERED},
    9: {"max": (S.SENT, (("late_after", S.DELIVERED),))},
}
_FLAKY_TRIES = 2  # digit 8: this many 5xx answers before the send goes through


class SandboxChannel(Channel):
    name = "sandbox"
    channels = frozenset({"max", "telegram", "whatsapp", "sms"})
    has_receipts = True

    def __init__(self, config: Mapping[str, Any], session=None):
        super().__init__(config, session)
        self.delays = {
            "delay": float(config.get("delay", 2)),
            "read_delay": float(config.get("read_delay", 4)),
            # later than the demo's MAX step timeout, so the receipt arrives after the fallback
            "late_after": float(config.get("late_after", 30)),
        }
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> SendResult:
        digit = _last_digit(message.recipient.phone)
        if digit == 8 and message.channel == "max":
            with self._lock:
                tries = self._tries[message.message_id] = self._tries.get(message.message_id, 0) + 1
            if tries <= _FLAKY_TRIES:
                raise TransientError("sandbox: simulated 503 from MAX")
        answer, _ = self._script(digit, message.channel)
        error = {S.NOT_REGISTERED: f"sandbox: not on {message.channel}", S.FAILED: "sandbox: simulated failure"}
        return SendResult(answer, provider_message_id=f"sbx-{message.message_id}", error=error.get(answer))

    def reports_after(self, message: OutboundMessage, result: SendResult) -> list[tuple[float, str]]:
        """The callbacks this send will cause: (seconds from now, callback body). SelfReporting, not the port."""
        _, reports = self._script(_last_digit(message.recipient.phone), message.channel)
        if result.status is not S.SENT:
            return []
        return [
            (self.delays[delay], json.dumps({"id": result.provider_message_id, "status": status.value}))
            for delay, status in reports
        ]

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        try:
            body = json.loads(request.body)
            report = StatusReport(S(body["status"]), provider_message_id=str(body["id"]), raw_status=body["status"])
        except (ValueError, KeyError, TypeError):
            return CallbackResult(status_code=400, body='{"error": "not a sandbox report"}')
        return CallbackResult(reports=[report])

    def _script(self, digit: int | None, channel: str):
        return _SCRIPT.get(digit, {}).get(channel, _DELIVERED) if digit is not None else _DELIVERED


def _last_digit(phone: str | None) -> int | None:
    return int(phone[-1]) if phone and phone[-1].isdigit() else None
