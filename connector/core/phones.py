"""Phone numbers and names as we store and log them: E.164 for storage, masked forms for logs.

Sources write phones every way ("+7 999 123-45-67", "89161234567", the int 79161234567, ...);
everything downstream (matching, sending, dedup) works on the E.164 string this module produces.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = ["mask_name", "mask_phone", "normalise_phone"]


def normalise_phone(raw: object, region: str = "RU") -> str | None:
    """Return `raw` as an E.164 string ("+79161234567"), or None when it is empty or not a valid number.

    `region` decides how numbers without a "+" are read: for RU, "8 916 ..." is a national number
    and "7916..." is the country code followed by the number.
    """
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, float):
        # A JSON number may arrive as 79161234567.0; anything fractional is not a phone.
        if not raw.is_integer():
            return None
        raw = int(raw)
    if isinstance(raw, int):
        if raw <= 0:
            return None
        text = str(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        return None
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    # Validity (not mere possibility) so that placeholders like +7 000 123-45-67 are rejected
    # instead of being sent to a provider that bills for the attempt.
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str:
    """A loggable form of a phone: "+7 916 ***-**-67" for Russia, "+44 791 *****56" elsewhere.

    Returns "" for None or "". Input that does not parse as E.164 is still masked (only its last two
    digits are shown), so a bad value never leaks into logs in full.
    """
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        digits = "".join(ch for ch in str(e164) if ch.isdigit())
        return "***" + digits[-2:] if len(digits) >= 4 else "***"
    national = phonenumbers.national_significant_number(number)
    code = number.country_code
    if code == 7 and len(national) == 10:
        return f"+7 {national[:3]} ***-**-{national[-2:]}"
    if len(national) <= 5:
        # Too short to show 3 + 2 digits and still hide something.
        return f"+{code} " + "*" * max(len(national) - 2, 1) + national[-2:]
    return f"+{code} {national[:3]} " + "*" * (len(national) - 5) + national[-2:]


def mask_name(name: str | None) -> str:
    """A loggable form of a name: its first letter and "***" ("Иван" -> "И***"); "" for None or blank."""
    if not name:
        return ""
    text = str(name).strip()
    if not text:
        return ""
    return text[0] + "***"
