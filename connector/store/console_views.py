"""Read models of the support console that views.py does not have: delivery figures by channel and step, deliveries
per day for the chart, the queue's lag, the inbound events' page. Grouped queries only: however many attempts or
events a tenant has, each figure is one statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased, defer

from connector.core.figures import AttemptGroup
from connector.core.model import InboundOutcome, JobStatus
from connector.core.writeback import WritebackStatus
from connector.store.live import state_is
from connector.store.models import DeliveryAttempt, InboundEvent, NotificationJob, Writeback

EVENTS_PER_PAGE = 50
CHART_DAYS = 7


@dataclass(frozen=True)
class Queue:
    due_now: int  # scheduled jobs whose time has come
    oldest_due: datetime | None  # the longest waiting of them: now minus this is the queue's lag
    pending_inbound: int  # stored, not applied yet
    rejected_week: int  # inbound events refused in the last 7 days


@dataclass(frozen=True)
class Daily:
    days: list[datetime]  # the local midnights, oldest first
    by_channel: dict[str, list[int]]  # channel → deliveries on each of `days`


@dataclass(frozen=True)
class WritebackTrouble:
    failed: int  # reports to the CRM that failed for good
    retrying: int  # still to be tried again after a failure
    latest: Sequence[Writeback]  # the latest failed, newest first


@dataclass(frozen=True)
class EventsPage:
    events: Sequence[InboundEvent]  # newest first, bodies and headers not loaded
    page: int
    has_next: bool
    sources: list[str]  # every source this tenant has events from, for the filter


def day_start(now: datetime, zone: ZoneInfo) -> datetime:
    return datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)


def attempt_groups(session: Session, *, tenant_id: str, now: datetime, zone: ZoneInfo) -> list[AttemptGroup]:
    """The tenant's attempts of the last 7 days, counted by channel, step, status, whether a provider took them,
    whether their job went on to a later step, and whether they were made today / in the last 24 h: one query."""
    later = aliased(DeliveryAttempt)
    fell = exists().where(later.job_id == DeliveryAttempt.job_id, later.step > DeliveryAttempt.step)
    today = DeliveryAttempt.created_at >= day_start(now, zone)
    day = DeliveryAttempt.created_at >= now - timedelta(hours=24)
    sent = DeliveryAttempt.sent_at.is_not(None)
    # Grouped in an outer query: PostgreSQL takes a bound time in the SELECT and the same in the GROUP BY for two
    # expressions, so the flags are named in a subquery first.
    flags = (select(DeliveryAttempt.channel, DeliveryAttempt.step, DeliveryAttempt.status,
                    _flag(sent).label("sent"), _flag(fell).label("fell"), _flag(today).label("today"),
                    _flag(day).label("day"))
             .join(NotificationJob, NotificationJob.id == DeliveryAttempt.job_id)
             .where(NotificationJob.tenant_id == tenant_id, DeliveryAttempt.created_at >= now - timedelta(days=7))
             .subquery())
    columns = (flags.c.channel, flags.c.step, flags.c.status, flags.c.sent, flags.c.fell, flags.c.today, flags.c.day)
    rows = session.execute(select(*columns, func.count()).group_by(*columns)).all()
    return [AttemptGroup(channel, step, status, bool(was_sent), bool(fell_through),
                         frozenset(name for name, yes in (("today", in_today), ("24h", in_day), ("7d", True)) if yes),
                         count)
            for channel, step, status, was_sent, fell_through, in_today, in_day, count in rows]


def _flag(condition):  # type: ignore[no-untyped-def]
    """A condition as 1/0 in the SELECT list (SQLite and PostgreSQL group by it alike)."""
    return case((condition, 1), else_=0)


def daily_deliveries(session: Session, *, tenant_id: str, now: datetime, zone: ZoneInfo,
                     days: int = CHART_DAYS) -> Daily:
    """Deliveries by channel on each of the last `days` local days (today included): one query, the days cut at
    the clinic's midnights (computed here, so a change of offset is honoured)."""
    today = now.astimezone(zone).date()
    starts = [datetime.combine(today - timedelta(days=back), time(0), tzinfo=zone)
              for back in range(days - 1, -1, -1)]
    index = case(*[(DeliveryAttempt.delivered_at >= start, i) for i, start in reversed(list(enumerate(starts)))],
                 else_=-1)
    days_of = (select(DeliveryAttempt.channel, index.label("day"))
               .join(NotificationJob, NotificationJob.id == DeliveryAttempt.job_id)
               .where(NotificationJob.tenant_id == tenant_id, DeliveryAttempt.delivered_at >= starts[0]).subquery())
    rows = session.execute(select(days_of.c.channel, days_of.c.day, func.count())
                           .group_by(days_of.c.channel, days_of.c.day)).all()
    series: dict[str, list[int]] = {}
    for channel, day, count in rows:
        if 0 <= day < days:
            series.setdefault(channel, [0] * days)[day] += count
    return Daily(starts, dict(sorted(series.items())))


def queue(session: Session, *, tenant_id: str, now: datetime) -> Queue:
    """What is waiting right now: jobs due, the oldest of them, inbound events not applied, refusals this week."""
    due_now, oldest = session.execute(
        select(func.count(), func.min(NotificationJob.due_at))
        .where(NotificationJob.tenant_id == tenant_id, state_is(NotificationJob.status, JobStatus.SCHEDULED),
               NotificationJob.due_at <= now)).one()
    pending, rejected = session.execute(
        select(func.count(case((state_is(InboundEvent.outcome, InboundOutcome.PENDING), 1))),
               func.count(case((and_(state_is(InboundEvent.outcome, InboundOutcome.REJECTED),
                                     InboundEvent.received_at >= now - timedelta(days=7)), 1))))
        .where(InboundEvent.tenant_id == tenant_id,
               state_is(InboundEvent.outcome, InboundOutcome.PENDING, InboundOutcome.REJECTED))).one()
    return Queue(due_now or 0, oldest, pending or 0, rejected or 0)


def events_page(session: Session, *, tenant_id: str, source: str | None, outcome: str | None,
                page: int = 1, per_page: int = EVENTS_PER_PAGE) -> EventsPage:
    """One page of the tenant's inbound events, newest first, of one source and outcome when given."""
    query = select(InboundEvent).where(InboundEvent.tenant_id == tenant_id)
    if source:
        query = query.where(InboundEvent.source == source)
    if outcome:
        query = query.where(InboundEvent.outcome == outcome)
    rows = session.scalars(query.options(defer(InboundEvent.body), defer(InboundEvent.headers),
                                         defer(InboundEvent.body_raw), defer(InboundEvent.parsed))
                           .order_by(InboundEvent.id.desc()).offset((page - 1) * per_page).limit(per_page + 1)).all()
    sources = list(session.scalars(select(InboundEvent.source).where(InboundEvent.tenant_id == tenant_id)
                                   .group_by(InboundEvent.source).order_by(InboundEvent.source)))
    return EventsPage(rows[:per_page], page, len(rows) > per_page, sources)


def rejected_ids(session: Session, *, tenant_id: str, source: str | None, excluding: Sequence[str],
                 limit: int) -> list[int]:
    """The tenant's rejected events (of one source when given), newest first, but those rejected for a reason in
    `excluding` (a body nobody vouched for is never applied) and those kept only in part."""
    query = select(InboundEvent.id).where(InboundEvent.tenant_id == tenant_id,
                                          state_is(InboundEvent.outcome, InboundOutcome.REJECTED),
                                          InboundEvent.body_truncated.is_(False),
                                          InboundEvent.reason.is_(None) | InboundEvent.reason.not_in(list(excluding)))
    if source:
        query = query.where(InboundEvent.source == source)
    return list(session.scalars(query.order_by(InboundEvent.id.desc()).limit(limit)))


def writeback_trouble(session: Session, *, tenant_id: str, limit: int = 10) -> WritebackTrouble:
    """The tenant's failing reports to its CRM: how many failed for good, how many are being retried, the latest
    failed (to open their bookings). Two queries."""
    failed, retrying = session.execute(
        select(func.count(case((state_is(Writeback.status, WritebackStatus.FAILED), 1))),
               func.count(case((and_(state_is(Writeback.status, WritebackStatus.PENDING), Writeback.tries > 0), 1))))
        .where(Writeback.tenant_id == tenant_id)).one()
    latest = session.scalars(select(Writeback).where(Writeback.tenant_id == tenant_id,
                                                     state_is(Writeback.status, WritebackStatus.FAILED))
                             .order_by(Writeback.id.desc()).limit(limit)).all()
    return WritebackTrouble(failed or 0, retrying or 0, latest)
