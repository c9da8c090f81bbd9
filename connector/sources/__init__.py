"""Adapters that turn each source's wire format into the core's values.

SOURCES is the webhook door's registry: one entry per `/webhooks/<source>/…`, each with one `parse`, so the
door names no source itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.core.model import SourceEvent
from connector.sources.generic import parse_generic
from connector.sources.mapping import SourceMapping
from connector.sources.settings import GenericSource
from connector.sources.yclients import check_company, parse_record_webhook

if TYPE_CHECKING:
    from connector.tenants import Tenant

__all__ = ["SOURCES", "Source"]


@dataclass(frozen=True)
class Source:
    # The decoded JSON body, the tenant it came for, and the compiled mappings by name (raises PayloadError).
    parse: Callable[[Any, Tenant, Mapping[str, SourceMapping]], SourceEvent | None]
    signed: bool = False  # the sender may sign with Standard Webhooks (the tenant's webhook_secret)


def _yclients(body: Any, tenant: Tenant, mappings: Mapping[str, SourceMapping]) -> SourceEvent | None:
    check_company(body, tenant.yclients.company_ids if tenant.yclients else frozenset())
    return parse_record_webhook(body, default_tz=tenant.timezone)


def _generic(body: Any, tenant: Tenant, mappings: Mapping[str, SourceMapping]) -> SourceEvent | None:
    return parse_generic(body, mappings[(tenant.generic or GenericSource()).mapping], default_tz=tenant.timezone)


SOURCES: Mapping[str, Source] = {
    "yclients": Source(_yclients),
    "generic": Source(_generic, signed=True),
}
