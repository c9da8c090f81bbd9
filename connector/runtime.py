"""What a process holds for its whole life: settings, tenants, mappings and the database engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connector.config import ROOT, Settings, load_settings
from connector.sources.generic import load_mappings
from connector.store.db import make_engine, make_sessionmaker
from connector.tenants import Tenant, TenantConfigError, demo_tenant, load_tenants, parse_quiet_hours

MAPPINGS_DIR = ROOT / "mappings"


@dataclass
class Runtime:
    settings: Settings
    tenants: Mapping[str, Tenant]
    mappings: Mapping[str, Any]
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def build_runtime(settings: Settings | None = None) -> Runtime:
    """Load and validate everything at start-up: a bad tenants file or mapping stops the process here."""
    settings = settings or load_settings()
    if settings.config_path:
        tenants = load_tenants(settings.config_path)
    else:
        tenants = {"demo": demo_tenant(settings.demo_token, step_seconds=settings.demo_step_seconds,
                                       quiet_hours=parse_quiet_hours(settings.demo_quiet_hours))}
    mappings = load_mappings(MAPPINGS_DIR)
    for tenant in tenants.values():
        name = (tenant.sources.get("generic") or {}).get("mapping", "generic")
        if "generic" in tenant.sources and name not in mappings:
            raise TenantConfigError(
                f"tenant {tenant.id}: sources.generic.mapping names {name!r}, but mappings/ has "
                f"only {sorted(mappings)}"
            )
    for tenant in tenants.values():
        check_providers(tenant)
    engine = make_engine(settings.database_url)
    return Runtime(settings, tenants, mappings, engine, make_sessionmaker(engine))


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
