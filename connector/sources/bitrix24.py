"""Bitrix24 as a source: its outgoing webhook read into `Hint`s, and a fetched deal (or booking-module booking)
mapped to a `SourceEvent`. Pure functions; the REST calls are in bitrix24_api, the Fetcher in bitrix24_fetch.

The outgoing webhook is thin (shared/docs/crm.md §2.1): a form body with `event`, `data[FIELDS][ID]` (the booking
module: `data[ID]`), `ts` and `auth[...]`; it proves itself only by `auth[application_token]`. Deals are keyed by
their id; the booking module's bookings by `booking-<id>`, so the two never collide in one tenant's ledger.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jmespath.exceptions import JMESPathError

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, SourceEvent
from connector.core.phones import normalise_phone
from connector.sources.bitrix24_mapping import Bitrix24Mapping
from connector.sources.crm import Hint
from connector.sources.errors import PayloadError
from connector.sources.limits import BRANCH_LENGTH, check_duration, check_id, check_moment, check_zone_name, fit_facts
from connector.sources.signatures import AuthError
from connector.transport.wire import dig

__all__ = ["BOOKING_PREFIX", "CONTACT_PREFIX", "booking_id", "contact_id", "deal_id", "map_booking", "map_deal",
           "parse_hints"]

DEAL_CHANGED = frozenset({"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALMOVETOCATEGORY"})
DEAL_DELETED = "ONCRMDEALDELETE"
BOOKING_CHANGED = frozenset({"ONBOOKINGADD", "ONBOOKINGUPDATE"})
BOOKING_DELETED = "ONBOOKINGDELETE"
BOOKING_PREFIX = "booking-"
CONTACT_CHANGED = frozenset({"ONCRMCONTACTADD", "ONCRMCONTACTUPDATE"})
CONTACT_PREFIX = "contact-"  # a hint that names a contact: its deals are read again (Bitrix24Fetcher.related)
_MAX_ID_DIGITS = 18  # Bitrix24 ids are database integers; more digits is no id


# --- the webhook ------------------------------------------------------------------------------------------------


def parse_hints(body: Mapping[str, Any], settings: Any) -> list[Hint]:
    """The hints of one outgoing-webhook body (nested by connector.sources.brackets.parse_form).

    AuthError when `auth[application_token]` is absent or not the tenant's (`settings.application_token`);
    PayloadError for a body with no event or no usable id; [] for an event we do not book from (leads…).
    """
    if not isinstance(body, Mapping):
        raise PayloadError(f"the body must be a form, got {type(body).__name__}", field="body")
    _authenticate(body, settings.application_token)
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise PayloadError("the body names no event", field="event")
    name = event.strip().upper()
    if name in DEAL_CHANGED or name == DEAL_DELETED:
        return [Hint(_id(dig(body, "data", "FIELDS", "ID"), "data[FIELDS][ID]"), deleted=name == DEAL_DELETED)]
    if name in BOOKING_CHANGED or name == BOOKING_DELETED:
        raw, field = dig(body, "data", "ID"), "data[ID]"
        if raw is None and dig(body, "data", "FIELDS", "ID") is not None:  # documented: data[ID]; read this too
            raw, field = dig(body, "data", "FIELDS", "ID"), "data[FIELDS][ID]"
        return [Hint(BOOKING_PREFIX + _id(raw, field), deleted=name == BOOKING_DELETED)]
    if name in CONTACT_CHANGED:  # a new phone or name changes no deal: the contact's deals are read again
        return [Hint(CONTACT_PREFIX + _id(dig(body, "data", "FIELDS", "ID"), "data[FIELDS][ID]"))]
    return []


def _authenticate(body: Mapping[str, Any], expected: str) -> None:
    given = dig(body, "auth", "application_token")
    if not isinstance(given, str) or not given:
        raise AuthError("bitrix24: the body has no auth[application_token]")
    if not expected or not hmac.compare_digest(given.encode(), str(expected).encode()):
        raise AuthError("bitrix24: auth[application_token] is not this tenant's")


def _id(raw: Any, field: str) -> str:
    text = raw.strip() if isinstance(raw, str) else None
    if not text or not (text.isascii() and text.isdigit()) or len(text) > _MAX_ID_DIGITS or int(text) <= 0:
        raise PayloadError(f"{field} is not an id: {str(raw)[:40]!r}", field=field)
    return str(int(text))


def booking_id(external_id: str) -> str | None:
    """The booking module's id in a `booking-<id>` external id; None for a deal's."""
    return external_id[len(BOOKING_PREFIX):] if external_id.startswith(BOOKING_PREFIX) else None


def contact_id(external_id: str) -> str | None:
    """The contact's id in a `contact-<id>` hint; None for any other."""
    return external_id[len(CONTACT_PREFIX):] if external_id.startswith(CONTACT_PREFIX) else None


def deal_id(external_id: str) -> str:
    """A deal's external id as the API takes it (digits); PayloadError for anything else."""
    return _id(external_id, "external_id")


# --- a fetched deal ---------------------------------------------------------------------------------------------


def map_deal(deal: Mapping[str, Any], contact: Mapping[str, Any] | None, mapping: Bitrix24Mapping,
             default_tz: str) -> SourceEvent | None:
    """A deal read by crm.item.get (`result.item`) and its contact (crm.contact.get `result`, or None) as an upsert.

    None when the deal is no booking of ours: a stage or pipeline the mapping does not name, or no visit time yet
    (a deal is often created before its time is filled in). The version is the deal's `updatedTime`, in UTC.
    PayloadError names the mapping key (`deal.starts_at`) or the deal's field (`updatedTime`) at fault.
    """
    state = mapping.state_of(deal)
    if state is None:
        return None
    zone_name = _zone_name(_evaluate(mapping, "deal", "timezone", deal))
    zone = ZoneInfo(zone_name or default_tz)
    raw_start = _evaluate(mapping, "deal", "starts_at", deal)
    if not _present(raw_start):
        return None
    external_id = _id(str(deal.get("id", "")), "id")
    text = _Texts(mapping, deal)
    facts = BookingFacts(
        external_id=external_id,
        starts_at=_moment(raw_start, "deal.starts_at", zone),
        state=state,
        timezone=zone_name,
        duration=_duration(_evaluate(mapping, "deal", "duration_minutes", deal)),
        patient=_patient(contact, mapping),
        doctor_name=text.get("doctor"),
        doctor_specialty=text.get("specialty"),
        services=_services(_evaluate(mapping, "deal", "services", deal)),
        preparation=text.get("preparation"),
        comment=text.get("comment"),
        branch_id=check_id(text.get("branch_id"), "deal.branch_id", BRANCH_LENGTH),
        address=text.get("address"),
    )
    return SourceEvent(EventAction.UPSERT, external_id, _version(deal.get("updatedTime")), fit_facts(facts))


# --- a fetched booking of the booking module --------------------------------------------------------------------


def map_booking(booking: Mapping[str, Any], contact: Mapping[str, Any] | None, mapping: Bitrix24Mapping,
                default_tz: str) -> SourceEvent | None:
    """A booking read by booking.v1.booking.get (`result.booking`) and its client's contact as an active upsert.

    None when the mapping does not read the booking module. The booking says its own IANA zone; it has no change
    time, so the event has no version (the intake applies it in arrival order). PayloadError names the field.
    """
    if not mapping.booking_module:
        return None
    external_id = BOOKING_PREFIX + _id(str(booking.get("id", "")), "id")
    start = dig(booking, "datePeriod", "from")
    zone_name = _zone_name(dig(start, "timezone"), "datePeriod.from.timezone")
    begins = _unix(dig(start, "timestamp"), "datePeriod.from.timestamp")
    ends_raw = dig(booking, "datePeriod", "to", "timestamp")
    ends = _unix(ends_raw, "datePeriod.to.timestamp") if ends_raw is not None else None
    duration = check_duration((ends - begins).total_seconds(), "datePeriod") if ends is not None else None
    facts = BookingFacts(
        external_id=external_id,
        starts_at=begins.astimezone(ZoneInfo(zone_name or default_tz)),
        state=BookingState.ACTIVE,
        timezone=zone_name,
        duration=duration,
        patient=_patient(contact, mapping),
    )
    return SourceEvent(EventAction.UPSERT, external_id, None, fit_facts(facts))


# --- reading values ---------------------------------------------------------------------------------------------


def _evaluate(mapping: Bitrix24Mapping, part: str, key: str, entity: Mapping[str, Any] | None) -> Any:
    expression = (mapping.deal if part == "deal" else mapping.contact).get(key)
    if expression is None or entity is None:
        return None
    try:
        return expression.search(entity)
    except JMESPathError as error:
        raise PayloadError(f"{part}.{key}: expression {expression.expression!r} failed: {error}",
                           field=f"{part}.{key}") from None


class _Texts:
    def __init__(self, mapping: Bitrix24Mapping, deal: Mapping[str, Any]) -> None:
        self.mapping, self.deal = mapping, deal

    def get(self, key: str) -> str | None:
        return _text(_evaluate(self.mapping, "deal", key, self.deal), f"deal.{key}")


def _text(raw: Any, field: str) -> str | None:
    """A fact as text: a string, a number, or a multiple field's list joined with ", "."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        return raw.strip() or None
    if isinstance(raw, int | float):
        return str(int(raw)) if isinstance(raw, float) and raw.is_integer() else str(raw)
    if isinstance(raw, list):
        parts = [_text(item, field) for item in raw]
        return ", ".join(part for part in parts if part) or None
    raise PayloadError(f"{field}: expected text, got {type(raw).__name__}", field=field)


def _services(raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    return tuple(text for text in (_text(item, "deal.services") for item in items) if text)


def _patient(contact: Mapping[str, Any] | None, mapping: Bitrix24Mapping) -> Patient:
    if contact is None:
        return Patient()

    def text(key: str) -> str | None:
        return _text(_evaluate(mapping, "contact", key, contact), f"contact.{key}")

    return Patient(
        phone=normalise_phone(_evaluate(mapping, "contact", "phone", contact), mapping.phone_region),
        first_name=text("first_name"),
        last_name=text("last_name"),
        patronymic=text("patronymic"),
        external_id=_text(contact.get("ID"), "contact.ID"),
    )


def _moment(raw: Any, field: str, zone: ZoneInfo) -> datetime:
    """An ISO 8601 date-time (Bitrix24 writes `2026-12-03T10:00:00+03:00`); naive ones are read in `zone`."""
    text = raw.strip() if isinstance(raw, str) else None
    if text is None:
        raise PayloadError(f"{field}: expected an ISO 8601 date-time, got {type(raw).__name__}", field=field)
    if len(text) <= 10:  # "2026-12-03": a date field, with no hour to remind at
        raise PayloadError(f"{field}: {text[:40]!r} is a date without a time: use a date-time field", field=field)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{field}: {text[:40]!r} is not an ISO 8601 date-time", field=field) from None
    return check_moment(moment if moment.tzinfo else moment.replace(tzinfo=zone), field)


def _version(raw: Any) -> datetime | None:
    if not _present(raw):
        return None
    moment = _moment(raw, "updatedTime", ZoneInfo("UTC"))
    return moment.astimezone(UTC)


def _unix(raw: Any, field: str) -> datetime:
    try:
        seconds = float(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise PayloadError(f"{field}: expected Unix seconds, got {str(raw)[:40]!r}", field=field)
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{field}: {seconds!r} is not a moment", field=field) from None
    return check_moment(moment, field)


def _zone_name(raw: Any, field: str = "deal.timezone") -> str | None:
    if not _present(raw):
        return None
    name = check_zone_name(str(raw).strip(), field)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise PayloadError(f"{field}: {name!r} is not a known IANA zone", field=field) from None
    return name


def _duration(raw: Any) -> timedelta | None:
    if not _present(raw):
        return None
    try:
        minutes = float(raw) if not isinstance(raw, bool) else -1.0
    except (TypeError, ValueError, OverflowError):
        minutes = -1.0
    if not minutes >= 0:
        raise PayloadError(f"deal.duration_minutes: {str(raw)[:40]!r} is not a number of minutes",
                           field="deal.duration_minutes")
    return check_duration(minutes * 60, "deal.duration_minutes")


def _present(raw: Any) -> bool:
    return raw is not None and raw is not False and not (isinstance(raw, str | list) and not raw) and not (
        isinstance(raw, str) and not raw.strip())
