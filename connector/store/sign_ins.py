"""Sign-in tries in the database, so every gunicorn worker (and every web host) counts the same ones.

Keys are SHA-256 digests of "login:<login>" and "address:<ip>" (see SignInAttempt). A try is written *before* its
password is checked, in the same transaction that counted the earlier ones under a lock on its keys (`hold`), so
two tries at once can never both be the fifth: a try counts as a failure until it succeeds, and a success takes
its rows back. Rows older than the window are deleted whenever the keys are held, so the table stays as small as
the current attack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, text
from sqlalchemy.orm import Session

from connector.store.models import SignInAttempt


def login_key(login: str) -> str:
    return _digest(f"login:{login.strip().lower()}")


def address_key(address: str) -> str:
    return _digest(f"address:{address}")


def hold(session: Session, keys: Iterable[str], *, forget_before: datetime) -> None:
    """Hold the keys until the transaction ends, so counting and writing a try is one step for every worker: on
    PostgreSQL an advisory lock per key (in one order, so two holders never deadlock); on SQLite the DELETE of
    the keys' expired rows takes the database's write lock. Both delete what has left the window."""
    keys = sorted(set(keys))
    if session.get_bind().dialect.name == "postgresql":
        for key in keys:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
    session.execute(delete(SignInAttempt).where(SignInAttempt.key.in_(keys), SignInAttempt.at < forget_before))


def failures_since(session: Session, keys: Iterable[str], since: datetime) -> dict[str, list[datetime]]:
    """When each key failed (or tried, with its answer still to come) since `since`; a key with none is absent."""
    found: dict[str, list[datetime]] = {}
    rows = session.execute(select(SignInAttempt.key, SignInAttempt.at)
                           .where(SignInAttempt.key.in_(list(keys)), SignInAttempt.at >= since))
    for key, at in rows:
        found.setdefault(key, []).append(at)
    return found


def record_try(session: Session, keys: Iterable[str], *, at: datetime) -> list[int]:
    """A try of each key, counted as a failure unless `succeeded` takes it back; the rows' ids."""
    return [session.execute(insert(SignInAttempt).values(key=key, at=at).returning(SignInAttempt.id)).scalar_one()
            for key in keys]


def succeeded(session: Session, login_key: str, tries: Iterable[int]) -> None:
    """A successful sign-in clears its login's failures and takes its own tries back (not the address's earlier
    failures: others may share the address)."""
    session.execute(delete(SignInAttempt).where(
        or_(SignInAttempt.key == login_key, SignInAttempt.id.in_(list(tries)))))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
