"""Masking personal data in free texts and raw bodies, for pages support staff read (pure).

Phones are masked by pattern wherever they occur, e-mails by pattern, the patient's own name parts wherever
they occur, and the name-like fields of a JSON body by key. Over-masking a long id is the accepted price.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from connector.core.phones import mask_name, mask_phone, normalise_phone

# 10 to 15 digits, maybe after a "+", maybe split by spaces, dashes or brackets: "+7 (916) 123-45-67",
# "89161234567", "7 916 123 45 67". Not inside a longer word, number or dashed id (a UUID's last group).
_PHONE_RUN = re.compile(r"(?<![\w+-])\+?\d(?:[ \-()]{0,2}\d){9,14}(?![\w-])")
_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}")  # "2026-12-03 10:00:00" has ten digits, yet is no phone
# A path segment or a query value: what lies between the separators of a request target.
_PATH_PIECE = re.compile(r"[^/?&=;]+")
_PHONE_PIECE = re.compile(r"\+?[\d \-().]+")
_EMAIL = re.compile(r"([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
# JSON keys whose values name a person: masked wherever they occur in a raw body.
_PERSON_KEYS = frozenset({
    "surname", "last_name", "lastname", "first_name", "firstname", "patronymic", "middle_name", "second_name",
    "secondname", "display_name", "full_name", "fullname", "fio", "birthday", "birth_date", "birthdate",
    "email", "username",
})
# Objects that describe a person: their "name" is masked too (a doctor's, under "staff", is not).
_PERSON_OBJECTS = frozenset({"client", "patient", "contact", "customer", "person", "from", "chat", "user",
                             "sender"})


def mask_phones(text: str) -> str:
    """Every run that looks like a phone number, masked: "+7 916 ***-**-67", or "***67" when it is no valid one."""

    def _mask(match: re.Match[str]) -> str:
        run = match.group(0)
        if _DATE_START.match(run):
            return run
        return mask_phone(normalise_phone(run) or run)

    return _PHONE_RUN.sub(_mask, text)


def mask_path_phones(target: str) -> str:
    """A request target (a path, maybe with its query) as an access log may keep it: each phone-shaped piece
    (a path segment or a query value, URL-decoded, "+7 (916) 482-73-10" as much as "79164827310") becomes
    "***" and its last two digits. Ids of up to nine digits stay, so a booking's stays readable."""

    def _mask(match: re.Match[str]) -> str:
        piece = unquote(match.group(0))
        digits = re.sub(r"\D", "", piece)
        if _PHONE_PIECE.fullmatch(piece) and 10 <= len(digits) <= 15 and not _DATE_START.match(piece):
            return "***" + digits[-2:]
        return match.group(0)

    return _PATH_PIECE.sub(_mask, target)


def name_parts(*, last_name: str | None, first_name: str | None, patronymic: str | None) -> tuple[str, ...]:
    """The patient's name as it may appear in a text, to be masked wherever it does: the whole name in its usual
    orders, and the surname or the first name alone (the patronymic alone names nobody, and a doctor may share
    it). A part shorter than two letters is left out, and every variant that needs it with it: an initial would
    mask every word that starts with that letter."""
    last, first, middle = (part.strip() if part and len(part.strip()) >= 2 else "" for part in
                           (last_name, first_name, patronymic))
    orders = [(last, first, middle), (first, middle, last), (first, middle), (last, first), (first, last),
              (last,), (first,)]
    return tuple(dict.fromkeys(" ".join(order) for order in orders if all(order)))


def scrub(text: str | None, names: Iterable[str] = ()) -> str:
    """A free text (an error, a rendered message, a raw body) fit for the page: phones, e-mails and the
    patient's own name parts masked."""
    if not text:
        return ""
    text = mask_phones(text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    names = sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True)
    if names:
        # Longest first, so "Иван Петрович" goes as one; "Иван" alone never touches "Иванов".
        phrases = "|".join(r"\s+".join(map(re.escape, name.split())) for name in names)
        text = re.sub(rf"(?<!\w)(?:{phrases})(?!\w)",
                      lambda m: " ".join(mask_name(word) for word in m.group(0).split()), text, flags=re.IGNORECASE)
    return text


def masked_body(body: str | None, names: Iterable[str] = ()) -> tuple[str, bool]:
    """The raw body as support may see it: pretty-printed when it is JSON, person fields masked by key, then
    every phone, e-mail and the patient's name parts masked in the text. Returns (text, was_json)."""
    if not body:
        return "", False
    try:
        parsed = json.loads(body)
    except ValueError:
        return scrub(body, names), False
    pretty = json.dumps(_mask_person_fields(parsed), ensure_ascii=False, indent=2)
    return scrub(pretty, names), True


def _mask_person_fields(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            lowered = str(key).lower()
            personal = lowered in _PERSON_KEYS or (lowered == "name" and parent in _PERSON_OBJECTS)
            if personal and isinstance(item, str) and item.strip():
                masked[key] = mask_name(item)
            else:
                masked[key] = _mask_person_fields(item, lowered)
        return masked
    if isinstance(value, list):
        return [_mask_person_fields(item, parent) for item in value]
    return value
