"""Use case: asking providers that can be polled (SMS gateways) about messages they have not reported on.

Two occasions, one cadence (connector.core.polling):
- the poll pass asks about each message whose next question is due: within its step's timeout, so a receipt
  is found before the step runs out; then, more slowly, while the provider may still report (its status
  window), so a late receipt still reaches the proof trail and upgrades the job — our own sent-timeout
  `expired` included;
- the timeout pass asks about a step's message once more at the step's deadline, before giving up on it: a
  receipt found there saves the next channel's message (for SMS, a paid one).
The messages are selected in a short read, asked about with no transaction open, and the answers applied
with their jobs locked, as a callback's are (connector.usecases.receipts.apply_reports).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.channels.base import ChannelError, StatusReport
from connector.core.cascade import Step
from connector.core.model import AttemptStatus, JobStatus
from connector.core.polling import next_poll, poll_due
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.live import state_is
from connector.store.models import DeliveryAttempt, NotificationJob
from connector.usecases.receipts import apply_reports

log = logging.getLogger("connector.usecases.polls")

_PENDING = (AttemptStatus.QUEUED, AttemptStatus.SENT)
# Our own sent-timeout `expired` only means we stopped waiting: the provider may still have a receipt.
_ASKABLE = (*_PENDING, AttemptStatus.EXPIRED)
# A provider's own failure is its last word on a message: no need to ask again.
_FINAL_FAILURES = frozenset({AttemptStatus.FAILED, AttemptStatus.NOT_REGISTERED, AttemptStatus.REJECTED,
                             AttemptStatus.EXPIRED})


@dataclass(frozen=True)
class Question:
    """One message to ask a provider about."""

    attempt_id: int
    tenant_id: str
    provider: str
    provider_message_id: str
    step: int
    sent_at: datetime
    polled_at: datetime | None


def due_questions(session: Session, runtime: Runtime, accounts: Accounts, now: datetime,
                  limit: int = 2000) -> list[Question]:
    """Messages in flight (or timed out by us) whose next question is due by the cadence."""
    pollable = _pollable(runtime, accounts)
    if not pollable:
        return []
    longest = max(pollable.values())
    rows = session.execute(
        _select_questions()
        .where(state_is(DeliveryAttempt.status, *_ASKABLE),
               DeliveryAttempt.provider.in_({provider for _, provider in pollable}),
               DeliveryAttempt.created_at >= now - longest,
               # next_poll_at is the cadence written down at the last question; never asked: the rule decides
               or_(DeliveryAttempt.polled_at.is_(None), DeliveryAttempt.next_poll_at <= now))
        .order_by(DeliveryAttempt.id).limit(limit)).all()
    questions, steps = [], _Steps(runtime, accounts)
    for row in rows:
        question = Question(*row)
        if (question.tenant_id, question.provider) not in pollable:
            continue
        timeout, window = steps.timing(question)
        if poll_due(question.sent_at, timeout, window, question.polled_at, now):
            questions.append(question)
    return questions


def deadline_questions(session: Session, runtime: Runtime, accounts: Accounts, now: datetime,
                       limit: int = 500) -> list[Question]:
    """The still pending messages of steps whose deadline has passed, on providers that can be asked."""
    pollable = _pollable(runtime, accounts)
    if not pollable:
        return []
    rows = session.execute(
        _select_questions()
        .where(state_is(NotificationJob.status, JobStatus.AWAITING_DELIVERY), NotificationJob.step_deadline <= now,
               DeliveryAttempt.step == NotificationJob.cascade_step, DeliveryAttempt.status.in_(_PENDING),
               DeliveryAttempt.provider.in_({provider for _, provider in pollable}))
        .order_by(DeliveryAttempt.id).limit(limit)).all()
    return [q for q in (Question(*row) for row in rows) if (q.tenant_id, q.provider) in pollable]


def ask(runtime: Runtime, accounts: Accounts, questions: Sequence[Question], now: datetime) -> int:
    """Ask each provider about its messages (one call per account), apply the answers, write down when to
    ask next. Returns how many messages were asked about. A provider that cannot answer is asked again by
    the cadence, and never stops the caller (the timeout pass goes on without its answer)."""
    groups: dict[tuple[str, str], list[Question]] = defaultdict(list)
    for question in questions:
        groups[(question.tenant_id, question.provider)].append(question)
    asked = 0
    for (tenant_id, provider), group in groups.items():
        reports: list[StatusReport] = []
        try:
            reports = accounts.get(tenant_id, provider).channel.poll([q.provider_message_id for q in group])
            asked += len(group)
        except ChannelError as error:  # TransientError included
            log.warning("poll failed: %s", error, extra={"fields": {"tenant": tenant_id, "provider": provider}})
        except Exception:  # an adapter bug must not stop the timeouts of everyone else
            log.exception("poll failed", extra={"fields": {"tenant": tenant_id, "provider": provider}})
        with runtime.sessions.begin() as session:
            apply_reports(session, reports, runtime=runtime, accounts=accounts, tenant_id=tenant_id,
                          provider=provider, now=now)
            _schedule(session, _Steps(runtime, accounts), group, reports, now)
    return asked


def _select_questions():
    return (select(DeliveryAttempt.id, NotificationJob.tenant_id, DeliveryAttempt.provider,
                   DeliveryAttempt.provider_message_id, DeliveryAttempt.step, DeliveryAttempt.created_at,
                   DeliveryAttempt.polled_at)
            .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
            .where(DeliveryAttempt.provider_message_id.is_not(None)))


def _schedule(session: Session, steps: _Steps, group: Sequence[Question], reports: Sequence[StatusReport],
              now: datetime) -> None:
    failed = {r.provider_message_id for r in reports if r.status in _FINAL_FAILURES}
    attempts = {a.id: a for a in session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.id.in_([q.attempt_id for q in group])))}
    for question in group:
        attempt = attempts.get(question.attempt_id)
        if attempt is None:
            continue
        timeout, window = steps.timing(question)
        attempt.polled_at = now
        attempt.next_poll_at = None if question.provider_message_id in failed else next_poll(
            question.sent_at, timeout, window, now)


def _pollable(runtime: Runtime, accounts: Accounts) -> dict[tuple[str, str], timedelta]:
    """(tenant, provider) → the provider's status window, for the accounts that can be asked."""
    pollable = {}
    for tenant in runtime.tenants.values():
        for provider in {*tenant.providers, *(step.provider for step in tenant.cascade)}:
            try:
                channel = accounts.get(tenant.id, provider).channel
            except Exception as error:  # one tenant's broken account must not stop the others' questions
                log.warning("account unusable, not polled: %s", type(error).__name__,
                            extra={"fields": {"tenant": tenant.id, "provider": provider}})
                continue
            if channel.can_poll:
                pollable[(tenant.id, provider)] = channel.status_window
    return pollable


class _Steps:
    """Each tenant's cascade, resolved once per pass."""

    def __init__(self, runtime: Runtime, accounts: Accounts):
        self.runtime, self.accounts = runtime, accounts
        self.cascades: dict[str, list[Step]] = {}

    def timing(self, question: Question) -> tuple[timedelta, timedelta]:
        """The timeout and status window of the step the message went out on; a step gone from the cascade
        (the configuration changed) counts as timed out, within its provider's window."""
        tenant = self.runtime.tenants[question.tenant_id]
        if tenant.id not in self.cascades:
            self.cascades[tenant.id] = self.accounts.steps(tenant)
        steps = self.cascades[tenant.id]
        if 0 <= question.step < len(steps) and steps[question.step].provider == question.provider:
            step = steps[question.step]
            return step.timeout, step.status_window
        return timedelta(0), self.accounts.get(tenant.id, question.provider).channel.status_window
