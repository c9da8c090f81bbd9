"""Invitation links to the clinic's bots: a deep-link payload that names a patient and cannot be forged.

A patient who opens `https://t.me/<bot>?start=<payload>` (or MAX's `https://max.ru/<bot>?start=<payload>`)
links their chat to their record. A bare patient id would let anyone link their own chat to another
patient's record and read their reminders, so the payload carries an HMAC of the id under a server secret.
Telegram allows 64 characters of [A-Za-z0-9_-]; the payload stays well inside that.
"""

from __future__ import annotations

import hashlib
import hmac
import re

_PAYLOAD = re.compile(r"^p(\d{1,18})-([0-9a-f]{20})$")
BOT_LINKS = {"telegram_bot": "https://t.me/{bot}?start={payload}", "max_bot": "https://max.ru/{bot}?start={payload}"}


def make_payload(patient_id: int, secret: str) -> str:
    return f"p{patient_id}-{_signature(patient_id, secret)}"


def read_payload(payload: str | None, secret: str) -> int | None:
    """The patient id the payload names, or None when it is not one of ours (or was tampered with)."""
    match = _PAYLOAD.match((payload or "").strip())
    if not match:
        return None
    patient_id = int(match.group(1))
    return patient_id if hmac.compare_digest(match.group(2), _signature(patient_id, secret)) else None


def invite_link(provider: str, bot: str, patient_id: int, secret: str) -> str:
    return BOT_LINKS[provider].format(bot=bot.lstrip("@"), payload=make_payload(patient_id, secret))


def _signature(patient_id: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"patient:{patient_id}".encode(), hashlib.sha256).hexdigest()[:20]
