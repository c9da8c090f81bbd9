"""The generic JSON source: a webhook body read through a compiled mapping.

Any JSON booking payload is turned into a `SourceEvent` by the JMESPath expressions and value tables
of a mapping loaded and validated at start-up (see `connector.sources.mapping`); `parse_generic` is a
pure function of the payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jmespath.exceptions import JMESPathError

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, Sex, SourceEvent
from connector.core.phones import normalise_phone
from connector.sources.errors import PayloadError
from connector.sources.limits import (
    BRANCH_LENGTH,
    check_duration,
    check_id,
    check_moment,
    check_zone_name,
    fit_facts,
)
from connector.sources.mapping import (
    MappingError,
    SourceMapping,
    compile_mapping,
    load_mapping,
    load_mappings,
    table_key,
)

# The mapping names are re-exported: callers import them from here as well as from `mapping`.
__all__ = [
    "MappingError",
    "SourceMapping",
    "compile_mapping",
    "load_mapping",
    "load_mappings",
    "parse_generic",
]

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
    external_id = _external_id(reader)
    source_zone = _source_zone(reader)
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


def _external_id(reader: _Reader) -> str:
    external_id = check_id(_id(reader.get("external_id"), "external_id", reader), "external_id")
    if external_id is None:
        raise reader.missing("external_id")
    return external_id


def _source_zone(reader: _Reader) -> str | None:
    """The payload's own `timezone`, when it names one: a known IANA zone or a PayloadError."""
    source_zone = reader.text("timezone")
    if source_zone is not None:
        try:
            ZoneInfo(check_zone_name(source_zone))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise PayloadError(
                f"timezone {source_zone!r} is not a known IANA zone", field="timezone"
            ) from None
    return source_zone


def _action(reader: _Reader, mapping: SourceMapping) -> str:
    if "action" not in mapping.expressions:
        return "upsert"
    raw = reader.get("action")
    if not _present(raw):
        raise reader.missing("action")
    target = mapping.actions.get(table_key(raw))
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
    return fit_facts(BookingFacts(
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
        branch_id=check_id(_id(reader.get("branch_id"), "branch_id", reader), "branch_id", BRANCH_LENGTH),
        address=reader.text("address"),
    ))


def _state(reader: _Reader, mapping: SourceMapping) -> BookingState:
    raw = reader.get("state")
    if not _present(raw):
        return BookingState.ACTIVE
    state = mapping.states.get(table_key(raw))
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
    return mapping.sexes.get(table_key(raw), Sex.UNKNOWN)


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
    except (TypeError, ValueError, OverflowError):
        minutes = None
    if minutes is None or minutes < 0:
        raise reader.invalid("duration_minutes", raw, "a non-negative number of minutes")
    return check_duration(minutes * 60, "duration_minutes")


def _time(raw: Any, key: str, zone: ZoneInfo) -> datetime:
    if not isinstance(raw, str):
        raise PayloadError(f"{key}: expected an ISO 8601 date-time string, got {raw!r}", field=key)
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise PayloadError(f"{key}: {raw[:80]!r} is not an ISO 8601 date-time", field=key) from None
    return check_moment(moment if moment.tzinfo is not None else moment.replace(tzinfo=zone), key)


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


def _present(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, str) and not raw.strip())
