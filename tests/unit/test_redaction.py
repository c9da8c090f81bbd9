"""Masking personal data in texts and raw bodies shown to support staff."""

from __future__ import annotations

import json

import pytest

from connector.core.redaction import mask_path_phones, mask_phones, masked_body, name_parts, scrub


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("звонок на +79161234567 в 10:00", "звонок на +7 916 ***-**-67 в 10:00"),
        ("8 (916) 123-45-67", "+7 916 ***-**-67"),
        ("to=79161234567&msg=x", "to=+7 916 ***-**-67&msg=x"),
        ("2026-12-03 10:00:00", "2026-12-03 10:00:00"),  # a date is no phone
        ("id 550e8400-e29b-41d4-a716-446655440000", "id 550e8400-e29b-41d4-a716-446655440000"),
        ("record 987654321", "record 987654321"),  # nine digits: an id
    ],
)
def test_phones_in_free_text(text, expected):
    assert mask_phones(text) == expected


def test_scrub_masks_emails_and_the_patients_own_name_but_not_the_doctors():
    text = "Иван Петрович Смирнов (smirnov@example.com) записан к Иванову; врач Петрова"
    out = scrub(text, ["Смирнов", "Иван Петрович", "Иван"])
    assert "Смирнов" not in out and "Иван Петрович" not in out and "smirnov@" not in out
    assert "Иванову" in out and "Петрова" in out and "@example.com" in out


def test_a_json_body_masks_person_fields_by_key():
    body = json.dumps({"data": {"client": {"name": "Иван", "surname": "Смирнов", "phone": "+79161234567",
                                           "birthday": "1961-05-02"},
                                "staff": {"name": "Иванов Сергей Петрович"}}}, ensure_ascii=False)
    text, was_json = masked_body(body)
    assert was_json
    parsed = json.loads(text)
    client = parsed["data"]["client"]
    assert client["name"] != "Иван" and client["surname"] != "Смирнов" and client["birthday"] != "1961-05-02"
    assert client["phone"] == "+7 916 ***-**-67"
    assert parsed["data"]["staff"]["name"] == "Иванов Сергей Петрович"  # the doctor is not a patient


def test_a_body_that_is_not_json_still_loses_its_phones():
    text, was_json = masked_body("{broken +79161234567")
    assert not was_json and "9161234567" not in text


@pytest.mark.parametrize(("target", "masked"), [
    ("/api/v1/demo/patients/79164827310/invitations", "/api/v1/demo/patients/***10/invitations"),
    ("/api/v1/demo/patients/+79164827310/opt-outs", "/api/v1/demo/patients/***10/opt-outs"),
    ("/api/v1/demo/patients/%2B79164827310/opt-outs", "/api/v1/demo/patients/***10/opt-outs"),
    ("/api/v1/demo/patients/8%20(916)%20482-73-10/opt-outs", "/api/v1/demo/patients/***10/opt-outs"),
    ("/api/v1/demo/patients/89164827310", "/api/v1/demo/patients/***10"),
    ("/status/demo?q=79164827310", "/status/demo?q=***10"),
    ("/status/demo?q=%2B7%20916%20482%2073%2010&x=1", "/status/demo?q=***10&x=1"),
    ("/api/v1/demo/patients/8 (916) 482-73-10/opt-outs", "/api/v1/demo/patients/***10/opt-outs"),  # decoded
    # not phones: ids shorter than ten digits, dates, words, sixteen digits and more
    ("/api/v1/demo/bookings/yclients/987654321", "/api/v1/demo/bookings/yclients/987654321"),
    ("/status/demo/events/12", "/status/demo/events/12"),
    ("/status/demo?day=2026-12-03", "/status/demo?day=2026-12-03"),
    ("/api/v1/demo/bookings/generic/B-1001", "/api/v1/demo/bookings/generic/B-1001"),
    ("/api/v1/demo/bookings/generic/1234567890123456", "/api/v1/demo/bookings/generic/1234567890123456"),
    ("/healthz", "/healthz"),
    ("", ""),
])
def test_phone_shaped_path_segments_are_masked(target, masked):
    assert mask_path_phones(target) == masked


@pytest.mark.parametrize(("last", "first", "patronymic", "parts"), [
    ("Смирнов", "Иван", "Петрович", ("Смирнов Иван Петрович", "Иван Петрович Смирнов", "Иван Петрович",
                                     "Смирнов Иван", "Иван Смирнов", "Смирнов", "Иван")),
    # the patronymic alone names nobody (a doctor may share it): never a variant of its own
    ("Смирнов", "Иван", None, ("Смирнов Иван", "Иван Смирнов", "Смирнов", "Иван")),
    (None, "Иван", "Петрович", ("Иван Петрович", "Иван")),
    ("Смирнов", None, "Петрович", ("Смирнов",)),
    (None, None, "Петрович", ()),
    # padding is no part of a name; an initial is too short to mask (it would hit every word starting with it)
    ("  Смирнов ", "И", "Петрович", ("Смирнов",)),
    ("", " ", None, ()),
    (None, None, None, ()),
])
def test_the_name_variants_masked_on_support_pages(last, first, patronymic, parts):
    assert name_parts(last_name=last, first_name=first, patronymic=patronymic) == parts


def test_people_inside_a_list_are_masked_by_key_too():
    body = json.dumps({"resource": "record", "data": {"clients": [
        {"name": "Иван", "surname": "Смирнов"}, {"client": {"name": "Мария"}}, "+79161234567", 42]}},
        ensure_ascii=False)
    text, was_json = masked_body(body)
    assert was_json
    people = json.loads(text)["data"]["clients"]
    assert people[0]["surname"] != "Смирнов" and people[1]["client"]["name"] != "Мария"
    assert people[2] == "+7 916 ***-**-67" and people[3] == 42
    # a list at the top of the body is read the same way
    top, _ = masked_body(json.dumps([{"patient": {"name": "Иван"}}], ensure_ascii=False))
    assert "Иван" not in top


@pytest.mark.parametrize("empty", ["", None])
def test_nothing_to_show_is_an_empty_text_not_an_error(empty):
    assert scrub(empty, ["Иван"]) == ""
    assert masked_body(empty, ["Иван"]) == ("", False)
