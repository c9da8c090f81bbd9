"""`GET /metrics` in Prometheus' text format, read from the ledger at scrape time.

Nothing is counted in process memory: gunicorn runs several processes and workers run on several hosts, and
the ledger already knows every number. Configured tenant ids, kinds, channels and statuses only; no patient
data, and nothing a stranger typed (an unknown tenant id is no label).
Needs `Authorization: Bearer <CONNECTOR_API_TOKEN>` (Prometheus: `authorization: {credentials: ...}`).
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from connector.core.model import JobStatus
from connector.store.models import DeliveryAttempt, InboundEvent, NotificationJob, WorkerHeartbeat
from connector.usecases.refusals import UNAUTHENTICATED
from connector.web.auth import require_api_token
from connector.web.context import current_runtime

bp = Blueprint("metrics", __name__)

WINDOW = timedelta(hours=24)


class _LedgerCollector:
    def __init__(self, session, now, tenants, *, late_after: timedelta):
        self.session, self.now, self.tenants = session, now, sorted(tenants)
        self.late_after = late_after

    def collect(self):
        session, now = self.session, self.now
        # status: scheduled, sending, awaiting_delivery, then delivered, read, unconfirmed (sent, never confirmed
        # by the provider), failed (every channel refused or failed), expired, cancelled, skipped
        jobs = GaugeMetricFamily("connector_jobs", "Notification jobs by state (unconfirmed: sent, never confirmed; "
                                 "failed: every channel refused or failed)", labels=["tenant", "kind", "status"])
        for tenant, kind, status, count in session.execute(
                select(NotificationJob.tenant_id, NotificationJob.kind, NotificationJob.status, func.count())
                .group_by(NotificationJob.tenant_id, NotificationJob.kind, NotificationJob.status)):
            jobs.add_metric([tenant, kind, status], count)
        yield jobs

        late = GaugeMetricFamily("connector_jobs_overdue",
                                 f"Scheduled jobs more than {_span(self.late_after)} past due", labels=["tenant"])
        for tenant, count in session.execute(
                select(NotificationJob.tenant_id, func.count())
                .where(NotificationJob.status == JobStatus.SCHEDULED, NotificationJob.due_at < now - self.late_after)
                .group_by(NotificationJob.tenant_id)):
            late.add_metric([tenant], count)
        yield late

        attempts = GaugeMetricFamily("connector_attempts_24h", "Delivery attempts made in the last 24 hours",
                                     labels=["tenant", "channel", "provider", "status"])
        for tenant, channel, provider, status, count in session.execute(
                select(NotificationJob.tenant_id, DeliveryAttempt.channel, DeliveryAttempt.provider,
                       DeliveryAttempt.status, func.count())
                .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
                .where(DeliveryAttempt.created_at >= now - WINDOW)
                .group_by(NotificationJob.tenant_id, DeliveryAttempt.channel, DeliveryAttempt.provider,
                          DeliveryAttempt.status)):
            attempts.add_metric([tenant, channel, provider, status], count)
        yield attempts

        inbound = GaugeMetricFamily("connector_inbound_events_24h", "Webhooks and callbacks received in 24 hours",
                                    labels=["tenant", "source", "outcome"])
        recent = InboundEvent.received_at >= now - WINDOW
        vouched = or_(InboundEvent.reason.is_(None), InboundEvent.reason.not_in(UNAUTHENTICATED))
        for tenant, source, outcome, count in session.execute(
                select(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.outcome, func.count())
                .where(recent, vouched, InboundEvent.tenant_id.in_(self.tenants))
                .group_by(InboundEvent.tenant_id, InboundEvent.source, InboundEvent.outcome)):
            inbound.add_metric([tenant, source, outcome], count)
        yield inbound

        # Tenant ids and paths in these came from strangers: only the reason, a closed set, is a label.
        refused = GaugeMetricFamily("connector_inbound_unauthenticated_24h",
                                    "Bodies refused in 24 hours before anyone vouched for them, by reason",
                                    labels=["reason"])
        counts = dict(session.execute(
            select(InboundEvent.reason, func.count())
            .where(recent, InboundEvent.reason.in_(UNAUTHENTICATED)).group_by(InboundEvent.reason)).all())
        for reason in UNAUTHENTICATED:
            refused.add_metric([reason], counts.get(reason, 0))
        yield refused

        beats = GaugeMetricFamily("connector_worker_heartbeat_age_seconds", "Seconds since each worker's last beat",
                                  labels=["worker"])
        for beat in session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.beat_at >= now - WINDOW)):
            beats.add_metric([beat.worker_id], (now - beat.beat_at).total_seconds())
        yield beats


def _span(length: timedelta) -> str:
    """"5 minutes" for the help text; seconds where the setting is no whole number of minutes."""
    seconds = int(length.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


@bp.get("/metrics")
def metrics():
    rt = current_runtime()
    require_api_token()
    registry = CollectorRegistry(auto_describe=False)
    try:
        with rt.sessions() as session:
            registry.register(_LedgerCollector(session, rt.clock(), rt.tenants, late_after=rt.settings.late_after))
            body = generate_latest(registry)
    except SQLAlchemyError:
        abort(503, "the ledger cannot be read right now")
    return Response(body, content_type=CONTENT_TYPE_LATEST)
