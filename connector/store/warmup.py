"""Today's warm-up allowances of the accounts of a batch, counted from the ledger: one count query per warming-up
account, not per job. The counters (connector.core.warmup.Allowance) are shared by the whole pass, so the cap is
consumed job after job."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.channels.settings import warmup_of
from connector.core.preparation import Unusable
from connector.core.warmup import Allowance, Warmup
from connector.store.models import DeliveryAttempt, NotificationJob
from connector.tenants import Tenant

log = logging.getLogger("connector.store.warmup")


def warmup_caps(session: Session, tenants: Mapping[str, Tenant], tenant_ids: Iterable[str], now: datetime
                ) -> dict[str, dict[str, Allowance | Unusable]]:
    """Tenant → provider → today's allowance of each warming-up account. Where an account's warm-up settings
    cannot be used, why (Unusable): its jobs wait, every other account goes on."""
    caps: dict[str, dict[str, Allowance | Unusable]] = {}
    for tenant_id in tenant_ids:
        tenant = tenants.get(tenant_id)
        if tenant is None:
            continue  # its jobs fail in preparation: the tenant is no longer configured
        for provider, config in tenant.providers.items():
            try:
                warmup = warmup_of(config)
                if warmup is not None:
                    caps.setdefault(tenant_id, {})[provider] = warmup_allowance(session, tenant, provider, warmup,
                                                                                now)
            except ValueError as error:
                log.error("unusable warm-up settings: %s", error, extra={"fields": {
                    "tenant": tenant_id, "provider": provider}})
                text = str(error)[:300]
                where = "" if text.startswith("warmup.") else "warmup: "
                caps.setdefault(tenant_id, {})[provider] = Unusable(f"providers.{provider}.{where}{text}")
    return caps


def warmup_allowance(session: Session, tenant: Tenant, provider: str, warmup: Warmup, now: datetime) -> Allowance:
    """Today's allowance of a warming-up account: what its config allows, less what it sent since midnight."""
    midnight = datetime.combine(now.astimezone(ZoneInfo(tenant.timezone)).date(), clock_time(0),
                                ZoneInfo(tenant.timezone))
    used = session.scalar(
        select(func.count(DeliveryAttempt.id)).join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
        .where(NotificationJob.tenant_id == tenant.id, DeliveryAttempt.provider == provider,
               DeliveryAttempt.created_at >= midnight)) or 0
    return Allowance.for_day(start=warmup.start, growth=warmup.growth, since=warmup.since, ceiling=warmup.ceiling,
                             used=used, now=now, tz=tenant.timezone, quiet=tenant.policy.quiet_hours)
