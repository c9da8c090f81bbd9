"""Every claim of work in one place: which rows a worker takes, and how it keeps others off them.

PostgreSQL: `SELECT … FOR UPDATE SKIP LOCKED` lets any number of workers share each queue without waiting on each
other; a lease (owner, until) written in the same transaction keeps a claimed job off the others after the
commit, and its end hands the job over when a worker died. SQLite has no SKIP LOCKED and runs one worker
(connector.entrypoints.worker.hold_sqlite_lock); the same statements run there unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from connector.core.model import JobStatus
from connector.store.live import state_is
from connector.store.models import NotificationJob, SandboxCallback, SyncState

JOB_LEASE = timedelta(minutes=2)  # a send's retry budget (45 s) stays well inside it
SYNC_LEASE = timedelta(minutes=10)


def claim_due_jobs(session: Session, *, worker_id: str, now: datetime, limit: int) -> list[int]:
    """Lease to this worker the jobs whose lease ran out (a dead worker's: first, they waited longest), then the
    due ones, oldest due first.

    Two statements, not one with an OR: each walks its own partial index (connector.store.live) in order and
    stops at `limit`. With the OR, PostgreSQL could not walk an index in `due_at` order, misjudged how many rows
    match (past-due rows are exactly the finished ones) and scanned and sorted the whole table."""
    ids = list(session.scalars(
        select(NotificationJob.id)
        .where(state_is(NotificationJob.status, JobStatus.SENDING), NotificationJob.lease_until < now)
        .order_by(NotificationJob.lease_until).limit(limit).with_for_update(skip_locked=True)))
    if len(ids) < limit:
        ids += session.scalars(
            select(NotificationJob.id)
            .where(state_is(NotificationJob.status, JobStatus.SCHEDULED), NotificationJob.due_at <= now)
            .order_by(NotificationJob.due_at).limit(limit - len(ids)).with_for_update(skip_locked=True))
    if ids:
        session.execute(update(NotificationJob).where(NotificationJob.id.in_(ids)).values(
            status=JobStatus.SENDING, lease_owner=worker_id, lease_until=now + JOB_LEASE, updated_at=now))
    return ids


def renew_leases(session: Session, job_ids: Sequence[int], *, worker_id: str, now: datetime) -> None:
    """This worker still holds these jobs (answers it could not write yet): their leases from now, so nobody
    takes them for a dead worker's meanwhile. Jobs no longer ours or no longer sending are left alone."""
    session.execute(update(NotificationJob).where(
        NotificationJob.id.in_(job_ids), NotificationJob.lease_owner == worker_id,
        NotificationJob.status == JobStatus.SENDING).values(lease_until=now + JOB_LEASE))


def claim_timed_out(session: Session, *, now: datetime, limit: int) -> Sequence[NotificationJob]:
    """Jobs whose step deadline passed while awaiting delivery, locked for this transaction (no lease: the
    decision is written before the commit, and no provider is called while they are held)."""
    return session.scalars(
        select(NotificationJob)
        .where(state_is(NotificationJob.status, JobStatus.AWAITING_DELIVERY), NotificationJob.step_deadline <= now)
        .limit(limit).with_for_update(skip_locked=True)
    ).all()


def claim_sync(session: Session, *, tenant_id: str, source: str, worker_id: str, now: datetime,
               first_cursor: datetime) -> datetime | None:
    """Lease one tenant's sync of one source; its cursor, or None while another worker holds it.

    The first claim creates the state at `first_cursor`.
    """
    state = session.get(SyncState, (tenant_id, source))
    if state is None:
        state = SyncState(tenant_id=tenant_id, source=source, cursor=first_cursor, records_read=0)
        session.add(state)
        session.flush()
    claimed = session.execute(
        update(SyncState)
        .where(SyncState.tenant_id == tenant_id, SyncState.source == source,
               or_(SyncState.lease_until.is_(None), SyncState.lease_until < now))
        .values(lease_owner=worker_id, lease_until=now + SYNC_LEASE)
    )
    return state.cursor if getattr(claimed, "rowcount", 0) else None


def release_sync(session: Session, *, tenant_id: str, source: str, worker_id: str, now: datetime,
                 cursor: datetime | None, read: int, error: str | None) -> None:
    """End a pass this worker holds: the cursor moved (when the window was read whole), the run noted."""
    state = session.get(SyncState, (tenant_id, source))
    if state is None or state.lease_owner != worker_id:
        return
    if cursor is not None:
        state.cursor = cursor
    state.last_run_at, state.last_error = now, error
    state.records_read = (state.records_read or 0) + read
    state.lease_owner = state.lease_until = None


def claim_sandbox_reports(session: Session, *, now: datetime, limit: int) -> Sequence[SandboxCallback]:
    """The sandbox's reports that are due, locked for this transaction; the caller deletes what it delivered."""
    return session.scalars(select(SandboxCallback).where(SandboxCallback.due_at <= now)
                           .order_by(SandboxCallback.due_at).limit(limit).with_for_update(skip_locked=True)).all()
