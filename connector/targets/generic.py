"""The generic write-back target: a JSON POST to the clinic's URL, signed as Standard Webhooks says, so any clinic
system can listen and check it is us (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
https://www.standardwebhooks.com/, the same scheme our own generic door verifies).

`webhook-id` is stable per outbox row: a push tried again after a lost answer carries the same id, so the
listener can tell a repeat from a new report. 2xx is taken; 429 and 5xx (and no answer) are tried again later,
honouring Retry-After; any other answer is a refusal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from connector.channels.base import DEFAULT_TIMEOUT, TransientError
from connector.sources.crm import CrmError, Report
from connector.sources.signatures import sign_standard
from connector.targets.settings import GenericWriteback
from connector.transport import wire
from connector.transport.sessions import new_session

__all__ = ["GenericTarget", "payload", "webhook_id"]


class GenericTarget:
    """Posts reports to one tenant's URL. `clock` (Unix seconds) is for tests."""

    def __init__(self, settings: GenericWriteback, session: requests.Session | None = None, *,
                 clock: Callable[[], float] = time.time):
        self.settings, self.clock = settings, clock
        self.http = session or new_session()

    def __repr__(self) -> str:  # never show the secret
        return "GenericTarget()"

    def push(self, report: Report) -> None:
        body = json.dumps(payload(report), ensure_ascii=False, separators=(",", ":")).encode()
        msg_id, timestamp = webhook_id(report), int(self.clock())
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign_standard(self.settings.secret, msg_id, timestamp, body)}
        try:
            response = wire.request(self.http, "POST", self.settings.url, provider="generic", what="write-back",
                                    timeout=DEFAULT_TIMEOUT, data=body, headers=headers)
        except TransientError as error:
            raise CrmError(str(error), transient=True, retry_after=error.retry_after) from None
        if not 200 <= response.status_code < 300:
            raise CrmError(f"generic: write-back: HTTP {response.status_code}", transient=False,
                           status_code=response.status_code)


def webhook_id(report: Report) -> str:
    """One id per outbox row, the same on every push of it."""
    return f"wb_{report.tenant_id}_{report.row_id}"


def payload(report: Report) -> dict[str, Any]:
    """What the clinic's system reads: the booking by its id at its source, the text, the word, when."""
    return {
        "type": "notification.status",
        "tenant": report.tenant_id,
        "booking": {"source": report.source, "external_id": report.external_id, "branch_id": report.branch_id},
        "status": report.status,
        "text": report.text,
        "at": report.at.isoformat(timespec="seconds"),
        "details": dict(report.details),
    }
