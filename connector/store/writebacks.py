"""The outbox's rows: written with the audit lines they report, claimed by the worker in booking order, settled.

`add_writebacks` is called wherever job audit lines are written, in the same transaction, so a report exists
exactly when its change does. A tenant with no `writeback:` block costs nothing: the lines are filtered before
any query. Rows of one booking and target go out oldest first (`claim_writebacks` takes only the oldest unsent
row of each), and a newer report replaces an older one not sent yet (connector.core.writeback.superseded).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, exists, insert, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from connector.core.model import AttemptStatus, AuditWhat, JobKind
from connector.core.writeback import Draft, JobView, Line, WritebackStatus, drafts, superseded, worth_reading
from connector.store.live import state_is
from connector.store.models import AuditEvent, Booking, DeliveryAttempt, NotificationJob, Writeback

if TYPE_CHECKING:
    from connector.tenants import Tenant

# A pass's batch (connector.usecases.outbox.BATCH) pushed one after another, each a call or two of at most 20 s:
# well inside it, so nobody takes a row for a dead worker's while it is being pushed.
WRITEBACK_LEASE = timedelta(minutes=15)
Status = WritebackStatus


def add_writebacks(session: Session, tenants: Mapping[str, Tenant], lines: Sequence[AuditEvent],
                   now: datetime) -> None:
    """The write-back rows the transaction's audit lines make, in one INSERT (two reads per batch before it, none
    when no line is worth reporting); older unsent rows of the same booking and target are marked replaced."""
    kept = [line for line in lines if line.job_id is not None and line.booking_id is not None
            and _reports(tenants.get(line.tenant_id), line.what)]
    if not kept:
        return
    views, sources, channels = _job_views(session, {cast(int, line.job_id) for line in kept}, tenants)
    rows: list[dict[str, Any]] = []
    for tenant_id in dict.fromkeys(line.tenant_id for line in kept):
        settings = tenants[tenant_id].writeback
        assert settings is not None  # _reports kept only such tenants' lines
        ours = [Line(AuditWhat(line.what), line.at, cast(int, line.job_id), channels.get(line.attempt_id or 0))
                for line in kept if line.tenant_id == tenant_id]
        for draft in drafts(ours, views, report=settings.report):
            rows += [_row(tenant_id, target, draft, now) for target in settings.targets
                     if target == "generic" or target == sources[draft.booking_id]]
    if not rows:
        return
    for index in superseded([(row["booking_id"], row["target"]) for row in rows]):
        rows[index]["status"] = Status.REPLACED.value
    session.execute(update(Writeback).where(
        state_is(Writeback.status, Status.PENDING),
        tuple_(Writeback.booking_id, Writeback.target).in_({(row["booking_id"], row["target"]) for row in rows}),
    ).values(status=Status.REPLACED.value, updated_at=now).execution_options(synchronize_session=False))
    session.execute(insert(cast(Table, Writeback.__table__)), rows)


def _reports(tenant: Tenant | None, what: str) -> bool:
    settings = tenant.writeback if tenant is not None else None
    return settings is not None and worth_reading(what, settings.report)


def _job_views(session: Session, job_ids: set[int], tenants: Mapping[str, Tenant]
               ) -> tuple[dict[int, JobView], dict[int, str], dict[int, str]]:
    """What each job's reports need (connector.core.writeback.JobView), each booking's source, and each attempt's
    channel: one query for the jobs with their bookings, one for their attempts."""
    jobs = session.execute(
        select(NotificationJob.id, NotificationJob.tenant_id, NotificationJob.kind, NotificationJob.cascade_step,
               Booking.id.label("booking_id"), Booking.timezone, Booking.source)
        .join(Booking, Booking.id == NotificationJob.booking_id).where(NotificationJob.id.in_(job_ids))).all()
    attempts = session.execute(
        select(DeliveryAttempt.job_id, DeliveryAttempt.id, DeliveryAttempt.channel, DeliveryAttempt.status)
        .where(DeliveryAttempt.job_id.in_(job_ids), DeliveryAttempt.status != AttemptStatus.WITHDRAWN)
        .order_by(DeliveryAttempt.id)).all()
    tried: dict[int, str] = {}
    delivered: dict[int, str] = {}
    for attempt in attempts:  # in id order: the newest wins
        tried[attempt.job_id] = attempt.channel
        if attempt.status in (AttemptStatus.DELIVERED, AttemptStatus.READ):
            delivered[attempt.job_id] = attempt.channel
    views = {}
    for job in jobs:
        cascade = tenants[job.tenant_id].cascade
        views[job.id] = JobView(
            JobKind(job.kind), job.booking_id, job.timezone, delivered_on=delivered.get(job.id),
            next_channel=cascade[job.cascade_step].channel if job.cascade_step < len(cascade) else None,
            last_tried_on=tried.get(job.id))
    return views, {job.booking_id: job.source for job in jobs}, {a.id: a.channel for a in attempts}


def _row(tenant_id: str, target: str, draft: Draft, now: datetime) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "booking_id": draft.booking_id, "job_id": draft.job_id, "target": target,
            "status": Status.PENDING.value, "text": draft.text, "word": draft.status, "details": dict(draft.details),
            "at": draft.at, "tries": 0, "next_try_at": now, "lease_until": None, "last_error": None,
            "created_at": now, "sent_at": None, "updated_at": now}


# --- the worker's side ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """One leased row with what its push needs of its booking."""

    id: int
    tenant_id: str
    target: str
    text: str
    word: str
    at: datetime
    details: dict[str, Any]
    tries: int
    source: str
    external_id: str
    branch_id: str | None


def claim_writebacks(session: Session, *, now: datetime, limit: int) -> list[Claimed]:
    """Lease the due rows that are the oldest unsent of their booking and target (a row whose lease ran out is
    due again): on PostgreSQL `FOR UPDATE SKIP LOCKED`, so two workers never push one row, and an older row
    still pending or leased elsewhere holds back the newer ones of its booking and target."""
    older = aliased(Writeback)
    first = ~exists().where(older.booking_id == Writeback.booking_id, older.target == Writeback.target,
                            state_is(older.status, Status.PENDING, Status.SENDING), older.id < Writeback.id)
    ids = list(session.scalars(
        select(Writeback.id).where(state_is(Writeback.status, Status.SENDING), Writeback.lease_until < now, first)
        .order_by(Writeback.lease_until).limit(limit).with_for_update(skip_locked=True)))
    if len(ids) < limit:
        ids += session.scalars(
            select(Writeback.id).where(state_is(Writeback.status, Status.PENDING), Writeback.next_try_at <= now, first)
            .order_by(Writeback.next_try_at, Writeback.id).limit(limit - len(ids)).with_for_update(skip_locked=True))
    if not ids:
        return []
    session.execute(update(Writeback).where(Writeback.id.in_(ids)).values(
        status=Status.SENDING.value, lease_until=now + WRITEBACK_LEASE, updated_at=now))
    rows = session.execute(
        select(Writeback, Booking.source, Booking.external_id, Booking.branch_id)
        .join(Booking, Booking.id == Writeback.booking_id).where(Writeback.id.in_(ids)).order_by(Writeback.id)).all()
    return [Claimed(row.id, row.tenant_id, row.target, row.text, row.word, row.at, dict(row.details or {}),
                    row.tries, source, external_id, branch_id) for row, source, external_id, branch_id in rows]


@dataclass(frozen=True)
class Pushed:
    """What became of one push: sent (no error), tried again at `retry_at`, or failed for good."""

    id: int
    tries: int  # pushes of the row so far, this one included
    error: str | None = None
    retry_at: datetime | None = None


def record_pushes(session: Session, results: Sequence[Pushed], now: datetime) -> None:
    """Every pushed row settled in one statement; a row no longer leased (another worker settled it after our
    lease ran out) is left alone."""
    if not results:
        return
    table = cast(Table, Writeback.__table__)
    statement = update(table).where(table.c.id == bindparam("row_id"),
                                    table.c.status == Status.SENDING.value).values(
        status=bindparam("new_status"), tries=bindparam("new_tries"), next_try_at=bindparam("new_next_try_at"),
        sent_at=bindparam("new_sent_at"), last_error=bindparam("new_last_error"), lease_until=None, updated_at=now)
    session.execute(statement, [_settled(result, now) for result in results])


def _settled(result: Pushed, now: datetime) -> dict[str, Any]:
    status = Status.SENT if result.error is None else (
        Status.PENDING if result.retry_at is not None else Status.FAILED)
    return {"row_id": result.id, "new_status": status.value, "new_tries": result.tries,
            "new_next_try_at": result.retry_at or now, "new_sent_at": now if result.error is None else None,
            "new_last_error": result.error[:2000] if result.error else None}
