"""The kept early receipts (connector.core.early_receipts): keep, find the ones recorded sends name, the ones
now named by an attempt, and the ones waited out; and settle their callbacks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from connector.channels.base import StatusReport
from connector.core.early_receipts import outcome_after_release, release_note
from connector.core.model import AttemptStatus, InboundOutcome
from connector.store.models import DeliveryAttempt, EarlyReceipt, InboundEvent, NotificationJob


def hold(session: Session, reports: Iterable[StatusReport], *, tenant_id: str, provider: str,
         inbound: InboundEvent, now: datetime) -> int:
    """Keep reports that name no attempt yet; how many (a report naming no id at all cannot be matched: dropped)."""
    rows = [EarlyReceipt(tenant_id=tenant_id, provider=provider, provider_message_id=r.provider_message_id,
                         message_id=r.message_id, status=r.status, raw_status=(r.raw_status or None) and
                         r.raw_status[:64], error=r.error, at=r.at, inbound_event_id=inbound.id, received_at=now)
            for r in reports if r.provider_message_id or r.message_id]
    session.add_all(rows)
    return len(rows)


def as_report(row: EarlyReceipt) -> StatusReport:
    return StatusReport(AttemptStatus(row.status), provider_message_id=row.provider_message_id,
                        message_id=row.message_id, at=row.at, error=row.error, raw_status=row.raw_status)


def held_for(session: Session, attempts: Sequence[tuple[str, DeliveryAttempt]]) -> list[EarlyReceipt]:
    """The kept reports these (tenant, attempt) pairs name, by the provider's id or ours: one query, locked so that
    a concurrent pass does not apply them too."""
    provider_ids = [a.provider_message_id for _, a in attempts if a.provider_message_id]
    our_ids = [a.message_id for _, a in attempts]
    if not attempts:
        return []
    rows = session.scalars(select(EarlyReceipt).where(or_(
        EarlyReceipt.provider_message_id.in_(provider_ids), EarlyReceipt.message_id.in_(our_ids)))
        .with_for_update(skip_locked=True)).all()
    named = {(t, a.provider, a.provider_message_id) for t, a in attempts if a.provider_message_id}
    ours = {(t, a.provider, a.message_id) for t, a in attempts}
    return [row for row in rows if (row.tenant_id, row.provider, row.provider_message_id) in named
            or (row.tenant_id, row.provider, row.message_id) in ours]


def now_named(session: Session, *, limit: int) -> list[EarlyReceipt]:
    """Kept reports an attempt has taken the id of since (a callback that raced its send's record): one query."""
    named = and_(DeliveryAttempt.provider == EarlyReceipt.provider, or_(
        DeliveryAttempt.provider_message_id == EarlyReceipt.provider_message_id,
        DeliveryAttempt.message_id == EarlyReceipt.message_id))
    return list(session.scalars(
        select(EarlyReceipt).join(DeliveryAttempt, named)
        .join(NotificationJob, and_(NotificationJob.id == DeliveryAttempt.job_id,
                                    NotificationJob.tenant_id == EarlyReceipt.tenant_id))
        .order_by(EarlyReceipt.id).limit(limit).with_for_update(of=EarlyReceipt, skip_locked=True)).unique())


def waited_out(session: Session, *, before: datetime, limit: int) -> list[EarlyReceipt]:
    """Kept reports received before `before`: nobody took their ids within the window."""
    return list(session.scalars(select(EarlyReceipt).where(EarlyReceipt.received_at <= before)
                                .order_by(EarlyReceipt.id).limit(limit).with_for_update(skip_locked=True)))


def release(session: Session, rows: Sequence[EarlyReceipt], *, applied: bool) -> None:
    """Forget settled reports, and say on each one's callback what became of them."""
    if not rows:
        return
    counts: dict[int, int] = {}
    for row in rows:
        counts[row.inbound_event_id] = counts.get(row.inbound_event_id, 0) + 1
        session.delete(row)
    for event in session.scalars(select(InboundEvent).where(InboundEvent.id.in_(counts))):
        event.outcome = outcome_after_release(InboundOutcome(event.outcome), applied=applied)
        event.error = release_note(counts[event.id], applied=applied)


def held_list(session: Session, *, tenant_id: str, limit: int) -> Sequence[EarlyReceipt]:
    """The tenant's kept reports, oldest first: what the status page shows."""
    return session.scalars(select(EarlyReceipt).where(EarlyReceipt.tenant_id == tenant_id)
                           .order_by(EarlyReceipt.received_at, EarlyReceipt.id).limit(limit)).all()
