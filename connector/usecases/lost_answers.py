"""A send whose answer was lost (OutcomeUnknownError): ask the provider by our id where it can be asked.

The dispatcher's helpers for the third outcome of a call (connector.core.unknown decides what follows): no
transaction, no clock; what asking said is kept for the record step's audit line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.channels.base import Channel, OutboundMessage, OutcomeUnknownError, SendResult, TransientError
from connector.core.model import AttemptStatus
from connector.core.unknown import UNKNOWN_MARK, Lookup

log = logging.getLogger("connector.usecases.lost_answers")


@dataclass(frozen=True)
class Unknown:
    """A step's last call whose answer was lost: why, what asking the provider said, and how many were lost."""

    why: str
    lookup: Lookup
    lost: int


def ask_after_lost(channel: Channel, message: OutboundMessage, error: OutcomeUnknownError,
                   before: Unknown | None) -> tuple[Unknown, SendResult | None]:
    """The lost call, asked about by our message id where the provider keeps it (`can_lookup`): its answer when
    the provider has the message, else None; and why the outcome is unknown, for the audit trail."""
    lost = before.lost + 1 if before else 1
    if not channel.can_lookup:
        return Unknown(str(error), Lookup.NOT_ASKED, lost), None
    try:
        found = channel.lookup(message)
    except Exception as asked:  # it could not say: the step's on_unknown decides, as if it could not be asked
        log.warning("a lookup by our message id failed: %s", type(asked).__name__,
                    extra={"fields": {"tenant": message.tenant_id, "provider": channel.name}})
        return Unknown(f"{error}; asked {channel.name} by our id: no answer", Lookup.NO_ANSWER, lost), None
    lookup = Lookup.FOUND if found is not None else Lookup.NOT_FOUND
    return Unknown(f"{error}; asked {channel.name} by our id: {lookup}", lookup, lost), found


def gave_up(tries: int, error: TransientError, unknown: Unknown | None) -> SendResult:
    """The step's retries spent on errors that sent nothing. After a lost answer the provider may still have
    that call's message: its outcome stays unknown, not failed (unless asking said it had none)."""
    if unknown is not None and unknown.lookup is not Lookup.NOT_FOUND:
        return SendResult(AttemptStatus.SENT, error=f"{UNKNOWN_MARK} ({unknown.why}); then {error}")
    return SendResult(AttemptStatus.FAILED, error=f"gave up after {tries} tries: {error}")
