"""Any JSON booking payload turned into a `SourceEvent` through a declarative JMESPath mapping.

A mapping is a YAML file (see mappings/generic.yaml) that names, for each `BookingFacts` field, the
JMESPath expression that finds it in the payload, plus small tables that translate the source's
words for the action, the state and the patient's sex into ours. Mappings are validated and
compiled once at start-up (`load_mapping`, `load_mappings`); `parse_generic` is then a pure
function of the payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jmespath
import phonenumbers
import yaml
from jmespath.exceptions import JMESPathError
from marshmallow import Schema, ValidationError, fields, validates_schema

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, Sex, SourceEvent
from connector.core.phones import normalise_phone
from connector.sources.errors import PayloadError

__all__ = [
    "MappingError",
    "SourceMapping",
    "compile_mapping",
    "load_mapping",
    "load_mappings",
    "parse_generic",
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


def load_mapping(path: str | Path) -> SourceMapping:
    """Read, validate and compile one mapping file; raises `MappingError` naming the file and key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(str(path), None, f"cannot read the mapping: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(str(path), None, f"not valid YAML: {exc}") from None
    return compile_mapping(raw, source=str(path), name=path.stem)


def load_mappings(directory: str | Path) -> dict[str, SourceMapping]:
    """Load every *.yaml / *.yml mapping in `directory`, keyed by file stem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MappingError(str(directory), None, "mapping directory does not exist")
    mappings: dict[str, SourceMapping] = {}
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
        problems = _flatten(exc.messages)
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
            table[_key(source_value)] = target.strip().lower()
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


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """marshmallow's nested error dict as sorted (dotted key, message) pairs."""
    if isinstance(messages, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, inner in messages.items():
            # "_schema" holds errors about the object itself: report them at the object's own key.
            pairs.extend(_flatten(inner, prefix if key == "_schema" else f"{prefix}{key}."))
        return sorted(pairs)
    if isinstance(messages, list):
        return [pair for item in messages for pair in _flatten(item, prefix)]
    return [(prefix.rstrip(".") or "<mapping>", str(messages).replace("Unknown field.", "unknown key"))]


# --- parsing ---------------------------------------------------------------------------------------


def parse_generic(
    body: Mapping[str, Any], mapping: SourceMapping | Mapping[str, Any], default_tz: str
) -> SourceEvent:
    """Turn one payload into a `SourceEvent` as `mapping` describes; raises `PayloadError` naming the field.

    `mapping` is normally what `load_mapping` returned; a plain dict is compiled on the spot. Start and
    change times without an offset are read in the payload's `timezone`, else in `default_tz`. A delete
    keeps whatever facts the payload has (state CANCELLED), or None when it has no usable start time.
    """
    if not isinstance(mapping, SourceMapping):
        mapping = compile_mapping(mapping)
    if not isinstance(body, Mapping):
        raise PayloadError(f"payload must be a JSON object, got {type(body).__name__}", field="body")

    reader = _Reader(body, mapping)
    action = _action(reader, mapping)
    external_id = _id(reader.get("external_id"), "external_id", reader)
    if external_id is None:
        raise reader.missing("external_id")

    source_zone = reader.text("timezone")
    if source_zone is not None:
        try:
            ZoneInfo(source_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PayloadError(
                f"timezone {source_zone!r} is not a known IANA zone", field="timezone"
            ) from None
    zone = ZoneInfo(source_zone or default_tz)

    raw_version = reader.get("version")
    version = _time(raw_version, "version", zone) if _present(raw_version) else None

    if action == "delete":
        try:
            facts = _facts(reader, mapping, external_id, source_zone, zone, BookingState.CANCELLED)
        except PayloadError:
            # Only the id of a delete is relied upon; thin or odd details are not an error.
            facts = None
        return SourceEvent(EventAction.DELETE, external_id, version, facts)

    forced = BookingState.CANCELLED if action == "cancel" else None
    facts = _facts(reader, mapping, external_id, source_zone, zone, forced)
    return SourceEvent(EventAction.UPSERT, external_id, version, facts)


class _Reader:
    """Evaluates the mapping's expressions against one payload and words the errors."""

    def __init__(self, body: Mapping[str, Any], mapping: SourceMapping) -> None:
        self.body = body
        self.mapping = mapping

    def get(self, key: str) -> Any:
        expression = self.mapping.expressions.get(key)
        if expression is None:
            return None
        try:
            return expression.search(self.body)
        except JMESPathError as exc:
            raise PayloadError(
                f"{key}: expression {expression.expression!r} failed: {exc}", field=key
            ) from None

    def text(self, key: str) -> str | None:
        raw = self.get(key)
        if raw is None:
            return None
        if isinstance(raw, str):
            return raw.strip() or None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
        raise self.invalid(key, raw, "text")

    def missing(self, key: str) -> PayloadError:
        expression = self.mapping.expressions.get(key)
        where = f"expression {expression.expression!r} found nothing" if expression else "not mapped"
        return PayloadError(f"{key}: {where} in the payload", field=key)

    def invalid(self, key: str, raw: Any, expected: str) -> PayloadError:
        expression = self.mapping.expressions[key]
        return PayloadError(
            f"{key}: expression {expression.expression!r} gave {raw!r}, expected {expected}", field=key
        )


def _action(reader: _Reader, mapping: SourceMapping) -> str:
    if "action" not in mapping.expressions:
        return "upsert"
    raw = reader.get("action")
    if not _present(raw):
        raise reader.missing("action")
    target = mapping.actions.get(_key(raw))
    if target is None:
        raise PayloadError(f"action: value {raw!r} is not in the mapping's 'actions' table", field="action")
    return target


def _facts(
    reader: _Reader,
    mapping: SourceMapping,
    external_id: str,
    source_zone: str | None,
    zone: ZoneInfo,
    forced_state: BookingState | None,
) -> BookingFacts:
    raw_start = reader.get("starts_at")
    if not _present(raw_start):
        raise reader.missing("starts_at")
    return BookingFacts(
        external_id=external_id,
        starts_at=_time(raw_start, "starts_at", zone),
        state=forced_state or _state(reader, mapping),
        timezone=source_zone,
        duration=_duration(reader),
        patient=Patient(
            phone=normalise_phone(reader.text("patient.phone"), mapping.phone_region),
            first_name=reader.text("patient.first_name"),
            last_name=reader.text("patient.last_name"),
            patronymic=reader.text("patient.patronymic"),
            sex=_sex(reader, mapping),
            external_id=None,
        ),
        doctor_name=reader.text("doctor.name"),
        doctor_specialty=reader.text("doctor.specialty"),
        services=_services(reader),
        preparation=reader.text("preparation"),
        comment=reader.text("comment"),
        branch_id=_id(reader.get("branch_id"), "branch_id", reader),
        address=reader.text("address"),
    )


def _state(reader: _Reader, mapping: SourceMapping) -> BookingState:
    raw = reader.get("state")
    if not _present(raw):
        return BookingState.ACTIVE
    state = mapping.states.get(_key(raw))
    if state is None:
        # Raising rather than assuming "active": a new source state might mean "cancelled", and
        # reminding a patient about a cancelled visit is worse than a visible error.
        raise PayloadError(f"state: value {raw!r} is not in the mapping's 'states' table", field="state")
    return state


def _sex(reader: _Reader, mapping: SourceMapping) -> Sex:
    raw = reader.get("patient.sex")
    if not _present(raw) or isinstance(raw, list | dict):
        return Sex.UNKNOWN
    # Unknown words give UNKNOWN: the sex only picks a grammatical form, a neutral one is safe.
    return mapping.sexes.get(_key(raw), Sex.UNKNOWN)


def _services(reader: _Reader) -> tuple[str, ...]:
    raw = reader.get("services")
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    titles: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            if item.strip():
                titles.append(item.strip())
        elif isinstance(item, int | float) and not isinstance(item, bool):
            titles.append(str(item))
        else:
            raise reader.invalid("services", raw, "a string or a list of strings")
    return tuple(titles)


def _duration(reader: _Reader) -> timedelta | None:
    raw = reader.get("duration_minutes")
    if not _present(raw):
        return None
    try:
        minutes = float(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        minutes = None
    if minutes is None or minutes < 0:
        raise reader.invalid("duration_minutes", raw, "a non-negative number of minutes")
    return timedelta(minutes=minutes) if minutes else None


def _time(raw: Any, key: str, zone: ZoneInfo) -> datetime:
    if not isinstance(raw, str):
        raise PayloadError(f"{key}: expected an ISO 8601 date-time string, got {raw!r}", field=key)
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise PayloadError(f"{key}: {raw!r} is not an ISO 8601 date-time", field=key) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _id(raw: Any, key: str, reader: _Reader) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    raise reader.invalid(key, raw, "a string or integer id")


def _key(value: Any) -> str:
    """How table keys and source values are compared: as trimmed, lower-cased text (1 == "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _present(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, str) and not raw.strip())
