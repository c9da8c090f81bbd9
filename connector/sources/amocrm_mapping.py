"""The amoCRM mapping file (mappings/amocrm.yaml): which pipeline statuses are bookings of ours and in what
state, and which custom fields hold the visit. Validated at start-up, so a typo fails the deploy naming its key.

Every account numbers its own pipelines, statuses and custom fields, so a clinic copies the shipped file and
writes its own ids. A lead in a (pipeline, status) the file does not list is no booking of ours: the fetcher
returns None for it rather than guessing (a reminder for a lead still being negotiated would be a wrong message).
The issue's words for statuses map onto our states: booked and moved → active ("moved" is an active booking whose
time changed), cancelled → cancelled, attended and results ready → attended, no-show → no_show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from connector.core.model import BookingState
from connector.sources.mapping import MappingError, flatten_errors

__all__ = ["AmocrmMapping", "FieldRef", "load_amocrm_mapping", "whole"]

FieldRef = int | str  # a custom field by its id (801234) or its code ("PHONE")

# How a contact's name is read. first_last: its first_name / last_name (the full `name` as the first name when
# both are empty); fio: its full `name` written «Фамилия Имя Отчество», as Russian clinics usually write it.
NAME_STYLES = ("first_last", "fio")

# The status words of the file and the state each gives the booking.
STATUS_WORDS: Mapping[str, BookingState] = {
    "booked": BookingState.ACTIVE,
    "moved": BookingState.ACTIVE,
    "cancelled": BookingState.CANCELLED,
    "attended": BookingState.ATTENDED,
    "results_ready": BookingState.ATTENDED,
    "no_show": BookingState.NO_SHOW,
}


@dataclass(frozen=True)
class AmocrmMapping:
    """A validated amoCRM mapping. `statuses`: (pipeline id, status id) → state; anything else is not ours."""

    name: str
    statuses: Mapping[tuple[int, int], BookingState]
    starts_at: FieldRef
    doctor: FieldRef | None = None
    specialty: FieldRef | None = None
    service: FieldRef | None = None
    branch: FieldRef | None = None
    address: FieldRef | None = None
    comment: FieldRef | None = None
    duration_minutes: FieldRef | None = None
    phone: FieldRef = "PHONE"
    patronymic: FieldRef | None = None
    name_style: str = "first_last"  # `contact_fields.name`: how the contact's name is read (NAME_STYLES)
    phone_region: str = "RU"

    def state_of(self, pipeline_id: Any, status_id: Any) -> BookingState | None:
        pipeline, status = whole(pipeline_id), whole(status_id)
        if pipeline is None or status is None:
            return None
        return self.statuses.get((pipeline, status))


def load_amocrm_mapping(raw: Any, *, source: str, name: str) -> AmocrmMapping:
    """Validate one parsed mapping file (the YAML's top-level object); MappingError(source, key, problem)."""
    if not isinstance(raw, Mapping):
        raise MappingError(source, None, f"the mapping must be a YAML object (key: value), got {type(raw).__name__}")
    try:
        loaded = _MappingSchema().load(dict(raw))
    except ValidationError as error:
        problems = flatten_errors(error.messages)
        key = problems[0][0]
        raise MappingError(source, key, "; ".join(f"{k}: {m}" if k != key else m for k, m in problems)) from None
    lead, contact = loaded["lead_fields"], loaded.get("contact_fields", {})
    return AmocrmMapping(name=name, statuses=loaded["pipelines"], **lead, **contact,
                         phone_region=loaded.get("phone_region", "RU").upper())


class _Field(fields.Field):
    """A custom field: its id (a positive whole number) or its code (text such as PHONE)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FieldRef:
        number = whole(value)
        if number is not None and number > 0:
            return number
        if isinstance(value, str) and value.strip() and not value.strip().lstrip("-").isdigit():
            return value.strip()
        raise ValidationError(f"not a custom field id or code: {value!r}")


class _Pipelines(fields.Field):
    """{pipeline id: {status word: [status ids]}} → {(pipeline, status): state}; one word per status."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any):
        if not isinstance(value, Mapping) or not value:
            raise ValidationError("list at least one pipeline: {pipeline id: {booked: [status ids], …}}")
        table: dict[tuple[int, int], BookingState] = {}
        errors: dict[str, Any] = {}
        for pipeline_key, words in value.items():
            pipeline = whole(pipeline_key)
            if pipeline is None or pipeline <= 0:
                errors[str(pipeline_key)] = ["not a pipeline id (a positive whole number)"]
                continue
            problems = _pipeline(pipeline, words, table)
            if problems:
                errors[str(pipeline_key)] = problems
        if errors:
            raise ValidationError(errors)
        return table


def _pipeline(pipeline: int, words: Any, table: dict[tuple[int, int], BookingState]) -> dict[str, Any] | list[str]:
    if not isinstance(words, Mapping) or not words:
        return [f"write which statuses mean what: {', '.join(STATUS_WORDS)}"]
    problems: dict[str, Any] = {}
    seen: dict[int, str] = {}
    for word, ids in words.items():
        if word not in STATUS_WORDS:
            problems[str(word)] = [f"unknown key; one of {', '.join(STATUS_WORDS)}"]
            continue
        items = ids if isinstance(ids, list) else [ids]
        for item in items:
            status = whole(item)
            if status is None or status <= 0:
                problems[word] = [f"not a status id (a positive whole number): {item!r}"]
                break
            if status in seen:
                problems[word] = [f"status {status} is already listed under {seen[status]!r}"]
                break
            seen[status] = word
            table[(pipeline, status)] = STATUS_WORDS[word]
    return problems


class _LeadFields(Schema):
    class Meta:
        unknown = RAISE

    starts_at = _Field(required=True)
    doctor = _Field()
    specialty = _Field()
    service = _Field()
    branch = _Field()
    address = _Field()
    comment = _Field()
    duration_minutes = _Field()


class _ContactFields(Schema):
    class Meta:
        unknown = RAISE

    phone = _Field()
    patronymic = _Field()
    name = fields.Str(validate=validate.OneOf(NAME_STYLES), attribute="name_style")


class _MappingSchema(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key must fail the deploy, not silently drop a field

    source = fields.Str(required=True, validate=validate.Equal("amocrm", error="must be amocrm in an amoCRM mapping"))
    pipelines = _Pipelines(required=True)
    lead_fields = fields.Nested(_LeadFields, required=True)
    contact_fields = fields.Nested(_ContactFields)
    phone_region = fields.Str(validate=lambda region: region.upper() in phonenumbers.SUPPORTED_REGIONS
                              or _fail(f"unknown phone region {region!r}"))


def _fail(message: str) -> bool:
    raise ValidationError(message)


def whole(value: Any) -> int | None:
    """A whole number from an int or decimal text (YAML keys, form values and amoCRM's ids are either); None for
    anything else, bools and text of 19 digits or more (no amoCRM id or time is that long) included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and len(text) < 19:
        return int(text)
    return None
