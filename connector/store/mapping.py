"""The mappings between database rows and the core's values, in one place: a booking row read as BookingFacts
(to render a message), BookingFacts written onto a booking row (intake), and a job's visit as its fallback's
time needs it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from connector.core.cascade import Decision
from connector.core.model import JobKind
from connector.core.quiet_hours import schedule_fallback
from connector.store.models import NotificationJob
from connector.tenants import Tenant


def fallback_scheduled(decision: Decision, *, job: NotificationJob, tenant: Tenant,
                       visits: Mapping[int, tuple[datetime, str]], now: datetime) -> Decision:
    """The decision with its fallback's time, from the job's visit (`visits`: booking id → start and zone, as
    `ledger.visit_times` reads them) and the tenant's quiet hours."""
    start, zone = visits.get(job.booking_id, (None, tenant.timezone)) if job.booking_id else (None, tenant.timezone)
    return schedule_fallback(decision, now=now, kind=JobKind(job.kind), visit_start=start,
                             quiet=tenant.policy.quiet_hours, tz=zone)
