"""Provider accounts of each tenant: one adapter per (tenant, provider) per process, with its rate limit.

The adapters share one requests.Session per account (connection reuse matters at 100-300 ms per call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import requests
from requests.adapters import HTTPAdapter

from connector.channels import build_channel
from connector.channels.base import Channel
from connector.core.cascade import Step
from connector.tenants import CascadeStep, Tenant


class RateLimiter:
    """At most `rate` acquisitions per second, evenly spaced; thread-safe; sleeps the caller as needed."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def acquire(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


@dataclass
class Account:
    channel: Channel
    limiter: RateLimiter
    in_flight: threading.BoundedSemaphore  # at most this many of its sends at once (`max_in_flight`)


class Accounts:
    def __init__(self, tenants: dict[str, Tenant], pool_size: int = 32):
        self.tenants = tenants
        self.pool_size = pool_size
        self._accounts: dict[tuple[str, str], Account] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, provider: str) -> Account:
        key = (tenant_id, provider)
        with self._lock:
            if key not in self._accounts:
                config = self.tenants[tenant_id].providers.get(provider, {})
                session = requests.Session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._accounts[key] = Account(
                    build_channel(provider, config, session), RateLimiter(config.get("rate_per_second")),
                    threading.BoundedSemaphore(int(config.get("max_in_flight", self.pool_size))))
            return self._accounts[key]

    def steps(self, tenant: Tenant) -> list[Step]:
        """The tenant's cascade with `sent_is_final` resolved from what each provider declares."""
        return [self._step(tenant.id, step) for step in tenant.cascade]

    def _step(self, tenant_id: str, step: CascadeStep) -> Step:
        channel = self.get(tenant_id, step.provider).channel
        final = step.sent_is_final
        if final is None:
            final = not channel.has_receipts
        # A provider without receipts will never report: nothing to wait for after the deadline.
        window = channel.status_window if channel.has_receipts else timedelta(0)
        return Step(step.channel, step.provider, step.timeout, step.until, final, window)
