"""Who may post to a webhook URL: a shared token, or a Standard Webhooks signature (pure functions)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

_UNIX_TIME = re.compile(r"[0-9]{1,12}")
TOLERANCE_SECONDS = 5 * 60  # the Standard Webhooks default: refuse replays older (or newer) than this


class AuthError(ValueError):
    """The request is not from who it claims; the message says what was missing or wrong."""


def check_token(expected: str, query_token: str | None, header_token: str | None) -> None:
    """YCLIENTS signs nothing and only lets a URL be set, so a secret rides in the URL (or a header)."""
    given = header_token or query_token
    if not given:
        raise AuthError("missing token: pass ?token=... or the X-Connector-Token header")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthError("wrong token")


def check_standard_signature(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> str:
    """Verify `webhook-id`, `webhook-timestamp`, `webhook-signature`; return the webhook id."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise AuthError("missing Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature)")
    # ASCII digits only, and few of them: int() would take "１２３" or 400 digits, and a float cannot.
    if not _UNIX_TIME.fullmatch(timestamp):
        raise AuthError("webhook-timestamp is not a Unix time in seconds")
    if len(msg_id) > 128:
        raise AuthError("webhook-id is longer than 128 characters")
    sent_at = int(timestamp)
    if abs(now.timestamp() - sent_at) > TOLERANCE_SECONDS:
        raise AuthError("webhook-timestamp is too far from now (a replay, or a clock out of step)")
    key = _secret_bytes(secret)
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return msg_id
    raise AuthError("webhook-signature does not match the body")


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value a sender computes; used by tests and by our own signed write-backs."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()).decode()


def _secret_bytes(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error as error:
            raise AuthError("the tenant's webhook secret is not valid base64 after whsec_") from error
    return secret.encode()
