"""The settings of the doors in (`sources:` of a tenant), typed at start-up. amoCRM's and Bitrix24's blocks are
typed by their adapters' own schemas (connector.sources.amocrm_settings, bitrix24_settings).

`sources.yclients` names the branches routed to the tenant and, with API credentials, turns on the safety-net
sync; `sources.generic` names the mapping that reads the tenant's JSON. A typo here must fail `check` and
`release` with its key path, not a webhook or a sync pass at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from connector.channels.settings import TimeoutSetting
from connector.core.durations import parse_duration
from connector.sources.amocrm_settings import AmocrmSchema
from connector.sources.bitrix24_settings import Bitrix24Schema


@dataclass(frozen=True)
class YclientsSource:
    """`sources.yclients`: the branches routed to this tenant, and the REST credentials of the safety-net sync."""

    company_ids: frozenset[str] = frozenset()  # canonical decimal ids; empty: any branch is accepted
    partner_token: str | None = None  # with it, the worker reads back what webhooks missed
    user_token: str | None = None
    base_url: str | None = None
    timeout: Any = None  # seconds or [connect, read], kept as written: the REST client reads it itself
    backfill: timedelta = timedelta(days=1)  # how far the first sync pass reads back

    def client_settings(self) -> dict[str, Any]:
        """The REST client's own settings (connector.sources.yclients_api.YclientsApi checks them)."""
        values = {"partner_token": self.partner_token, "user_token": self.user_token,
                  "base_url": self.base_url, "timeout": self.timeout}
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class GenericSource:
    """`sources.generic`: which file of mappings/ reads this tenant's JSON."""

    mapping: str = "generic"


class _CompanyIds(fields.Field):
    """One YCLIENTS company id or a list of them (a clinic network routes several branches to one tenant),
    unpacked once, here, into canonical decimal text: 512345 and "512345" are the same branch."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> frozenset[str]:
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValidationError("write at least one company id")
        return frozenset(_company_id(item) for item in items)


def _company_id(value: Any) -> str:
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ValidationError(f"not a YCLIENTS company id: {value!r} (write a positive whole number, or a list)")
    return str(int(text))


class DurationSetting(fields.Field):
    """An ISO 8601 duration of the tenants file (P1D, PT2H), as a timedelta."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        try:
            return parse_duration(value)
        except (ValueError, AttributeError) as error:
            raise ValidationError(str(error)) from error


class _YclientsSchema(Schema):
    class Meta:
        unknown = RAISE  # "compnay_id" must fail the deploy, not silently route every branch here

    company_id = _CompanyIds(data_key="company_id", attribute="company_ids")
    partner_token = fields.Str(allow_none=True)
    user_token = fields.Str(allow_none=True)
    base_url = fields.Str(allow_none=True)
    timeout = TimeoutSetting(allow_none=True)
    backfill = DurationSetting()

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> YclientsSource:
        return YclientsSource(**data)


class _GenericSchema(Schema):
    class Meta:
        unknown = RAISE

    mapping = fields.Str(validate=validate.Length(min=1))

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> GenericSource:
        return GenericSource(**data)


class _SourcesSchema(Schema):
    class Meta:
        unknown = RAISE

    yclients = fields.Nested(_YclientsSchema)
    generic = fields.Nested(_GenericSchema)
    amocrm = fields.Nested(AmocrmSchema)
    bitrix24 = fields.Nested(Bitrix24Schema)


class SourceBlocks(fields.Field):
    """`sources:` of a tenant: checked here by key path, kept as written; the Tenant types it (typed_sources)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("write source name: {settings}")
        _SourcesSchema().load(value)
        return value


def typed_sources(blocks: Mapping[str, Any]) -> dict[str, Any]:
    """The typed source blocks by name (`yclients`, `generic`, `amocrm`, `bitrix24`; absent ones are not keys);
    ValueError naming the key."""
    try:
        return dict(_SourcesSchema().load(dict(blocks)))
    except ValidationError as error:
        raise ValueError("; ".join(named_errors(error.messages, "sources"))) from error


def named_errors(messages: Any, trail: str) -> list[str]:
    if isinstance(messages, dict):
        return [line for key, value in messages.items() for line in named_errors(value, f"{trail}.{key}")]
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{trail}: {' '.join(messages)}"]
    return [f"{trail}: {messages}"]
