"""The wiring every process starts from: settings, tenants, mappings, the database engine (`Runtime`), and the
provider accounts of each tenant (`Accounts`): one adapter per (tenant, provider) per process, with its rate limit.

Everything is loaded and validated here, at start-up: a bad tenants file or mapping stops the process before it
serves anything. The adapters share one requests.Session per account (connection reuse matters at 100-300 ms per
call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from requests.adapters import HTTPAdapter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.channels import build_channel
from connector.channels.base import Channel, SelfReporting
from connector.config import ROOT, Settings, load_settings
from connector.core.cascade import Step
from connector.sources.amocrm_mapping import AmocrmMapping
from connector.sources.bitrix24_mapping import Bitrix24Mapping, check_writeback_field
from connector.sources.generic import load_mappings
from connector.sources.mapping import MappingError, SourceMapping
from connector.store.db import make_engine, make_sessionmaker
from connector.tenants import (
    CascadeStep,
    StaffUser,
    Tenant,
    TenantConfigError,
    demo_tenant,
    load_staff,
    load_tenants,
    parse_quiet_hours,
)
from connector.transport.sessions import new_session

MAPPINGS_DIR = ROOT / "mappings"


@dataclass
class Runtime:
    settings: Settings
    tenants: Mapping[str, Tenant]
    mappings: Mapping[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    staff: Mapping[str, StaffUser] = field(default_factory=dict)  # who may sign in to the status pages, by login


def build_runtime(settings: Settings | None = None) -> Runtime:
    """Load and validate everything at start-up: a bad tenants file or mapping stops the process here."""
    settings = settings or load_settings()
    if settings.config_path:
        tenants = load_tenants(settings.config_path)
        staff = load_staff(settings.config_path)
    else:
        tenants = {"demo": demo_tenant(settings.demo_token, step_seconds=settings.demo_step_seconds,
                                       quiet_hours=parse_quiet_hours(settings.demo_quiet_hours))}
        staff = {"admin": builtin_admin(settings.status_password)}
    mappings = load_mappings(MAPPINGS_DIR)
    for tenant in tenants.values():
        check_mappings(tenant, mappings)
        check_providers(tenant)
    engine = make_engine(settings.database_url)
    return Runtime(settings, tenants, mappings, engine, make_sessionmaker(engine), staff=staff)


def builtin_admin(password: str) -> StaffUser:
    """The embedded default's one staff user: `admin`, every tenant, with CONNECTOR_STATUS_PASSWORD."""
    from werkzeug.security import generate_password_hash

    return StaffUser(login="admin", name="Администратор", password_hash=generate_password_hash(password),
                     role="admin", tenants=None, credential=password)


def check_providers(tenant: Tenant) -> None:
    """Each cascade step names a configured provider that carries its channel; each adapter accepts its config."""
    from connector.channels import build_channel, channel_class

    for index, step in enumerate(tenant.cascade):
        where = f"tenant {tenant.id}: cascade[{index}]"
        if step.provider != "sandbox" and step.provider not in tenant.providers:
            raise TenantConfigError(f"{where}: provider {step.provider!r} has no entry under providers")
        if step.channel not in channel_class(step.provider).channels:
            raise TenantConfigError(f"{where}: {step.provider} does not carry {step.channel}")
    for name, config in tenant.providers.items():
        try:
            build_channel(name, config)
        except (ValueError, TypeError) as error:
            raise TenantConfigError(f"tenant {tenant.id}: providers.{name}: {error}") from error


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
    # A provider in our own process (the sandbox) says what it will report; checked once, here.
    reporter: SelfReporting | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.reporter = self.channel if isinstance(self.channel, SelfReporting) else None


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
                tenant = self.tenants[tenant_id]
                limits = tenant.limits(provider)
                session = new_session()
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.pool_size)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._accounts[key] = Account(
                    build_channel(provider, tenant.provider_block(provider), session),
                    RateLimiter(limits.rate_per_second),
                    threading.BoundedSemaphore(limits.max_in_flight or self.pool_size))
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
        return Step(step.channel, step.provider, step.timeout, step.until, final, window, step.on_unknown)


# The kind of mapping file each source reads (the `source:` key of a file in mappings/).
_MAPPING_KINDS: dict[str, type] = {"generic": SourceMapping, "amocrm": AmocrmMapping, "bitrix24": Bitrix24Mapping}


def check_mappings(tenant: Tenant, mappings: Mapping[str, Any]) -> None:
    """Each source's `mapping` names a file of mappings/ written for that source."""
    for source, kind in _MAPPING_KINDS.items():
        block = getattr(tenant, source, None)
        if block is None:
            continue
        found = mappings.get(block.mapping)
        if found is None:
            raise TenantConfigError(f"tenant {tenant.id}: sources.{source}.mapping names {block.mapping!r}, but "
                                    f"mappings/ has only {sorted(mappings)}")
        if not isinstance(found, kind):
            raise TenantConfigError(f"tenant {tenant.id}: sources.{source}.mapping names {block.mapping!r}, which is "
                                    f"not a mapping for {source} (its `source:` says otherwise)")
    written = tenant.writeback_bitrix24
    if tenant.bitrix24 is not None and written is not None:
        # The field a write-back fills must not be a fact the mapping reads: its echo would plan again.
        try:
            check_writeback_field(mappings[tenant.bitrix24.mapping], written.field,
                                  source=f"mappings/{tenant.bitrix24.mapping}")
        except MappingError as error:
            raise TenantConfigError(f"tenant {tenant.id}: {error}") from error
