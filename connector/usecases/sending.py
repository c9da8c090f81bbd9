"""Use case: one step's call to its provider, with the retries it may take (no database, no transaction).

Three outcomes of a call (connector.transport.wire): sent; not sent (retried with backoff within the step's
budget, connector.core.retry); unknown (the request went out and its answer was lost: asked about where the
provider can be, otherwise never resent blindly, connector.core.unknown).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from connector.channels.base import OutboundMessage, OutcomeUnknownError, SendResult, TransientError
from connector.core.cascade import Step
from connector.core.model import AttemptStatus
from connector.core.retry import gives_up, retry_delay
from connector.core.unknown import UNKNOWN_MARK, call_again, is_unknown
from connector.entrypoints.bootstrap import Account
from connector.usecases.lost_answers import Unknown, ask_after_lost, gave_up

log = logging.getLogger("connector.usecases.sending")


@dataclass(frozen=True)
class Send:
    job_id: int
    attempt_id: int
    tenant_id: str
    step: Step
    message: OutboundMessage


@dataclass(frozen=True)
class Sent:
    send: Send
    result: SendResult
    tries: int
    reports: list[tuple[float, str]] = field(default_factory=list)
    unknown: Unknown | None = None  # set when a call of this step lost its answer


def send_one(account: Account, send: Send, *, retry_base: float) -> Sent:
    """One step's call, with its retries: not sent is tried again with backoff, a lost answer is never resent
    blindly (connector.core.unknown), an adapter's bug costs this step only. No database here."""
    started = time.monotonic()
    tries = 0
    unknown: Unknown | None = None  # the last call whose answer was lost, and what asking said
    while True:
        tries += 1
        account.limiter.acquire()
        try:
            with account.in_flight:
                result = account.channel.send(send.message)
            break
        except OutcomeUnknownError as error:  # it went out; the provider may have it: never resent blindly
            unknown, found = ask_after_lost(account.channel, send.message, error, unknown)
            if found is not None or not call_again(send.step.on_unknown, unknown.lookup, lost=unknown.lost):
                result = found or SendResult(AttemptStatus.SENT, error=f"{UNKNOWN_MARK} ({unknown.why})")
                break
        except TransientError as error:
            delay = retry_delay(tries, error.retry_after, base=retry_base)
            if gives_up(tries, elapsed=time.monotonic() - started, delay=delay,
                        step_timeout=send.step.timeout.total_seconds()):
                result = gave_up(tries, error, unknown)
                break
            time.sleep(delay)
        except Exception as error:  # an adapter bug must cost one step, not the whole batch
            log.exception("adapter error", extra={"fields": {"provider": send.step.provider}})
            result = SendResult(AttemptStatus.FAILED, error=f"adapter error: {type(error).__name__}")
            break
    reports = account.reporter.reports_after(send.message, result) if account.reporter else []
    return Sent(send, result, tries, reports, unknown)


def attempt_detail(step: Step, result: SendResult, tries: int, unknown: Unknown | None = None) -> str:
    detail = f"{step.channel} via {step.provider}: {result.status}"
    if tries > 1:
        detail += f" after {tries} tries"
    if unknown is not None and not is_unknown(result.error):  # the answer came by asking, or by a safe retry
        detail += f" (a call's answer was lost: {unknown.why})"
    return detail + (f" ({result.error})" if result.error else "")
