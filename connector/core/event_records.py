"""A parsed source event as plain JSON and back: what the web process stores beside the raw body, so that the
worker's intake applies it without parsing again (a replay parses the raw body anew instead)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, Sex, SourceEvent

# Bumped when the shape changes; an event stored in another shape is parsed again from its raw body.
SHAPE = 1


def to_record(event: SourceEvent, *, confirm_new: bool = True) -> dict[str, Any]:
    """`confirm_new=False`: a booking seen first through this event gets no confirmation (the sync found it)."""
    return {"shape": SHAPE, "action": event.action.value, "external_id": event.external_id,
            "version": _iso(event.version), "confirm_new": confirm_new,
            "facts": None if event.facts is None else _facts_record(event.facts)}


def from_record(record: dict[str, Any]) -> tuple[SourceEvent, bool]:
    """The event and its `confirm_new`; KeyError or ValueError when the record is not of this shape."""
    if record.get("shape") != SHAPE:
        raise ValueError(f"stored event of shape {record.get('shape')!r}, not {SHAPE}")
    facts = record["facts"]
    event = SourceEvent(EventAction(record["action"]), record["external_id"], _time(record["version"]),
                        None if facts is None else _facts(facts))
    return event, bool(record["confirm_new"])


def _facts_record(facts: BookingFacts) -> dict[str, Any]:
    person = facts.patient
    return {
        "external_id": facts.external_id, "starts_at": facts.starts_at.isoformat(), "state": facts.state.value,
        "timezone": facts.timezone,
        "duration_s": None if facts.duration is None else facts.duration.total_seconds(),
        "patient": {"phone": person.phone, "first_name": person.first_name, "last_name": person.last_name,
                    "patronymic": person.patronymic, "sex": person.sex.value, "external_id": person.external_id},
        "doctor_name": facts.doctor_name, "doctor_specialty": facts.doctor_specialty,
        "services": list(facts.services), "preparation": facts.preparation, "comment": facts.comment,
        "branch_id": facts.branch_id, "address": facts.address,
    }


def _facts(record: dict[str, Any]) -> BookingFacts:
    person = record["patient"]
    duration = record["duration_s"]
    starts_at = _time(record["starts_at"])
    if starts_at is None:
        raise ValueError("a stored booking without its start time")
    return BookingFacts(
        external_id=record["external_id"], starts_at=starts_at, state=BookingState(record["state"]),
        timezone=record["timezone"], duration=None if duration is None else timedelta(seconds=duration),
        patient=Patient(phone=person["phone"], first_name=person["first_name"], last_name=person["last_name"],
                        patronymic=person["patronymic"], sex=Sex(person["sex"]), external_id=person["external_id"]),
        doctor_name=record["doctor_name"], doctor_specialty=record["doctor_specialty"],
        services=tuple(record["services"]), preparation=record["preparation"], comment=record["comment"],
        branch_id=record["branch_id"], address=record["address"])


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
