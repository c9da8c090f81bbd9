"""Which `Target` pushes a tenant's write-backs to each target name: one factory per target, one line each.

A factory takes the tenant and the Runtime and returns the tenant's target, or None when the tenant is not set up
for it (no `writeback:` entry, or no API credentials): its rows then fail with a message saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from connector.entrypoints.bootstrap import Runtime
from connector.sources.amocrm_fetch import AmocrmNoteTarget, tokens_for
from connector.sources.bitrix24_fetch import Bitrix24CommentTarget
from connector.sources.crm import Target
from connector.sources.yclients_api import YclientsApi
from connector.targets.generic import GenericTarget
from connector.targets.yclients import YclientsRecordTarget
from connector.tenants import Tenant

__all__ = ["TARGETS", "TargetFactory", "amocrm_target", "bitrix24_target", "generic_target", "yclients_target"]

TargetFactory = Callable[[Tenant, Runtime], Target | None]


def yclients_target(tenant: Tenant, runtime: Runtime) -> Target | None:
    """The record field and/or comment line, through the REST credentials of `sources.yclients`."""
    settings = tenant.writeback.yclients if tenant.writeback is not None else None
    source = tenant.yclients
    if settings is None or source is None or not source.partner_token:
        return None
    return YclientsRecordTarget(YclientsApi(source.client_settings()), settings)


def generic_target(tenant: Tenant, runtime: Runtime) -> Target | None:
    settings = tenant.writeback.generic if tenant.writeback is not None else None
    return GenericTarget(settings) if settings is not None else None


def amocrm_target(tenant: Tenant, runtime: Runtime) -> Target | None:
    """A service note on the lead and/or a lead field, with the tenant's token (or its rotated OAuth pair)."""
    settings = tenant.writeback.amocrm if tenant.writeback is not None else None
    if settings is None or tenant.amocrm is None:
        return None
    tokens = tokens_for(tenant.amocrm, runtime.sessions, tenant.id)
    return AmocrmNoteTarget.build(tenant.amocrm, settings, tokens=tokens)


def bitrix24_target(tenant: Tenant, runtime: Runtime) -> Target | None:
    """A timeline comment and/or a user field of the deal, through the portal's inbound webhook."""
    settings = tenant.writeback.bitrix24 if tenant.writeback is not None else None
    if settings is None or tenant.bitrix24 is None:
        return None
    return Bitrix24CommentTarget.build(tenant.bitrix24, settings)


TARGETS: Mapping[str, TargetFactory] = {
    "yclients": yclients_target,
    "amocrm": amocrm_target,
    "bitrix24": bitrix24_target,
    "generic": generic_target,
}
