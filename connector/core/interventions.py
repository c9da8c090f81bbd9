"""What staff may do to a job from the console or the command line, as rules: each answers None when the action
is allowed, or why not, in words the person who asked can act on.

Retry a write-back: a report to the CRM that failed for good, unless a newer one of its booking and target came
after it. Send again: a job that ended failed or expired, from the first step or a chosen one, as a new sequence of
attempts (the old ones stay: they are the proof of what was tried). Cancel: a job still waiting. Send now: a
job still waiting, whatever its planned time and the quiet hours; the visit itself is the only limit, for a
message about a visit is no use once it has begun (connector.core.cascade.must_expire).
"""

from __future__ import annotations

from datetime import datetime

from connector.core.cascade import must_expire
from connector.core.model import JobKind, JobStatus

__all__ = ["RESENDABLE", "cancel_refusal", "resend_refusal", "retry_writeback_refusal", "send_now_refusal"]

RESENDABLE = frozenset({JobStatus.FAILED, JobStatus.EXPIRED})


def resend_refusal(status: str, *, kind: str, visit_start: datetime | None, step: int, steps: int,
                   now: datetime) -> str | None:
    """Why the job may not be sent again from `step` (counted from 0) of a cascade of `steps`; None: it may."""
    if status not in RESENDABLE:
        return "ещё раз отправляется только недоставленное или просроченное сообщение"
    if not 0 <= step < steps:
        return f"в каскаде клиники нет шага {step + 1}"
    return _after_visit(kind, visit_start, now)


def cancel_refusal(status: str) -> str | None:
    """Why the job may not be cancelled; None: it may (nothing has gone out for it yet)."""
    if status != JobStatus.SCHEDULED:
        return "отменить можно только запланированное сообщение"
    return None


def send_now_refusal(status: str, *, kind: str, visit_start: datetime | None, now: datetime) -> str | None:
    """Why the job may not go now; None: it may."""
    if status != JobStatus.SCHEDULED:
        return "отправить сейчас можно только запланированное сообщение"
    return _after_visit(kind, visit_start, now)


def retry_writeback_refusal(status: str, *, newer: bool) -> str | None:
    """Why a report to the CRM may not be pushed again; None: it may. Only a failed one, and only while it is the
    latest of its booking and target: pushed after a newer one, it would write a stale status over it."""
    if status != "failed":
        return "повторить можно только неудавшуюся запись в CRM"
    if newer:
        return "после неё в CRM ушла более новая запись: старая затёрла бы её"
    return None


def _after_visit(kind: str, visit_start: datetime | None, now: datetime) -> str | None:
    if kind in JobKind.__members__.values() and must_expire(JobKind(kind), visit_start, now):
        return "приём уже начался: сообщение о нём больше не отправляется"
    return None
