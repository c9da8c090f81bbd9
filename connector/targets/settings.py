"""The tenant's `writeback:` block, typed at start-up: where the outbox reports, and what.

    writeback:
      yclients: {custom_field: notify_status, comment: true}   # a record field (by its code) and/or our comment line
      amocrm: {note: true, field_id: 123456}
      bitrix24: {comment: true, field: UF_CRM_NOTIFY}
      generic: {url: https://clinic.example/hooks/notify, secret: ${CLINIC_HOOK_SECRET}}
      report: [final]            # or [final, steps]

A typo fails `check` and `release` with its key path. No block: no write-back rows at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from connector.core.writeback import FINAL, STEPS
from connector.sources.amocrm_settings import AmocrmWriteback, AmocrmWritebackSchema
from connector.sources.bitrix24_settings import Bitrix24Writeback, Bitrix24WritebackSchema
from connector.sources.settings import named_errors

__all__ = ["TARGETS", "AmocrmWriteback", "Bitrix24Writeback", "GenericWriteback", "WritebackBlock",
           "WritebackSettings", "YclientsWriteback", "typed_writeback"]

TARGETS = ("yclients", "amocrm", "bitrix24", "generic")


@dataclass(frozen=True)
class YclientsWriteback:
    custom_field: str | None = None  # the record custom field's code
    comment: bool = False  # our one line in the record's comment


@dataclass(frozen=True)
class GenericWriteback:
    url: str
    # Standard Webhooks: whsec_<base64> or plain text; an ${ENV} reference in the tenants file; never in a repr
    secret: str = field(repr=False)


@dataclass(frozen=True)
class WritebackSettings:
    yclients: YclientsWriteback | None = None
    amocrm: AmocrmWriteback | None = None
    bitrix24: Bitrix24Writeback | None = None
    generic: GenericWriteback | None = None
    report: tuple[str, ...] = (FINAL,)

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets this tenant reports to, in one fixed order."""
        return tuple(name for name in TARGETS if getattr(self, name) is not None)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _YclientsSchema(_Strict):
    custom_field = fields.Str(load_default=None, allow_none=True, validate=validate.Length(min=1, max=64))
    comment = fields.Bool(load_default=False)

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("custom_field") and not data.get("comment"):
            raise ValidationError("write custom_field: <code>, comment: true, or both")

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> YclientsWriteback:
        return YclientsWriteback(**data)


class _GenericSchema(_Strict):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    secret = fields.Str(required=True, validate=validate.Length(min=16))

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> GenericWriteback:
        return GenericWriteback(**data)


class _WritebackSchema(_Strict):
    yclients = fields.Nested(_YclientsSchema)
    amocrm = fields.Nested(AmocrmWritebackSchema)  # connector.sources.amocrm_settings
    bitrix24 = fields.Nested(Bitrix24WritebackSchema)  # connector.sources.bitrix24_settings
    generic = fields.Nested(_GenericSchema)
    report = fields.List(fields.Str(validate=validate.OneOf((FINAL, STEPS))), load_default=[FINAL],
                         validate=validate.ContainsOnly((FINAL, STEPS)))

    @validates_schema
    def _final_first(self, data: dict[str, Any], **kwargs: Any) -> None:
        if FINAL not in data.get("report", [FINAL]):
            raise ValidationError("write [final] or [final, steps]: the outcome is always reported", "report")

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> WritebackSettings:
        return WritebackSettings(**{**data, "report": tuple(dict.fromkeys(data["report"]))})


class WritebackBlock(fields.Field):
    """`writeback:` of a tenant: checked here by key path, kept as written; the Tenant types it."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("write target name: {settings}, and report: [final]")
        _WritebackSchema().load(value)
        return value


def typed_writeback(block: Mapping[str, Any] | None) -> WritebackSettings | None:
    """The typed block (None: no block, so no write-back); ValueError naming the key path."""
    if block is None:
        return None
    try:
        return _WritebackSchema().load(dict(block))
    except ValidationError as error:
        raise ValueError("; ".join(named_errors(error.messages, "writeback"))) from error
