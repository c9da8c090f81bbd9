"""Bot invitation payloads: they name a patient, and cannot be forged for another one."""

from __future__ import annotations

import re

import pytest

from connector.core.invites import invite_link, make_payload, read_payload

SECRET = "server-side-secret"


@pytest.mark.parametrize("patient_id", [1, 42, 10**12])
def test_round_trip(patient_id):
    payload = make_payload(patient_id, SECRET)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", payload)  # what Telegram's start parameter allows
    assert read_payload(payload, SECRET) == patient_id


@pytest.mark.parametrize(
    "payload",
    [None, "", "p42", "p43-" + make_payload(42, SECRET).split("-")[1], make_payload(42, "another-secret"),
     make_payload(42, SECRET) + "0", "hello", " p42-zzzzzzzzzzzzzzzzzzzz"],
)
def test_forged_or_foreign_payloads_name_nobody(payload):
    assert read_payload(payload, SECRET) is None


def test_links():
    expected = f"https://t.me/ClinicBot?start={make_payload(7, SECRET)}"
    assert invite_link("telegram_bot", "@ClinicBot", 7, SECRET) == expected
    assert invite_link("max_bot", "clinic_bot", 7, SECRET).startswith("https://max.ru/clinic_bot?start=p7-")
