"""The engine and sessions: one engine per process, one session per request or worker tick."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    # hide_parameters: a database error's message would otherwise carry the row's values (phones, names)
    # into the log along with its traceback.
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, hide_parameters=True)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL lets the web process read while the worker writes; foreign keys are off by default in SQLite.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def unreachable(error: BaseException) -> bool:
    """Whether a failed write is the database's fault (retry later: 503) rather than the input's.

    A value the database refuses (too long, a NUL, out of range: DataError, IntegrityError) or a value the
    driver cannot even send (a Python error, maybe wrapped in StatementError) is bad input, and a retry would
    fail the same way. Connection failures, a missing table or a locked file are the database's.
    """
    return isinstance(error, DBAPIError) and not isinstance(error, DataError | IntegrityError)
