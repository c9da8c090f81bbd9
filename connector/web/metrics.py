"""`GET /metrics` in Prometheus' text format, read from the ledger at scrape time.

Nothing is counted in process memory: gunicorn runs several processes and workers run on several hosts, and
the ledger already knows every number. Configured tenant ids, kinds, channels and statuses only; no patient
data, and nothing a stranger typed (an unknown tenant id is no label).
Needs `Authorization: Bearer <CONNECTOR_API_TOKEN>` (Prometheus: `authorization: {credentials: ...}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, abort
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from connector.store import views
from connector.usecases.refusals import UNAUTHENTICATED
from connector.web.auth import require_api_token
from connector.web.context import current_runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

bp = Blueprint("metrics", __name__)

WINDOW = timedelta(hours=24)


class _LedgerCollector:
    def __init__(self, session: Session, now: datetime, tenants: Iterable[str], *, late_after: timedelta):
        self.session, self.now, self.tenants = session, now, sorted(tenants)
        self.late_after = late_after

    def collect(self) -> Iterator[GaugeMetricFamily]:
        session, since = self.session, self.now - WINDOW
        # status: scheduled, sending, awaiting_delivery, then delivered, read, unconfirmed (sent, never confirmed
        # by the provider), failed (every channel refused or failed), expired, cancelled, skipped
        yield _family("connector_jobs", "Notification jobs by state (unconfirmed: sent, never confirmed; "
                      "failed: every channel refused or failed)", ["tenant", "kind", "status"],
                      views.job_counts(session))
        yield _family("connector_jobs_overdue", f"Scheduled jobs more than {_span(self.late_after)} past due",
                      ["tenant"], views.overdue_counts(session, now=self.now, late_after=self.late_after))
        yield _family("connector_attempts_24h", "Delivery attempts made in the last 24 hours",
                      ["tenant", "channel", "provider", "status"], views.attempt_counts(session, since=since))
        yield _family("connector_inbound_events_24h", "Webhooks and callbacks received in 24 hours",
                      ["tenant", "source", "outcome"],
                      views.inbound_counts(session, since=since, tenants=self.tenants, unvouched=UNAUTHENTICATED))
        # Tenant ids and paths in these came from strangers: only the reason, a closed set, is a label.
        refused = views.refusal_counts(session, since=since, reasons=UNAUTHENTICATED)
        yield _family("connector_inbound_unauthenticated_24h",
                      "Bodies refused in 24 hours before anyone vouched for them, by reason", ["reason"],
                      [(reason, refused.get(reason, 0)) for reason in UNAUTHENTICATED])
        yield _family("connector_writebacks", "Write-backs to the clinics' CRMs by state (failed: refused, or out of "
                      "tries; see GET /api/v1/<tenant>/writebacks?status=failed)", ["tenant", "target", "status"],
                      views.writeback_counts(session))
        yield _family("connector_writebacks_retrying", "Write-backs that failed and wait to be tried again",
                      ["tenant", "target"], views.writebacks_retrying(session))
        yield _family("connector_worker_heartbeat_age_seconds", "Seconds since each worker's last beat", ["worker"],
                      [(beat.worker_id, (self.now - beat.beat_at).total_seconds())
                       for beat in views.heartbeats_since(session, since=since)])


def _family(name: str, documentation: str, labels: list[str],
            rows: Iterable[tuple[Any, ...]]) -> GaugeMetricFamily:
    """One gauge family: each row is its label values, then the value."""
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for row in rows:
        family.add_metric([str(value) for value in row[:-1]], row[-1])
    return family


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
