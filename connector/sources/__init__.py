"""Adapters that turn each source's wire format into the core's values.

SOURCES is the webhook door's registry: one entry per `/webhooks/<source>/…`, so the door names no source itself.
A JSON source's `parse` reads a body into one event; a CRM's `hints` reads a form body into the entities it
names, which the worker then fetches (connector.sources.crm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.core.model import SourceEvent
from connector.sources.amocrm import parse_hints as amocrm_hints
from connector.sources.bitrix24 import parse_hints as bitrix24_hints
from connector.sources.crm import Hint
from connector.sources.generic import parse_generic
from connector.sources.mapping import SourceMapping
from connector.sources.settings import GenericSource
from connector.sources.yclients import check_company, parse_record_webhook

if TYPE_CHECKING:
    from connector.tenants import Tenant

__all__ = ["SOURCES", "NotConfigured", "Source"]


class NotConfigured(LookupError):
    """The tenant does not take this source's webhooks (no `sources.<name>` block)."""


@dataclass(frozen=True)
class Source:
    # The decoded JSON body, the tenant it came for, and the compiled mappings by name (raises PayloadError).
    parse: Callable[[Any, Tenant, Mapping[str, SourceMapping]], SourceEvent | None] | None = None
    # A form body as nested JSON and the tenant → the entities it names (raises AuthError, PayloadError,
    # NotConfigured); set for a CRM, whose webhook is thin.
    hints: Callable[[Any, Tenant], list[Hint]] | None = None
    signed: bool = False  # the sender may sign with Standard Webhooks (the tenant's webhook_secret)
    token_in_url: bool = True  # the tenant's webhook token rides in the URL (Bitrix24 proves itself in its body)


def _yclients(body: Any, tenant: Tenant, mappings: Mapping[str, SourceMapping]) -> SourceEvent | None:
    check_company(body, tenant.yclients.company_ids if tenant.yclients else frozenset())
    return parse_record_webhook(body, default_tz=tenant.timezone)


def _generic(body: Any, tenant: Tenant, mappings: Mapping[str, SourceMapping]) -> SourceEvent | None:
    return parse_generic(body, mappings[(tenant.generic or GenericSource()).mapping], default_tz=tenant.timezone)


def _amocrm(body: Any, tenant: Tenant) -> list[Hint]:
    if tenant.amocrm is None:
        raise NotConfigured("this clinic takes no amoCRM webhooks (no sources.amocrm in its settings)")
    return amocrm_hints(body, tenant.amocrm)


def _bitrix24(body: Any, tenant: Tenant) -> list[Hint]:
    if tenant.bitrix24 is None:
        raise NotConfigured("this clinic takes no Bitrix24 webhooks (no sources.bitrix24 in its settings)")
    return bitrix24_hints(body, tenant.bitrix24)


SOURCES: Mapping[str, Source] = {
    "yclients": Source(_yclients),
    "generic": Source(_generic, signed=True),
    # amoCRM signs nothing: the URL carries the tenant's token, as YCLIENTS'.
    "amocrm": Source(hints=_amocrm),
    # Bitrix24 signs nothing and sets the URL once per handler: its body's application_token says who sent it.
    "bitrix24": Source(hints=_bitrix24, token_in_url=False),
}
