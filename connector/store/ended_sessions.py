"""Staff sessions signed out (connector.web.access): a cookie is signed, not stored, so ending one means
remembering its id until it would have expired anyway."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.store.models import EndedSession


def end(session: Session, sid: str, *, now: datetime, forget_before: datetime) -> None:
    """Remember `sid` as ended; forget those that ended before any session still alive began."""
    session.execute(delete(EndedSession).where(EndedSession.ended_at < forget_before))
    if session.get(EndedSession, sid) is None:
        session.add(EndedSession(sid=sid, ended_at=now))


def has_ended(session: Session, sid: str) -> bool:
    return session.scalar(select(EndedSession.sid).where(EndedSession.sid == sid)) is not None
