"""The built-in texts, one per job kind, word for word; what they leave out; the preparation lookup."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.core.model import BookingFacts, JobKind, Patient, Sex
from connector.core.templates import validate_template
from connector.core.texts import _BUILT_IN, preparation_for, render_message
from tests.unit.sample_visits import BARE, CLINIC, FULL, IVAN, MSK, NOW, assert_tidy, facts


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


def test_built_in_texts_validate() -> None:
    assert {str(kind) for kind in _BUILT_IN} == {str(kind) for kind in JobKind}  # one text per kind
    for source in _BUILT_IN.values():
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
    assert preparation_for(services, table) == expected
