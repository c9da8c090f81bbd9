"""amoCRM's wire formats as our values (pure): a webhook body as Hints, a fetched lead and contact as a SourceEvent.

The webhook is thin and in the old API v2 shape (shared/docs/crm.md §1.1): `leads[add|update|status|delete][N]`
with partial fields, batched, signed by nothing. So the door only learns which leads changed and whose account
posted (`account[subdomain]`, checked against the tenant's: the URL's token says which tenant, the body must
agree), and the worker re-reads each lead through the API (connector.sources.amocrm_fetch). What the lead now is
comes from `lead_event`, with the lead's own `updated_at` as the version, so late or reordered hooks do no harm.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, SourceEvent
from connector.core.phones import normalise_phone
from connector.sources.amocrm_mapping import AmocrmMapping, FieldRef, whole
from connector.sources.amocrm_settings import AmocrmSource
from connector.sources.crm import Hint, newest
from connector.sources.errors import PayloadError
from connector.sources.limits import BRANCH_LENGTH, check_duration, check_id, check_moment, fit_facts, scalar_text
from connector.sources.signatures import AuthError
from connector.transport.wire import dig

__all__ = ["CHANGES", "main_contact_id", "lead_event", "parse_hints"]

CHANGES = ("add", "update", "status", "restore")  # lead hooks that mean "read it again"
DELETES = ("delete",)
CONTACT_CHANGES = ("add", "update")  # a contact's phone or name changed: its leads are read again, with it
# Other lead hooks (a note added — our own write-back among them —, a responsible user changed) say nothing
# about the visit: they give no hint.


def parse_hints(body: Mapping[str, Any], settings: AmocrmSource) -> list[Hint]:
    """One Hint per lead the body names, in the order first named; `deleted` for a lead deleted (and not
    restored) in this batch. A contact added or changed names its linked leads (`linked_leads_id`): they are
    read again, so a new phone reaches the bookings before their next message. AuthError when the body is
    another account's; PayloadError when it is malformed; [] for a hook about no lead (companies, tasks, a
    contact with no lead)."""
    if not isinstance(body, Mapping):
        raise PayloadError("the webhook body is not a form", field="body")
    _check_account(body, settings)
    order: list[str] = []
    deleted: set[str] = set()
    restored: set[str] = set()
    for action, index, item in _events(body, "leads", (*CHANGES, *DELETES)):
        lead_id = _lead_id(item.get("id"), f"leads[{action}][{index}][id]")
        if lead_id not in order:
            order.append(lead_id)
        if action in DELETES:
            deleted.add(lead_id)
        elif action == "restore":
            restored.add(lead_id)
    for action, index, item in _events(body, "contacts", CONTACT_CHANGES):
        for lead_id in _linked_leads(item.get("linked_leads_id"), f"contacts[{action}][{index}][linked_leads_id]"):
            if lead_id not in order:
                order.append(lead_id)
    return [Hint(lead_id, deleted=lead_id in deleted and lead_id not in restored) for lead_id in order]


def _events(body: Mapping[str, Any], entity: str, actions: tuple[str, ...]
            ) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(action, index, item) of every `entity[action][index]` in the body, actions in the order given."""
    group = body.get(entity)
    if group is None:
        return []
    if not isinstance(group, Mapping):
        raise PayloadError(f"`{entity}` is not a group of events", field=entity)
    return [(action, index, item) for action in actions for index, item in _items(group.get(action), entity, action)]


def _linked_leads(linked: Any, field: str) -> list[str]:
    """A contact's `linked_leads_id[<id>][ID]=<id>` as lead ids, the newest of them (crm.newest)."""
    if linked is None:
        return []
    if isinstance(linked, Mapping):
        raws = [entry.get("ID", key) if isinstance(entry, Mapping) else entry for key, entry in linked.items()]
    elif isinstance(linked, list):
        raws = [entry.get("ID") if isinstance(entry, Mapping) else entry for entry in linked]
    else:
        raise PayloadError(f"`{field}` is not a list of leads", field=field)
    return newest(int(_lead_id(raw, f"{field}[{index}]")) for index, raw in enumerate(raws))


def _check_account(body: Mapping[str, Any], settings: AmocrmSource) -> None:
    account = body.get("account")
    subdomain = account.get("subdomain") if isinstance(account, Mapping) else None
    if not isinstance(subdomain, str) or not subdomain.strip():
        raise AuthError("the body names no amoCRM account (account[subdomain])")
    if subdomain.strip().lower() != settings.subdomain:
        raise AuthError("the body is from another amoCRM account than this tenant's")


def _items(group: Any, entity: str, action: str) -> list[tuple[str, Mapping[str, Any]]]:
    if group is None:
        return []
    if isinstance(group, list):
        pairs = [(str(index), item) for index, item in enumerate(group)]
    elif isinstance(group, Mapping):
        pairs = [(str(key), item) for key, item in group.items()]
    else:
        raise PayloadError(f"`{entity}[{action}]` is not a list", field=f"{entity}[{action}]")
    for index, item in pairs:
        if not isinstance(item, Mapping):
            raise PayloadError(f"`{entity}[{action}][{index}]` is not an entity", field=f"{entity}[{action}][{index}]")
    return pairs


def _lead_id(raw: Any, field: str) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    if not (text.isascii() and text.isdigit() and 0 < len(text) <= 18 and int(text) > 0):
        raise PayloadError(f"`{field}` is not a lead id", field=field)
    return str(int(text))


# --- the fetched lead -------------------------------------------------------------------------------------------


def main_contact_id(lead: Mapping[str, Any]) -> str | None:
    """The lead's main contact (`is_main`), else its first; None when it has none."""
    contacts = dig(lead, "_embedded", "contacts")
    if not isinstance(contacts, list):
        return None
    linked = [c for c in contacts if isinstance(c, Mapping) and whole(c.get("id")) is not None]
    chosen = next((c for c in linked if c.get("is_main") is True), linked[0] if linked else None)
    return str(whole(chosen["id"])) if chosen else None


def lead_event(lead: Mapping[str, Any], contact: Mapping[str, Any] | None, mapping: AmocrmMapping,
               default_tz: str) -> SourceEvent | None:
    """The lead as our event: DELETE when amoCRM marks it deleted; None when its (pipeline, status) is not in
    the mapping; else an UPSERT of its facts, versioned by its `updated_at`. PayloadError naming the field."""
    lead_id = whole(lead.get("id"))
    if lead_id is None or lead_id <= 0:
        raise PayloadError("the lead has no numeric id", field="id")
    external_id = str(lead_id)
    version = _version(lead)
    if lead.get("is_deleted") is True:
        return SourceEvent(EventAction.DELETE, external_id, version, None)
    state = mapping.state_of(lead.get("pipeline_id"), lead.get("status_id"))
    if state is None:
        return None
    fields = _Fields(lead, "lead")
    raw_start = fields.value(mapping.starts_at)
    if raw_start is None:
        if state is BookingState.CANCELLED:  # closed as lost with the time cleared: still the end of the visit
            return SourceEvent(EventAction.DELETE, external_id, version, None)
        raise PayloadError(f"the lead has no visit time in field {mapping.starts_at}", field="starts_at")
    zone = ZoneInfo(default_tz)
    branch_value = fields.value(mapping.branch)
    facts = BookingFacts(
        external_id=external_id,
        starts_at=_moment(raw_start, "starts_at", zone),
        state=state,
        duration=_duration(fields.value(mapping.duration_minutes)),
        patient=_patient(contact, mapping),
        doctor_name=scalar_text(fields.value(mapping.doctor)),
        doctor_specialty=scalar_text(fields.value(mapping.specialty)),
        services=tuple(t for t in (scalar_text(v) for v in fields.values(mapping.service)) if t),
        comment=scalar_text(fields.value(mapping.comment)),
        branch_id=_branch_id(fields.enum(mapping.branch), branch_value),
        address=scalar_text(fields.value(mapping.address) if mapping.address is not None else branch_value),
    )
    return SourceEvent(EventAction.UPSERT, external_id, version, fit_facts(facts))


def _version(lead: Mapping[str, Any]) -> datetime:
    seconds = whole(lead.get("updated_at"))
    if seconds is None:
        raise PayloadError("the lead has no updated_at (Unix seconds)", field="updated_at")
    return _from_unix(seconds, "updated_at")


def _patient(contact: Mapping[str, Any] | None, mapping: AmocrmMapping) -> Patient:
    if contact is None:
        return Patient()
    fields = _Fields(contact, "contact")
    first, last, patronymic = _names(contact, mapping.name_style)
    contact_id = whole(contact.get("id"))
    return Patient(
        phone=normalise_phone(scalar_text(fields.value(mapping.phone)), mapping.phone_region),
        first_name=first,
        last_name=last,
        patronymic=scalar_text(fields.value(mapping.patronymic)) or patronymic,
        external_id=str(contact_id) if contact_id is not None else None,
    )


def _names(contact: Mapping[str, Any], style: str) -> tuple[str | None, str | None, str | None]:
    """(first, last, patronymic) of the contact as the mapping's `name` style reads them."""
    full = scalar_text(contact.get("name"))
    if style == "fio" and full is not None:
        parts = full.split()
        if len(parts) >= 3:
            return parts[1], parts[0], " ".join(parts[2:])
        if len(parts) == 2:
            return parts[1], parts[0], None
        return full, None, None
    first, last = scalar_text(contact.get("first_name")), scalar_text(contact.get("last_name"))
    if first is None and last is None:
        return full, None, None  # only the full name was written: greet by it as it stands
    return first, last, None


class _Fields:
    """The `custom_fields_values` of a v4 entity, found by field id or code (amoCRM sends null for none)."""

    def __init__(self, entity: Mapping[str, Any], what: str):
        raw = entity.get("custom_fields_values")
        self._fields = [f for f in raw if isinstance(f, Mapping)] if isinstance(raw, list) else []
        self._what = what

    def _entries(self, ref: FieldRef | None) -> list[Mapping[str, Any]]:
        if ref is None:
            return []
        for field in self._fields:
            if (field.get("field_id") == ref) if isinstance(ref, int) else (field.get("field_code") == ref):
                values = field.get("values")
                return [v for v in values if isinstance(v, Mapping)] if isinstance(values, list) else []
        return []

    def values(self, ref: FieldRef | None) -> list[Any]:
        return [entry.get("value") for entry in self._entries(ref) if entry.get("value") not in (None, "")]

    def value(self, ref: FieldRef | None) -> Any:
        values = self.values(ref)
        return values[0] if values else None

    def enum(self, ref: FieldRef | None) -> int | None:
        entries = self._entries(ref)
        return whole(entries[0].get("enum_id")) if entries else None


def _moment(raw: Any, field: str, zone: ZoneInfo) -> datetime:
    """A date-time field: Unix seconds (what the API gives), as a number or digits; RFC 3339 text defensively
    (without an offset it is read in the clinic's zone)."""
    seconds = whole(raw) if not isinstance(raw, float) else (int(raw) if raw.is_integer() else None)
    if seconds is not None:
        return _from_unix(seconds, field)
    if isinstance(raw, str) and raw.strip():
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            raise PayloadError(f"{field}: {raw[:40]!r} is neither Unix seconds nor an RFC 3339 time",
                               field=field) from None
        return check_moment(moment if moment.tzinfo else moment.replace(tzinfo=zone), field)
    raise PayloadError(f"{field}: {raw!r} is not a time", field=field)


def _from_unix(seconds: int, field: str) -> datetime:
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        raise PayloadError(f"{field}: {seconds} is not a Unix time", field=field) from None
    return check_moment(moment, field)


def _duration(raw: Any) -> timedelta | None:
    if raw is None:
        return None
    try:
        minutes = float(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError, OverflowError):
        minutes = None
    if minutes is None or minutes < 0:
        raise PayloadError(f"duration_minutes: {raw!r} is not a number of minutes", field="duration_minutes")
    return check_duration(minutes * 60, "duration_minutes")


def _branch_id(enum_id: int | None, value: Any) -> str | None:
    """A list field's option id keys the branch (its text may be long and may be edited); else the text."""
    if enum_id is not None:
        return str(enum_id)
    return check_id(scalar_text(value), "branch", BRANCH_LENGTH)


