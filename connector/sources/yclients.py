"""YCLIENTS record webhooks turned into `SourceEvent`s.

See shared/docs/yclients.md §1.4 for the fields and §5 for why parsing is lenient: booleans arrive as
true/1/"0", ids as ints or strings, `custom_fields` as {} or [], `client` as null, and change times
with offsets written "+0300". Pure functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, Sex, SourceEvent
from connector.core.notice_line import without_notice
from connector.core.phones import normalise_phone
from connector.sources.errors import PayloadError
from connector.sources.limits import BRANCH_LENGTH, check_duration, check_id, check_moment, fit_facts, scalar_text

__all__ = ["check_company", "parse_record_webhook"]

_STATUSES = frozenset({"create", "update", "delete"})

# attendance is the record's status ([APIB] 5369): 2 confirmed and 0 waiting are both still to come.
_ATTENDANCE = {
    -1: BookingState.NO_SHOW,
    0: BookingState.ACTIVE,
    1: BookingState.ATTENDED,
    2: BookingState.ACTIVE,
}

# YCLIENTS writes `sex` as 1 male / 2 female / 0 unknown; older client endpoints wrote words and kept the
# number in `sex_id`. Anything else is UNKNOWN: a wrong guess would put the wrong grammatical form into
# a message, no guess only a neutral one.
_SEX = {
    "1": Sex.MALE,
    "2": Sex.FEMALE,
    "male": Sex.MALE,
    "female": Sex.FEMALE,
    "m": Sex.MALE,
    "f": Sex.FEMALE,
    "м": Sex.MALE,
    "ж": Sex.FEMALE,
    "мужской": Sex.MALE,
    "женский": Sex.FEMALE,
}

_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no", ""})


def parse_record_webhook(body: Mapping[str, Any], default_tz: str | None = None) -> SourceEvent | None:
    """Parse one YCLIENTS webhook body; None when it is about something other than a record.

    `default_tz` (a zoneinfo name, the company's zone) is only used to read naive local times: the
    `date` when the record has no `datetime` with an offset, and a `last_change_date` without one
    (which, with no `default_tz`, gives version None). Raises `PayloadError` when the envelope is
    malformed, a create/update record has no usable start time, or a field we read has a value of
    the wrong kind (e.g. `deleted: "maybe"`).

    A delete (status "delete", or `deleted` true on an update) keeps whatever facts `data` still
    carries, with state CANCELLED; when `data` lacks a usable start time the facts are None. Only
    the id of a delete is to be trusted (§1.4: the completeness of delete payloads is unconfirmed).
    """
    if not _is_record(body):
        return None
    status = _status(body)
    data = _data(body, status)
    external_id = _external_id(data=data, body=body)
    version = _version(data.get("last_change_date"), default_tz)
    deleted = status == "delete" or _flag(data.get("deleted"), "deleted")

    if not deleted:
        facts = _facts(data, external_id, body, default_tz, BookingState.ACTIVE)
        return SourceEvent(EventAction.UPSERT, external_id, version, facts)
    return SourceEvent(EventAction.DELETE, external_id, version, _deleted_facts(data, external_id, body, default_tz))


def _is_record(body: Mapping[str, Any]) -> bool:
    """Whether a well-formed envelope is about a record; PayloadError when it is not an envelope at all."""
    if not isinstance(body, Mapping):
        raise PayloadError(f"webhook body must be a JSON object, got {type(body).__name__}", field="body")
    for key in ("resource", "status", "data"):
        if key not in body:
            raise PayloadError(f"webhook body has no {key!r}", field=key)
    resource = body["resource"]
    if not isinstance(resource, str):
        raise PayloadError(f"'resource' must be a string, got {resource!r}", field="resource")
    return resource.strip() == "record"


def _status(body: Mapping[str, Any]) -> str:
    status = body["status"]
    status = status.strip().lower() if isinstance(status, str) else None
    if status not in _STATUSES:
        raise PayloadError(
            f"'status' must be one of create, update, delete; got {body['status']!r}", field="status"
        )
    return status


def _data(body: Mapping[str, Any], status: str) -> Mapping[str, Any]:
    data = body["data"]
    if data is None and status == "delete":
        data = {}  # tolerated for deletes: the envelope's resource_id is enough
    if not isinstance(data, Mapping):
        raise PayloadError(f"'data' must be an object, got {type(data).__name__}", field="data")
    return data


def _external_id(*, data: Mapping[str, Any], body: Mapping[str, Any]) -> str:
    """The record's own id, else the envelope's resource_id."""
    external_id = check_id(_id(data.get("id")), "id")
    if external_id is None:
        external_id = check_id(_id(body.get("resource_id")), "resource_id")
    if external_id is None:
        raise PayloadError("record has neither 'data.id' nor 'resource_id'", field="id")
    return external_id


def _deleted_facts(data: Mapping[str, Any], external_id: str, body: Mapping[str, Any],
                   default_tz: str | None) -> BookingFacts | None:
    try:
        return _facts(data, external_id, body, default_tz, BookingState.CANCELLED)
    except PayloadError:
        # Nothing but the id of a delete is relied upon, so a thin or odd `data` is not an error.
        return None


def check_company(body: Any, company_ids: frozenset[str]) -> None:
    """A clinic network may route several YCLIENTS branches to one tenant; a body from any other is misrouted.

    Nothing to check when the tenant names no branch, or the body names none (the parser judges the body).
    """
    if not company_ids or not isinstance(body, Mapping) or "company_id" not in body:
        return
    if str(body["company_id"]) not in company_ids:
        raise PayloadError(f"company_id {str(body['company_id'])[:80]} is not one of this tenant's branches",
                           field="company_id")


def _facts(
    data: Mapping[str, Any],
    external_id: str,
    body: Mapping[str, Any],
    default_tz: str | None,
    state: BookingState,
) -> BookingFacts:
    starts_at = _starts_at(data, default_tz)
    if state is BookingState.ACTIVE:
        state = _state(data.get("attendance"))
    staff = _object(data.get("staff"), "staff")
    position = _object(staff.get("position"), "staff.position")
    company_id = _id(data.get("company_id"))
    if company_id is None:
        company_id = _id(body.get("company_id"))
    check_id(company_id, "company_id", BRANCH_LENGTH)
    return fit_facts(BookingFacts(
        external_id=external_id,
        starts_at=starts_at,
        state=state,
        timezone=None,  # the company's offset is in starts_at; its zone name needs GET /company
        duration=_duration(data),
        patient=_patient(data.get("client")),
        doctor_name=scalar_text(staff.get("name")),
        doctor_specialty=scalar_text(staff.get("specialization")) or scalar_text(position.get("title")),
        services=_services(data.get("services")),
        # YCLIENTS has no preparation field; `comment` is the administrator's text and may say anything. Our own
        # write-back line is not part of it: the webhook our write causes must read as nothing changed.
        preparation=None,
        comment=scalar_text(_without_ours(data.get("comment"))),
        branch_id=company_id,
        address=None,
    ))


def _starts_at(data: Mapping[str, Any], default_tz: str | None) -> datetime:
    # `datetime` carries the company's offset and is authoritative; `date` is the same moment, naive.
    raw = data.get("datetime")
    if _present(raw):
        moment = _parse_time(raw, "datetime")
        if moment.tzinfo is not None:
            return moment
        if default_tz:
            return check_moment(moment.replace(tzinfo=ZoneInfo(default_tz)), "datetime")
        raise PayloadError(
            f"'datetime' {raw!r} has no UTC offset and no default timezone was given", field="datetime"
        )
    raw = data.get("date")
    if _present(raw):
        if not default_tz:
            raise PayloadError(
                "record has no 'datetime'; its naive 'date' cannot be read without a default timezone",
                field="datetime",
            )
        moment = _parse_time(raw, "date")
        if moment.tzinfo is None:
            moment = check_moment(moment.replace(tzinfo=ZoneInfo(default_tz)), "date")
        return moment
    raise PayloadError("record has no start time ('datetime' or 'date')", field="datetime")


def _version(raw: Any, default_tz: str | None) -> datetime | None:
    if not _present(raw):
        return None
    moment = _parse_time(raw, "last_change_date")
    if moment.tzinfo is None:
        # A naive change time cannot be ordered against aware ones unless we know the zone.
        return check_moment(moment.replace(tzinfo=ZoneInfo(default_tz)), "last_change_date") if default_tz else None
    return moment


def _parse_time(raw: Any, field: str) -> datetime:
    if not isinstance(raw, str):
        raise PayloadError(f"{field!r} must be a date-time string, got {raw!r}", field=field)
    try:
        # 3.11's fromisoformat also reads "+0300" offsets and a space instead of "T".
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise PayloadError(f"{field!r} is not an ISO 8601 date-time: {raw[:80]!r}", field=field) from None
    return check_moment(moment, field)


def _state(raw: Any) -> BookingState:
    if not _present(raw):
        return BookingState.ACTIVE
    value = _int(raw, "attendance")
    # An attendance code we do not know leaves the booking active: reminders go on as before.
    return _ATTENDANCE.get(value, BookingState.ACTIVE)


def _patient(raw: Any) -> Patient:
    client = _object(raw, "client")
    if not client:
        return Patient()
    # The name is kept as given: a `name` (or `display_name`) holding "Фамилия Имя Отчество" is not split,
    # because the order of the parts differs between clinics and a wrong split reads worse than none.
    first_name = scalar_text(client.get("name")) or scalar_text(client.get("display_name"))
    return Patient(
        phone=normalise_phone(client.get("phone")),
        first_name=first_name,
        last_name=scalar_text(client.get("surname")),
        patronymic=scalar_text(client.get("patronymic")),
        sex=_sex(client),
        external_id=_id(client.get("id")),
    )


def _sex(client: Mapping[str, Any]) -> Sex:
    for key in ("sex", "sex_id"):
        raw = client.get(key)
        if isinstance(raw, bool) or raw is None:
            continue
        sex = _SEX.get(str(raw).strip().lower())
        if sex is not None:
            return sex
    return Sex.UNKNOWN


def _services(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list):
        return ()
    titles = (scalar_text(item.get("title")) for item in raw if isinstance(item, Mapping))
    return tuple(title for title in titles if title)


def _duration(data: Mapping[str, Any]) -> timedelta | None:
    for key in ("seance_length", "length"):
        raw = data.get(key)
        if not _present(raw):
            continue
        duration = check_duration(_int(raw, key), key)
        if duration is not None:
            return duration
    return None


def _object(raw: Any, field: str) -> Mapping[str, Any]:
    """An object field that may be null, absent or (PHP's empty array) []."""
    if raw is None or raw == [] or raw == "":
        return {}
    if not isinstance(raw, Mapping):
        raise PayloadError(f"{field!r} must be an object or null, got {type(raw).__name__}", field=field)
    return raw


def _id(raw: Any) -> str | None:
    """An id that may be an int or a string; None when absent, empty or zero-like junk."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    return None


def _int(raw: Any, field: str) -> int:
    if isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise PayloadError(f"{field!r} must be an integer, got {raw!r}", field=field)


def _flag(raw: Any, field: str) -> bool:
    """A boolean written as true/false, 0/1, "0"/"1" or "true"/"false"; absent or null is false."""
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    if isinstance(raw, int | float):
        if raw in (0, 1):
            return bool(raw)
    elif isinstance(raw, str):
        text = raw.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    # Guessing here could delete a live booking or keep a deleted one; better to fail loudly.
    raise PayloadError(f"{field!r} must be a boolean, got {raw!r}", field=field)


def _without_ours(raw: Any) -> Any:
    return without_notice(raw) if isinstance(raw, str) else raw


def _present(raw: Any) -> bool:
    return raw is not None and not (isinstance(raw, str) and not raw.strip())
