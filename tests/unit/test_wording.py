"""Patient texts: greetings, the date phrase in the tenant's zone, built-in kinds and tenant overrides."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from connector.core.model import BookingFacts, JobKind, Patient, Sex
from connector.core.wording import (
    CONTEXT_NAMES,
    WordingError,
    build_context,
    greeting,
    render_message,
    validate_template,
    when_phrase,
)

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


# --- built-in texts -------------------------------------------------------------------------------------

CLINIC = "Клиника «Здоровье»"


@pytest.mark.parametrize(
    ("kind", "visit", "clinic", "expected"),
    [
        (
            JobKind.REMINDER,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Напоминаем: завтра, 3 декабря, в 10:00 Вас ждёт кардиолог"
            " Иванов Сергей Петрович (Приём кардиолога первичный). Адрес: ул. Лесная, д. 5."
            " Подготовка: За 4 часа до приёма не есть и не пить. С уважением, Клиника «Здоровье»",
        ),
        (JobKind.REMINDER, BARE, None, "Здравствуйте! Напоминаем о Вашем приёме завтра, 3 декабря, в 10:00."),
        (
            JobKind.CONFIRMATION,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Вы записаны на приём завтра, 3 декабря, в 10:00"
            " (Приём кардиолога первичный). Вас примет кардиолог Иванов Сергей Петрович."
            " Адрес: ул. Лесная, д. 5. Подготовка: За 4 часа до приёма не есть и не пить."
            " С уважением, Клиника «Здоровье»",
        ),
        (JobKind.CONFIRMATION, BARE, None, "Здравствуйте! Вы записаны на приём завтра, 3 декабря, в 10:00."),
        (
            JobKind.RESCHEDULE,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Ваш приём перенесён: теперь он состоится завтра, 3 декабря, в 10:00"
            " (Приём кардиолога первичный). Вас примет кардиолог Иванов Сергей Петрович."
            " Адрес: ул. Лесная, д. 5. Подготовка: За 4 часа до приёма не есть и не пить."
            " Если новое время Вам не подходит, пожалуйста, свяжитесь с клиникой."
            " С уважением, Клиника «Здоровье»",
        ),
        (
            JobKind.RESCHEDULE,
            BARE,
            None,
            "Здравствуйте! Ваш приём перенесён: теперь он состоится завтра, 3 декабря, в 10:00."
            " Если новое время Вам не подходит, пожалуйста, свяжитесь с клиникой.",
        ),
        (
            JobKind.CANCELLATION,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Ваш приём завтра, 3 декабря, в 10:00 (Приём кардиолога первичный)"
            " отменён. Чтобы записаться снова, свяжитесь с клиникой. С уважением, Клиника «Здоровье»",
        ),
        (
            JobKind.CANCELLATION,
            BARE,
            None,
            "Здравствуйте! Ваш приём завтра, 3 декабря, в 10:00 отменён."
            " Чтобы записаться снова, свяжитесь с клиникой.",
        ),
        (
            JobKind.RESULTS_READY,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Результаты Ваших исследований готовы (Приём кардиолога первичный)."
            " Чтобы узнать их, свяжитесь с клиникой. С уважением, Клиника «Здоровье»",
        ),
        (
            JobKind.RESULTS_READY,
            BARE,
            None,
            "Здравствуйте! Результаты Ваших исследований готовы. Чтобы узнать их, свяжитесь с клиникой.",
        ),
        (
            JobKind.RECALL,
            FULL,
            CLINIC,
            "Уважаемый Иван Петрович! Приглашаем Вас на профилактический осмотр: регулярные визиты помогают"
            " сохранить здоровье. Чтобы записаться, свяжитесь с клиникой. С уважением, Клиника «Здоровье»",
        ),
        (
            JobKind.RECALL,
            BARE,
            None,
            "Здравствуйте! Приглашаем Вас на профилактический осмотр: регулярные визиты помогают"
            " сохранить здоровье. Чтобы записаться, свяжитесь с клиникой.",
        ),
    ],
)
def test_built_in_texts(kind: JobKind, visit: BookingFacts, clinic: str | None, expected: str) -> None:
    text = render_message(kind, visit, now=NOW, tz=MSK, clinic_name=clinic)
    assert text == expected
    assert_tidy(text)


def test_every_kind_has_a_built_in_text() -> None:
    for kind in JobKind:
        for visit in (FULL, BARE):
            assert_tidy(render_message(kind, visit, now=NOW, tz=MSK))


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        ({"doctor_name": None}, ["Вас ждёт кардиолог (Приём"], ["доктор"]),
        ({"doctor_specialty": None}, ["Вас ждёт доктор Иванов Сергей Петрович"], ["кардиолог И"]),
        ({"doctor_specialty": "Кардиолог"}, ["Вас ждёт кардиолог Иванов"], ["Кардиолог"]),
        ({"doctor_specialty": "МРТ-диагност"}, ["Вас ждёт МРТ-диагност Иванов"], ["мРТ"]),
        (
            {"doctor_name": None, "doctor_specialty": None},
            ["Напоминаем о Вашем приёме завтра, 3 декабря, в 10:00 (Приём кардиолога первичный)."],
            ["Вас ждёт"],
        ),
        ({"services": ()}, ["Иванов Сергей Петрович. Адрес"], ["("]),
        ({"services": ("УЗИ", " ", "ЭКГ")}, ["(УЗИ, ЭКГ)."], []),
        ({"address": None}, ["первичный). Подготовка"], ["Адрес"]),
        ({"address": "ул. Лесная, д. 5."}, ["Адрес: ул. Лесная, д. 5. Подготовка"], []),
        ({"preparation": None}, ["Адрес: ул. Лесная, д. 5."], ["Подготовка"]),
        ({"preparation": "  Натощак  "}, ["Подготовка: Натощак."], []),
        ({"preparation": "Натощак!"}, ["Подготовка: Натощак!"], ["!."]),
    ],
)
def test_reminder_omits_unknown_parts(
    changes: dict[str, object], present: list[str], absent: list[str]
) -> None:
    values = {
        "patient": FULL.patient,
        "doctor_name": FULL.doctor_name,
        "doctor_specialty": FULL.doctor_specialty,
        "services": FULL.services,
        "preparation": FULL.preparation,
        "address": FULL.address,
    }
    text = render_message(JobKind.REMINDER, facts(**{**values, **changes}), now=NOW, tz=MSK)
    for fragment in present:
        assert fragment in text, text
    for fragment in absent:
        assert fragment not in text, text
    assert_tidy(text)


def test_address_falls_back_to_the_tenants() -> None:
    text = render_message(JobKind.REMINDER, BARE, now=NOW, tz=MSK, address="пр. Мира, д. 1")
    assert text.endswith("Адрес: пр. Мира, д. 1.")
    text = render_message(JobKind.REMINDER, FULL, now=NOW, tz=MSK, address="пр. Мира, д. 1")
    assert "ул. Лесная" in text and "пр. Мира" not in text


def test_a_reschedule_to_another_weekday_reads_well() -> None:
    visit = facts("2026-12-08T15:00:00+03:00", patient=Patient(first_name="Елена", sex=Sex.FEMALE))
    text = render_message(JobKind.RESCHEDULE, visit, now=NOW, tz=MSK)
    assert text.startswith(
        "Уважаемая Елена! Ваш приём перенесён: теперь он состоится во вторник, 8 декабря, в 15:00."
    )


# --- the context and tenant overrides -------------------------------------------------------------------


def test_context_names() -> None:
    context = build_context(JobKind.REMINDER, FULL, now=NOW, tz=MSK, clinic_name=CLINIC)
    assert set(context) == CONTEXT_NAMES
    assert context["greeting"] == "Уважаемый Иван Петрович"
    assert context["time"] == "10:00"
    assert context["date"] == "3 декабря"
    assert context["when"] == "завтра, 3 декабря, в 10:00"
    assert context["kind"] == "reminder"
    assert context["clinic"] == CLINIC
    bare = build_context(JobKind.RECALL, BARE, now=NOW, tz=MSK)
    assert all(value is not None for value in bare.values())
    assert bare["doctor"] == bare["address"] == bare["clinic"] == bare["services"] == ""


def test_date_carries_the_year_when_it_differs() -> None:
    context = build_context(JobKind.REMINDER, facts("2027-01-03T10:00:00+03:00"), now=NOW, tz=MSK)
    assert context["date"] == "3 января 2027 г."


OVERRIDE = (
    "{{ greeting }}! {{ patient.first_name }}, ждём Вас {{ when }}"
    "{% if doctor %} у доктора {{ doctor }}{% endif %}.\n"
    "{% if address %}\n"
    "Адрес: {{ address|sentence }}\n"
    "{% endif %}\n"
    "{{ clinic }}  {{ kind }} {{ date }} {{ time }}   "
)


def test_a_tenant_override_replaces_the_built_in_text() -> None:
    validate_template(OVERRIDE)
    text = render_message(
        JobKind.REMINDER, FULL, now=NOW, tz=MSK, clinic_name=CLINIC, overrides={"reminder": OVERRIDE}
    )
    assert text == (
        "Уважаемый Иван Петрович! Иван, ждём Вас завтра, 3 декабря, в 10:00"
        " у доктора Иванов Сергей Петрович.\n"
        "Адрес: ул. Лесная, д. 5.\n"
        "Клиника «Здоровье» reminder 3 декабря 10:00"
    )


def test_an_override_for_another_kind_leaves_this_one_alone() -> None:
    text = render_message(JobKind.CANCELLATION, BARE, now=NOW, tz=MSK, overrides={"reminder": OVERRIDE})
    assert text.startswith("Здравствуйте! Ваш приём завтра")


BAD_TEMPLATES = [
    pytest.param("{{ greeting ", id="unclosed-expression"),
    pytest.param("{% if doctor %}{{ doctor }}", id="unclosed-block"),
    pytest.param("{{ ''.__class__ }}", id="dunder-attribute"),
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", id="subclasses"),
    pytest.param("{{ patient['__class__'] }}", id="dunder-item"),
    pytest.param("{{ cycler.__init__.__globals__ }}", id="globals"),
    pytest.param("{{ patient._private }}", id="underscore-attribute"),
    pytest.param("{% set a = ['__cla', 'ss__']|join %}{{ greeting[a] }}", id="computed-dunder"),
    pytest.param("{{ greting }}, {{ when }}", id="unknown-name"),
    pytest.param("{% if address %}{{ adress }}{% endif %}", id="unknown-name-in-branch"),
    pytest.param("{{ patient.middle_name }}", id="unknown-attribute"),
    pytest.param("{{ 1 / 0 }}", id="runtime-error"),
    pytest.param("{{ greeting.upper.__self__ }}", id="method-self"),
    pytest.param("   {# nothing #}  ", id="renders-empty"),
    # Jinja checks filter names when it compiles, after parsing: its TemplateAssertionError must be wrapped too.
    pytest.param("{{ greeting|shout }}", id="unknown-filter"),
]


@pytest.mark.parametrize("source", BAD_TEMPLATES)
def test_a_bad_template_fails_validation(source: str) -> None:
    with pytest.raises(WordingError):
        validate_template(source)


@pytest.mark.parametrize("source", BAD_TEMPLATES)
def test_a_bad_override_fails_rendering(source: str) -> None:
    with pytest.raises(WordingError):
        render_message(JobKind.REMINDER, FULL, now=NOW, tz=MSK, overrides={"reminder": source})


def test_wording_error_is_a_value_error_not_a_jinja_error() -> None:
    # Callers catch WordingError (or ValueError) alone; Jinja is an implementation detail of the template code.
    from jinja2 import TemplateError

    with pytest.raises(ValueError) as caught:
        validate_template("{{ greeting ")
    assert isinstance(caught.value, WordingError)
    assert not isinstance(caught.value, TemplateError)
    assert "line 1" in str(caught.value)


def test_an_unknown_name_is_named_in_the_error() -> None:
    with pytest.raises(WordingError, match="greting"):
        validate_template("{{ greting }}")


def test_a_plain_text_template_is_not_escaped() -> None:
    text = render_message(
        JobKind.REMINDER,
        facts(address='ТЦ "Мир" & Ко <2 этаж>'),
        now=NOW,
        tz=MSK,
        overrides={"reminder": "{{ address }}"},
    )
    assert text == 'ТЦ "Мир" & Ко <2 этаж>'


def test_built_in_texts_validate() -> None:
    from connector.core import wording

    assert {str(kind) for kind in wording._BUILT_IN} == {str(kind) for kind in JobKind}  # one text per kind
    for source in wording._BUILT_IN.values():
        validate_template(source)  # raises WordingError for a template a tenant could not use either


@pytest.mark.parametrize("kind", list(JobKind))
@pytest.mark.parametrize("visit", [FULL, BARE, facts("2026-12-02T09:00:00+03:00", patient=IVAN)])
@pytest.mark.parametrize("day_offset", [0, 1, 2, 5, 40])
def test_no_double_spaces_anywhere(kind: JobKind, visit: BookingFacts, day_offset: int) -> None:
    now = NOW - timedelta(days=day_offset)
    assert_tidy(render_message(kind, visit, now=now, tz=MSK, clinic_name=CLINIC))


@pytest.mark.parametrize(
    ("services", "table", "expected"),
    [
        (("Приём кардиолога первичный",), {"Приём кардиолога первичный": "Не есть 4 часа."}, "Не есть 4 часа."),
        (("приём  КАРДИОЛОГА первичный",), {"Приём кардиолога первичный": "Не есть 4 часа."}, "Не есть 4 часа."),
        (("УЗИ", "ЭКГ"), {"ЭКГ": "Без крема.", "УЗИ": "Натощак."}, "Натощак. Без крема."),
        (("УЗИ", "УЗИ повторно"), {"УЗИ": "Натощак.", "УЗИ повторно": "Натощак."}, "Натощак."),
        (("Консультация",), {"УЗИ": "Натощак."}, None),
        ((), {"УЗИ": "Натощак."}, None),
    ],
)
def test_preparation_comes_from_the_services(services, table, expected):
    from connector.core.wording import preparation_for

    assert preparation_for(services, table) == expected
