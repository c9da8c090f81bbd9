"""Phone normalisation to E.164 and the masked forms of phones and names used in logs."""

from __future__ import annotations

import pytest

from connector.core.phones import mask_name, mask_phone, normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+79999856814", "+79999856814"),  # webhooks
        ("79169999900", "+79169999900"),  # record create/PUT bodies
        ("89161234567", "+79161234567"),  # national form with the trunk prefix 8
        ("+7 999 123-45-67", "+79991234567"),  # partner records
        ("8 (916) 123-45-67", "+79161234567"),
        ("  +7 (916) 123 45 67 ", "+79161234567"),
        ("9161234567", "+79161234567"),  # ten digits without any prefix
        (79161234567, "+79161234567"),  # the client phone can be a JSON number
        (79161234567.0, "+79161234567"),
        ("+7 495 123-45-67", "+74951234567"),  # landlines are valid numbers too
        ("+77012345678", "+77012345678"),  # Kazakhstan shares +7
        ("+447911123456", "+447911123456"),
    ],
)
def test_normalise_phone_accepts(raw, expected):
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "   ", "12", "+70001234567", "not a phone", 0, -79161234567, True, 7.5, ["+79161234567"], {}],
)
def test_normalise_phone_rejects(raw):
    assert normalise_phone(raw) is None


def test_normalise_phone_region_decides_numbers_without_plus():
    assert normalise_phone("07911 123456", region="GB") == "+447911123456"
    assert normalise_phone("07911 123456") is None


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+79161234567", "+7 916 ***-**-67"),
        ("+79999856814", "+7 999 ***-**-14"),
        ("+447911123456", "+44 791 *****56"),
        ("+4930123456", "+49 301 ***56"),
        ("+29022158", "+290 ***58"),  # Saint Helena: five digits, too few to show the first three as well
        ("+6834002", "+683 **02"),  # Niue: four digits
        ("+1234", "+1 *34"),  # never fewer than one star, so a short number is never shown whole
        (None, ""),
        ("", ""),
        ("garbage 12345", "***45"),  # never shown whole, even when not a phone
        ("x", "***"),
    ],
)
def test_mask_phone(e164, expected):
    assert mask_phone(e164) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Иван", "И***"), ("  Смирнов Иван ", "С***"), ("A", "A***"), (None, ""), ("", ""), ("   ", "")],
)
def test_mask_name(name, expected):
    assert mask_name(name) == expected
