"""The Russian phrases: greetings and the date phrase in the visit's zone, relative to a fixed `now`."""

from __future__ import annotations

import pytest

from connector.core.model import JobKind, Patient, Sex
from connector.core.phrases import greeting, when_phrase
from connector.core.templates import build_context
from connector.core.texts import render_message
from tests.unit.sample_visits import BARE, IVAN, MSK, NOW, at, facts

# --- greeting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patient", "expected"),
    [
        (IVAN, "Уважаемый Иван Петрович"),
        (Patient(first_name="Иван", sex=Sex.MALE), "Уважаемый Иван"),
        (Patient(first_name="Елена", patronymic="Сергеевна", sex=Sex.FEMALE), "Уважаемая Елена Сергеевна"),
        (Patient(first_name="Елена", last_name="Смирнова", sex=Sex.FEMALE), "Уважаемая Елена"),
        (Patient(first_name="Иван", patronymic="Петрович", sex=Sex.UNKNOWN), "Здравствуйте, Иван Петрович"),
        (Patient(first_name="Саша", sex=Sex.UNKNOWN), "Здравствуйте, Саша"),
        (Patient(sex=Sex.MALE), "Здравствуйте"),
        (Patient(sex=Sex.FEMALE, last_name="Смирнова"), "Здравствуйте"),
        (Patient(patronymic="Петрович", last_name="Иванов", sex=Sex.MALE), "Здравствуйте"),
        (Patient(), "Здравствуйте"),
        (Patient(first_name="  ", sex=Sex.MALE), "Здравствуйте"),
        (Patient(first_name="ИВАН", patronymic="петрович", sex=Sex.MALE), "Уважаемый Иван Петрович"),
    ],
)
def test_greeting(patient: Patient, expected: str) -> None:
    assert greeting(patient) == expected


@pytest.mark.parametrize("sex", list(Sex))
def test_greeting_never_uses_the_surname(sex: Sex) -> None:
    patient = Patient(first_name="Анна", patronymic="Павловна", last_name="Каренина", sex=sex)
    assert "Каренина" not in greeting(patient)
    assert "Каренина" not in render_message(JobKind.REMINDER, facts(patient=patient), now=NOW, tz=MSK)


# --- the date phrase ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts_at", "expected"),
    [
        ("2026-12-02T18:30:00+03:00", "сегодня, 2 декабря, в 18:30"),
        ("2026-12-03T10:00:00+03:00", "завтра, 3 декабря, в 10:00"),
        # 2 December 2026 is a Wednesday, so the next days past tomorrow walk through the week.
        ("2026-12-04T10:00:00+03:00", "в пятницу, 4 декабря, в 10:00"),
        ("2026-12-05T10:00:00+03:00", "в субботу, 5 декабря, в 10:00"),
        ("2026-12-06T10:00:00+03:00", "в воскресенье, 6 декабря, в 10:00"),
        ("2026-12-07T10:00:00+03:00", "в понедельник, 7 декабря, в 10:00"),
        ("2026-12-08T10:00:00+03:00", "во вторник, 8 декабря, в 10:00"),
        ("2026-12-09T10:00:00+03:00", "в среду, 9 декабря, в 10:00"),
        ("2026-12-10T10:00:00+03:00", "в четверг, 10 декабря, в 10:00"),
        ("2026-12-10T09:05:00+03:00", "в четверг, 10 декабря, в 9:05"),
        ("2026-11-30T23:59:00+03:00", "в понедельник, 30 ноября, в 23:59"),
        ("2027-01-13T08:00:00+03:00", "в среду, 13 января 2027 г., в 8:00"),
    ],
)
def test_when_phrase(starts_at: str, expected: str) -> None:
    assert when_phrase(at(starts_at), now=NOW, tz=MSK) == expected


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        ("Europe/Moscow", "завтра, 3 декабря, в 8:00"),
        ("Asia/Yekaterinburg", "завтра, 3 декабря, в 10:00"),
        ("Europe/Kaliningrad", "завтра, 3 декабря, в 7:00"),
        ("Asia/Vladivostok", "завтра, 3 декабря, в 15:00"),
    ],
)
def test_the_zone_sets_the_clock(tz: str, expected: str) -> None:
    # `now` is 12:00 MSK on 2 December, which is 2 December in all these zones too.
    assert when_phrase(at("2026-12-03T05:00:00Z"), now=NOW, tz=tz) == expected


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # 22:30Z on 2 December is already 01:30 on 3 December in Moscow: «сегодня», not «завтра».
        ("2026-12-02T21:00:00Z", MSK, "сегодня, 3 декабря, в 1:30"),
        # With the evening of 2 December as `now`, the same instant is «завтра» though UTC says today.
        ("2026-12-02T18:00:00Z", MSK, "завтра, 3 декабря, в 1:30"),
        # In Kaliningrad (UTC+2) it is 00:30 on 3 December.
        ("2026-12-02T12:00:00Z", "Europe/Kaliningrad", "завтра, 3 декабря, в 0:30"),
        # In Vladivostok (UTC+10) the visit is on 3 December while `now` (20:00Z 1 Dec) is 2 December there.
        ("2026-12-01T20:00:00Z", "Asia/Vladivostok", "завтра, 3 декабря, в 8:30"),
        # UTC dates say «tomorrow» here, but in Moscow the visit is two days away: a weekday.
        ("2026-12-01T20:59:00Z", MSK, "в четверг, 3 декабря, в 1:30"),
    ],
)
def test_today_and_tomorrow_follow_the_local_date(now: str, tz: str, expected: str) -> None:
    assert when_phrase(at("2026-12-02T22:30:00Z"), now=at(now), tz=tz) == expected


def test_the_bookings_own_zone_beats_the_tenants() -> None:
    visit = facts("2026-12-03T05:00:00+00:00", timezone="Asia/Yekaterinburg")
    context = build_context(JobKind.REMINDER, visit, now=NOW, tz=MSK)
    assert context["time"] == "10:00"
    assert context["when"] == "завтра, 3 декабря, в 10:00"


@pytest.mark.parametrize(
    ("starts_at", "now"),
    [
        ("2026-12-03T10:00:00", "2026-12-02T12:00:00+03:00"),
        ("2026-12-03T10:00:00+03:00", "2026-12-02T12:00:00"),
    ],
)
def test_naive_datetimes_are_refused(starts_at: str, now: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        render_message(JobKind.REMINDER, facts(starts_at), now=at(now), tz=MSK)


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        render_message(JobKind.REMINDER, BARE, now=NOW, tz="Mars/Olympus")


def test_date_carries_the_year_when_it_differs() -> None:
    context = build_context(JobKind.REMINDER, facts("2027-01-03T10:00:00+03:00"), now=NOW, tz=MSK)
    assert context["date"] == "3 января 2027 г."
