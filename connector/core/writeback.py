"""What the clinic reads on the booking in its CRM: which audit lines become write-back reports, their Russian
text, which unsent report a newer one replaces, and when a failed push is tried again (pure).

A tenant reports `final` (a job's terminal outcome) or `final` and `steps` (each send, each fall-through to the
next channel). The text is short, Russian, in the clinic's local time, and names no patient: «Напоминание
доставлено в MAX 02.12 18:02».
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from connector.core.model import AuditWhat, JobKind
from connector.core.phrases import zone
from connector.core.retry import retry_delay

__all__ = [
    "FINAL",
    "MAX_TRIES",
    "STEPS",
    "Draft",
    "JobView",
    "Line",
    "WritebackStatus",
    "drafts",
    "retry_at",
    "superseded",
    "worth_reading",
]

FINAL = "final"
STEPS = "steps"


class WritebackStatus(StrEnum):
    """Where one outbox row stands."""

    PENDING = "pending"  # to push at its next_try_at
    SENDING = "sending"  # leased by a worker pushing it
    SENT = "sent"
    FAILED = "failed"  # refused, or out of tries: its last error says why
    REPLACED = "replaced"  # a newer report of the same booking and target came before it was sent

# Every kind's name is neuter in Russian, so «доставлено», «прочитано», «отправлено» agree with each.
_KIND = {
    JobKind.CONFIRMATION: "Подтверждение записи",
    JobKind.REMINDER: "Напоминание",
    JobKind.RESCHEDULE: "Уведомление о переносе",
    JobKind.CANCELLATION: "Уведомление об отмене",
    JobKind.RESULTS_READY: "Сообщение о готовности результатов",
    JobKind.RECALL: "Приглашение на повторный приём",
}
_NAME = {"max": "MAX", "telegram": "Telegram", "whatsapp": "WhatsApp", "sms": "SMS"}
_VIA = {"max": "в MAX", "telegram": "в Telegram", "whatsapp": "в WhatsApp", "sms": "по SMS"}

_FINAL = frozenset({AuditWhat.JOB_DELIVERED, AuditWhat.JOB_READ, AuditWhat.JOB_FAILED, AuditWhat.JOB_EXPIRED,
                    AuditWhat.JOB_UNCONFIRMED})
# A step that did not reach the patient; with the job scheduled again after it, the cascade fell through.
_MISSED = {
    AuditWhat.ATTEMPT_NOT_REGISTERED: "пациента нет в {name}",
    AuditWhat.ATTEMPT_EXPIRED: "{name} не ответил",
    AuditWhat.ATTEMPT_FAILED: "{name} не доставил",
    AuditWhat.ATTEMPT_REJECTED: "{name} не принял сообщение",
    AuditWhat.ATTEMPT_UNKNOWN: "{name} не ответил",
}
_STEPS = frozenset({AuditWhat.ATTEMPT_SENT, AuditWhat.JOB_SCHEDULED, *_MISSED})

MAX_TRIES = 8  # pushes of one row; with the schedule below they span about an hour of a target's outage
BASE_DELAY = 30.0  # seconds before the second push; doubling up to CAP
CAP = 3600.0


@dataclass(frozen=True)
class Line:
    """One audit line a transaction writes, as far as a report needs it."""

    what: AuditWhat
    at: datetime
    job_id: int
    channel: str | None = None  # the attempt's channel, on an attempt's line


@dataclass(frozen=True)
class JobView:
    """What a report needs of a job as the transaction leaves it."""

    kind: JobKind
    booking_id: int
    tz: str  # the booking's zone: the clinic's wall clock
    next_channel: str | None = None  # the channel of the step it is scheduled on now
    delivered_on: str | None = None  # the channel of its newest delivered or read attempt
    last_tried_on: str | None = None  # the channel of its newest attempt


@dataclass(frozen=True)
class Draft:
    """One report to write: the outbox row's text, the machine word beside it, and the generic JSON's details."""

    booking_id: int
    job_id: int
    status: str
    text: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


def worth_reading(what: str, report: Sequence[str]) -> bool:
    """Whether an audit line may become a report under `report` (checked before any query is made)."""
    return what in _FINAL or (STEPS in report and what in _STEPS)


def drafts(lines: Sequence[Line], jobs: Mapping[int, JobView], *, report: Sequence[str]) -> list[Draft]:
    """The reports these lines make, in their order. A job line needs its job in `jobs` (others are passed)."""
    out: list[Draft] = []
    missed: dict[int, Line] = {}  # per job: the last step that did not reach the patient, in this batch
    for line in lines:
        job = jobs.get(line.job_id)
        if job is None or not worth_reading(line.what, report):
            continue
        if line.what in _MISSED:
            missed[line.job_id] = line
            continue
        draft = _final(line, job) if line.what in _FINAL else _step(line, job, missed.pop(line.job_id, None))
        if draft is not None:
            out.append(draft)
    return out


def _final(line: Line, job: JobView) -> Draft:
    kind, when = _KIND[job.kind], _local(line.at, job.tz)
    channel = job.delivered_on if line.what in (AuditWhat.JOB_DELIVERED, AuditWhat.JOB_READ) else job.last_tried_on
    match line.what:
        case AuditWhat.JOB_DELIVERED:
            text, status = f"{kind} доставлено {_via(channel)} {when}", "delivered"
        case AuditWhat.JOB_READ:
            text, status = f"{kind} прочитано {_via(channel)} {when}", "read"
        case AuditWhat.JOB_UNCONFIRMED:
            text, status = f"{kind} отправлено {_via(channel)}, доставка не подтверждена {when}", "unconfirmed"
        case AuditWhat.JOB_EXPIRED:
            text, status = f"{kind} не отправлено: время приёма наступило {when}", "expired"
        case _:
            text, status = f"{kind} не доставлено ни по одному каналу {when}", "failed"
    return _draft(line, job, status, text, channel)


def _step(line: Line, job: JobView, missed: Line | None) -> Draft | None:
    kind, when = _KIND[job.kind], _local(line.at, job.tz)
    if line.what == AuditWhat.ATTEMPT_SENT:
        return _draft(line, job, "sent", f"{kind} отправлено {_via(line.channel)} {when}", line.channel)
    if missed is None:
        return None  # scheduled again for another reason (a released pass): nothing fell through
    why = _MISSED[missed.what].format(name=_name(missed.channel))
    return _draft(line, job, "fallback", f"{kind}: {why}, отправляем {_via(job.next_channel)} {when}",
                  job.next_channel, previous=missed.channel)


def _draft(line: Line, job: JobView, status: str, text: str, channel: str | None, **more: str | None) -> Draft:
    details = {"job_id": line.job_id, "kind": str(job.kind), "channel": channel, **more}
    return Draft(job.booking_id, line.job_id, status, text, line.at, details)


def _name(channel: str | None) -> str:
    return _NAME.get(channel or "", channel or "канал")


def _via(channel: str | None) -> str:
    return _VIA.get(channel or "", f"через {_name(channel)}")


def _local(at: datetime, tz: str) -> str:
    """`DD.MM HH:MM` in the clinic's zone: what its administrator reads off the wall clock."""
    return at.astimezone(zone(tz)).strftime("%d.%m %H:%M")


def superseded(keys: Sequence[tuple[int, str]]) -> set[int]:
    """Of new rows keyed by (booking, target) in their order, the indexes a later row of the same key replaces
    before any was sent: the field on the booking never goes backwards, and never shows a stale step."""
    last = {key: index for index, key in enumerate(keys)}
    return {index for index, key in enumerate(keys) if last[key] != index}


def retry_at(tries: int, retry_after: float | None, now: datetime) -> datetime | None:
    """When a row that failed transiently on push number `tries` is pushed again; None: it has had its tries.
    Exponential from BASE_DELAY to CAP; a target's Retry-After is honoured (within connector.core.retry's cap)."""
    if tries >= MAX_TRIES:
        return None
    return now + timedelta(seconds=retry_delay(tries, retry_after, base=BASE_DELAY, cap=CAP))
