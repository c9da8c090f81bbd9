"""Sample visits, a fixed clock and a tidiness check shared by the phrase, template and text tests."""

from __future__ import annotations

import re
from datetime import datetime

from connector.core.model import BookingFacts, Patient, Sex

MSK = "Europe/Moscow"
# Wednesday 2 December 2026, noon in Moscow: a fixed clock for every test.
NOW = datetime.fromisoformat("2026-12-02T12:00:00+03:00")

IVAN = Patient(first_name="Иван", patronymic="Петрович", last_name="Иванов", sex=Sex.MALE)


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def facts(starts_at: str = "2026-12-03T10:00:00+03:00", **kw: object) -> BookingFacts:
    return BookingFacts(external_id="b-1", starts_at=at(starts_at), **kw)  # type: ignore[arg-type]


FULL = facts(
    patient=IVAN,
    doctor_name="Иванов Сергей Петрович",
    doctor_specialty="кардиолог",
    services=("Приём кардиолога первичный",),
    preparation="За 4 часа до приёма не есть и не пить.",
    address="ул. Лесная, д. 5",
)
BARE = facts()


def assert_tidy(text: str) -> None:
    assert text == text.strip()
    assert "  " not in text
    assert not re.search(r" [,.!?:)]", text), text
    assert ".." not in text
    assert "None" not in text


CLINIC = "Клиника «Здоровье»"
