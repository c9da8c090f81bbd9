"""Failed sign-ins in the database, so every gunicorn worker (and every web host) counts the same ones.

Keys are SHA-256 digests of "login:<login>" and "address:<ip>" (see SignInAttempt); rows older than the window
are deleted whenever a failure is recorded, so the table stays as small as the current attack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from connector.store.models import SignInAttempt


def login_key(login: str) -> str:
    return _digest(f"login:{login.strip().lower()}")


def address_key(address: str) -> str:
    return _digest(f"address:{address}")


def failures_since(session: Session, keys: Iterable[str], since: datetime) -> dict[str, list[datetime]]:
    """When each key failed since `since` (a key with none is absent)."""
    found: dict[str, list[datetime]] = {}
    rows = session.execute(select(SignInAttempt.key, SignInAttempt.at)
                           .where(SignInAttempt.key.in_(list(keys)), SignInAttempt.at >= since))
    for key, at in rows:
        found.setdefault(key, []).append(at)
    return found


def record_failure(session: Session, keys: Iterable[str], *, at: datetime, forget_before: datetime) -> None:
    keys = list(keys)
    session.execute(delete(SignInAttempt).where(SignInAttempt.key.in_(keys), SignInAttempt.at < forget_before))
    session.execute(insert(SignInAttempt), [{"key": key, "at": at} for key in keys])


def forget(session: Session, key: str) -> None:
    """A successful sign-in clears its login's failures (not its address's: others may share it)."""
    session.execute(delete(SignInAttempt).where(SignInAttempt.key == key))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
