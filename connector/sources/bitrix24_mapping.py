"""A Bitrix24 mapping file (`source: bitrix24`, see mappings/bitrix24.yaml): which deals are bookings, in which
state, and where each fact lives. Validated and compiled at start-up, so a typo fails the deploy.

Which deals: a deal's `stageId` looked up in `stage_ids`, else its `stageSemanticId` (P in progress, S success,
F failure) in `stage_semantics`, optionally only in the pipelines (`categoryId`) of `categories`. A deal neither
table names is no booking of ours. Where the facts live: JMESPath expressions over the deal as crm.item.get gives
it (`deal:`; user fields as written, UF_CRM_…) and over the contact as crm.contact.get gives it (`contact:`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from connector.core.model import BookingState
from connector.sources.mapping import MappingError, _Expression, flatten_errors

__all__ = ["Bitrix24Mapping", "load_bitrix24_mapping"]

SOURCE = "bitrix24"
SEMANTICS = ("P", "S", "F")  # in progress, success, failure (crm.item's stageSemanticId)
_STATES = tuple(state.value for state in BookingState)


@dataclass(frozen=True)
class Bitrix24Mapping:
    name: str
    stage_ids: Mapping[str, BookingState] = field(default_factory=dict)
    stage_semantics: Mapping[str, BookingState] = field(default_factory=dict)
    categories: frozenset[str] | None = None  # None: every pipeline
    deal: Mapping[str, Any] = field(default_factory=dict)  # fact -> compiled JMESPath over the deal
    contact: Mapping[str, Any] = field(default_factory=dict)  # patient fact -> compiled JMESPath over the contact
    booking_module: bool = False  # read the booking module's bookings (ONBOOKING*) as bookings too
    phone_region: str = "RU"

    def state_of(self, deal: Mapping[str, Any]) -> BookingState | None:
        """The booking state a deal is in, or None when it is no booking of ours."""
        if self.categories is not None and _text(deal.get("categoryId")) not in self.categories:
            return None
        stage = _text(deal.get("stageId"))
        if stage is not None and stage in self.stage_ids:
            return self.stage_ids[stage]
        semantic = _text(deal.get("stageSemanticId"))
        return self.stage_semantics.get(semantic.upper()) if semantic is not None else None

    def reads(self, code: str) -> bool:
        """Whether any deal expression names the field `code` (the write-back field must not be read)."""
        return any(code in _field_names(expression.parsed) for expression in self.deal.values())


def load_bitrix24_mapping(raw: Any, *, source: str, name: str) -> Bitrix24Mapping:
    """Validate and compile a parsed mapping file; MappingError(source, key, problem) names the first bad key."""
    if not isinstance(raw, Mapping):
        raise MappingError(source, None, f"the mapping must be a YAML object (key: value), got {type(raw).__name__}")
    try:
        loaded = _MappingSchema().load(dict(raw))
    except ValidationError as error:
        problems = flatten_errors(error.messages)
        key = problems[0][0]
        raise MappingError(source, key, "; ".join(f"{k}: {m}" if k != key else m for k, m in problems)) from None
    categories = loaded.get("categories")
    return Bitrix24Mapping(
        name=name,
        stage_ids={key: BookingState(value) for key, value in loaded.get("stage_ids", {}).items()},
        stage_semantics={key.upper(): BookingState(value) for key, value in loaded.get("stage_semantics", {}).items()},
        categories=None if categories is None else frozenset(categories),
        deal=loaded["deal"],
        contact=loaded.get("contact", {}),
        booking_module=loaded.get("booking_module", False),
        phone_region=loaded.get("phone_region", "RU").upper(),
    )


def check_writeback_field(mapping: Bitrix24Mapping, code: str | None, *, source: str) -> None:
    """Refuse, at start-up, a mapping that reads the field the write-back writes: its echo (ONCRMDEALUPDATE) would
    then bring changed facts and plan again. MappingError naming the deal key that reads it."""
    if code is None:
        return
    for key, expression in mapping.deal.items():
        if code in _field_names(expression.parsed):
            raise MappingError(source, f"deal.{key}", f"reads {code}, the field writeback.bitrix24.field writes")


def _field_names(node: Any) -> Iterator[str]:
    """Every field name a compiled JMESPath expression's tree mentions."""
    if isinstance(node, Mapping):
        if node.get("type") == "field" and isinstance(node.get("value"), str):
            yield node["value"]
        for child in node.get("children", ()):
            yield from _field_names(child)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


class _States(fields.Field):
    """A table of source value -> booking state (active | cancelled | attended | no_show)."""

    def __init__(self, keys: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys = keys

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise ValidationError("must be a table of stage: state")
        table: dict[str, str] = {}
        for key, target in value.items():
            text = _text(key)
            if text is None:
                raise ValidationError(f"{key!r} is not a stage")
            if self.keys is not None and text.upper() not in self.keys:
                raise ValidationError(f"{key!r} is not a stage semantic; write one of {', '.join(self.keys)}")
            if not isinstance(target, str) or target.strip().lower() not in _STATES:
                raise ValidationError(f"{key!r} maps to {target!r}, which is not one of {', '.join(_STATES)}")
            table[text] = target.strip().lower()
        return table


class _Categories(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        ids = []
        for item in items:
            text = _text(item)
            if text is None or not (text.isascii() and text.isdigit()):
                raise ValidationError(f"{item!r} is not a pipeline id (categoryId: 0, 1, 2…)")
            ids.append(str(int(text)))
        if not ids:
            raise ValidationError("write at least one pipeline id, or leave the key out for every pipeline")
        return ids


class _DealSchema(Schema):
    class Meta:
        unknown = RAISE

    starts_at = _Expression(required=True)
    timezone = _Expression()
    duration_minutes = _Expression()
    doctor = _Expression()
    specialty = _Expression()
    services = _Expression()
    branch_id = _Expression()
    address = _Expression()
    comment = _Expression()
    preparation = _Expression()


class _ContactSchema(Schema):
    class Meta:
        unknown = RAISE

    phone = _Expression()
    first_name = _Expression()
    last_name = _Expression()
    patronymic = _Expression()


class _MappingSchema(Schema):
    class Meta:
        unknown = RAISE

    source = fields.Str(required=True, validate=validate.Equal(SOURCE, error="must be bitrix24 in this file"))
    categories = _Categories()
    stage_ids = _States()
    stage_semantics = _States(SEMANTICS)
    deal = fields.Nested(_DealSchema, required=True)
    contact = fields.Nested(_ContactSchema)
    booking_module = fields.Bool()
    phone_region = fields.Str()

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("stage_ids") and not data.get("stage_semantics"):
            raise ValidationError("name the stages that are bookings (stage_semantics and/or stage_ids)",
                                  field_name="stage_semantics")
        region = data.get("phone_region")
        if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(f"unknown phone region {region!r}", field_name="phone_region")
