"""The generic source's mapping files: loaded and validated at start-up, so a typo fails the deploy.

A mapping is a YAML file (see mappings/generic.yaml) that names, for each `BookingFacts` field, the
JMESPath expression that finds it in the payload, plus small tables that translate the source's
words for the action, the state and the patient's sex into ours. Mappings are validated and
compiled once at start-up (`load_mapping`, `load_mappings`); `connector.sources.generic` then reads
payloads through them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
import phonenumbers
import yaml
from jmespath.exceptions import JMESPathError
from marshmallow import Schema, ValidationError, fields, validates_schema

from connector.core.model import BookingState, Sex

__all__ = [
    "MappingError",
    "SourceMapping",
    "compile_mapping",
    "load_mapping",
    "load_mappings",
    "table_key",
]

# What the `actions` table may map a source value to. "cancel" keeps the booking (an UPSERT) but in
# state CANCELLED, for sources that cancel without deleting and still send the full booking.
_ACTION_TARGETS = ("upsert", "delete", "cancel")

# Built-in tables; a mapping's own table adds to these and wins on conflicts.
_DEFAULT_ACTIONS = {target: target for target in _ACTION_TARGETS}
_DEFAULT_STATES = {state.value: state for state in BookingState}
_DEFAULT_SEXES = {
    "male": Sex.MALE,
    "female": Sex.FEMALE,
    "unknown": Sex.UNKNOWN,
    "m": Sex.MALE,
    "f": Sex.FEMALE,
    "м": Sex.MALE,
    "ж": Sex.FEMALE,
    "муж": Sex.MALE,
    "жен": Sex.FEMALE,
    "мужской": Sex.MALE,
    "женский": Sex.FEMALE,
}

_MAPPING_SUFFIXES = (".yaml", ".yml")


class MappingError(ValueError):
    """A mapping file is unreadable or invalid; `source` names the file, `key` the first bad key."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.key = key


@dataclass(frozen=True)
class SourceMapping:
    """A validated, compiled mapping. `expressions` is keyed by dotted field name ("patient.phone")."""

    name: str
    expressions: Mapping[str, Any]  # field -> compiled JMESPath expression
    actions: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_ACTIONS))
    states: Mapping[str, BookingState] = field(default_factory=lambda: dict(_DEFAULT_STATES))
    sexes: Mapping[str, Sex] = field(default_factory=lambda: dict(_DEFAULT_SEXES))
    phone_region: str = "RU"


# --- loading ---------------------------------------------------------------------------------------


# A file whose top-level `source:` names a CRM is read by that CRM's loader (imported when first needed: those
# modules import this one).
_CRM_LOADERS = {"amocrm": "connector.sources.amocrm_mapping:load_amocrm_mapping",
                "bitrix24": "connector.sources.bitrix24_mapping:load_bitrix24_mapping"}


def load_mapping(path: str | Path) -> Any:
    """Read, validate and compile one mapping file (a SourceMapping, or a CRM's own mapping when its `source:`
    says so); raises `MappingError` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(str(path), None, f"cannot read the mapping: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(str(path), None, f"not valid YAML: {exc}") from None
    kind = raw.get("source") if isinstance(raw, Mapping) else None
    if kind in _CRM_LOADERS:  # a CRM's mapping (mappings/amocrm.yaml): its own schema, its own loader
        module, _, function = _CRM_LOADERS[kind].partition(":")
        loader = getattr(importlib.import_module(module), function)
        return loader(raw, source=str(path), name=path.stem)  # type: ignore[no-any-return]
    return compile_mapping(raw, source=str(path), name=path.stem)


def load_mappings(directory: str | Path) -> dict[str, Any]:
    """Load every *.yaml / *.yml mapping in `directory`, keyed by file stem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MappingError(str(directory), None, "mapping directory does not exist")
    mappings: dict[str, Any] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in _MAPPING_SUFFIXES or not path.is_file():
            continue
        if path.stem in mappings:
            raise MappingError(
                str(path), None, f"a mapping named {path.stem!r} is already defined in this directory"
            )
        mappings[path.stem] = load_mapping(path)
    return mappings


def compile_mapping(raw: Any, *, source: str = "<mapping>", name: str = "mapping") -> SourceMapping:
    """Validate and compile an already-parsed mapping (the YAML's top-level object)."""
    if not isinstance(raw, Mapping):
        raise MappingError(
            source, None, f"the mapping must be a YAML object (key: value), got {type(raw).__name__}"
        )
    try:
        loaded = _MappingSchema().load(raw)
    except ValidationError as exc:
        problems = flatten_errors(exc.messages)
        key = problems[0][0]
        raise MappingError(
            source, key, "; ".join(f"{k}: {m}" if k != key else m for k, m in problems)
        ) from None

    expressions: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in ("patient", "doctor"):
            for inner, expression in value.items():
                if inner != "sexes":
                    expressions[f"{key}.{inner}"] = expression
        elif key not in ("actions", "states", "phone_region"):
            expressions[key] = value
    return SourceMapping(
        name=name,
        expressions=expressions,
        actions={**_DEFAULT_ACTIONS, **loaded.get("actions", {})},
        states={**_DEFAULT_STATES, **{k: BookingState(v) for k, v in loaded.get("states", {}).items()}},
        sexes={
            **_DEFAULT_SEXES,
            **{k: Sex(v) for k, v in loaded.get("patient", {}).get("sexes", {}).items()},
        },
        phone_region=loaded.get("phone_region", "RU").upper(),
    )


class _Expression(fields.String):
    """A JMESPath expression, compiled when the mapping loads so a typo fails at start-up."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.strip():
            raise ValidationError("empty JMESPath expression")
        try:
            return jmespath.compile(text)
        except JMESPathError as exc:
            raise ValidationError(f"invalid JMESPath expression {text!r}: {exc}") from None


class _Table(fields.Field):
    """A values table: source value -> one of `targets`. Keys are matched as lower-cased text."""

    def __init__(self, targets: tuple[str, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.targets = targets

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, Mapping):
            raise ValidationError("must be a table of source value: target")
        table: dict[str, str] = {}
        for source_value, target in value.items():
            if not isinstance(target, str) or target.strip().lower() not in self.targets:
                raise ValidationError(
                    f"{source_value!r} maps to {target!r}, which is not one of {', '.join(self.targets)}"
                )
            table[table_key(source_value)] = target.strip().lower()
        return table


class _PatientSchema(Schema):
    phone = _Expression()
    first_name = _Expression()
    last_name = _Expression()
    patronymic = _Expression()
    sex = _Expression()
    sexes = _Table(tuple(s.value for s in Sex))

    @validates_schema
    def _table_needs_expression(self, data, **kwargs):
        if "sexes" in data and "sex" not in data:
            raise ValidationError("a 'sexes' table needs a 'sex' expression", field_name="sexes")


class _DoctorSchema(Schema):
    name = _Expression()
    specialty = _Expression()


class _MappingSchema(Schema):
    # Unknown keys are rejected (marshmallow's default RAISE), which is what catches typos.
    external_id = _Expression(required=True)
    starts_at = _Expression(required=True)
    timezone = _Expression()
    version = _Expression()
    action = _Expression()
    actions = _Table(_ACTION_TARGETS)
    state = _Expression()
    states = _Table(tuple(s.value for s in BookingState))
    duration_minutes = _Expression()
    patient = fields.Nested(_PatientSchema)
    doctor = fields.Nested(_DoctorSchema)
    services = _Expression()
    preparation = _Expression()
    comment = _Expression()
    branch_id = _Expression()
    address = _Expression()
    phone_region = fields.String()

    @validates_schema
    def _check(self, data, **kwargs):
        if "actions" in data and "action" not in data:
            raise ValidationError("an 'actions' table needs an 'action' expression", field_name="actions")
        if "states" in data and "state" not in data:
            raise ValidationError("a 'states' table needs a 'state' expression", field_name="states")
        region = data.get("phone_region")
        if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValidationError(f"unknown phone region {region!r}", field_name="phone_region")


def flatten_errors(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error dict as sorted (dotted key, message) pairs."""
    if isinstance(messages, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, inner in messages.items():
            # "_schema" holds errors about the object itself: report them at the object's own key.
            pairs.extend(flatten_errors(inner, prefix if key == "_schema" else f"{prefix}{key}."))
        return sorted(pairs)
    if isinstance(messages, list):
        return [pair for item in messages for pair in flatten_errors(item, prefix)]
    return [(prefix.rstrip(".") or "<mapping>", str(messages).replace("Unknown field.", "unknown key"))]


def table_key(value: Any) -> str:
    """How table keys and source values are compared: as trimmed, lower-cased text (1 == "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()
