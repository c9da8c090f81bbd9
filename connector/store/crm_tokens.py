"""A CRM's OAuth pair kept in the database, rotated by one process at a time (amoCRM: shared/docs/crm.md §1.3).

amoCRM's refresh token is single-use: a refresh gives a new pair and revokes the old refresh token, and a second
refresh with the old one is refused (401 «Token has been revoked»). Two processes refreshing at once would lock
the account out until an administrator re-authorises. So:

- the pair lives in one `crm_token` row per (tenant, source), written in one UPDATE when a refresh succeeds;
- a refresher first takes the row's lease (`refreshing_until`, taken by a conditional UPDATE that only one
  process can win); the others wait a little and re-read the pair the winner stored;
- no transaction is open during the HTTP call: the lease, not a row lock, keeps the others off.

The settings' refresh token seeds the row the first time, and is tried once more when the stored one is refused
(an administrator who re-authorised writes the new one into the tenants file). `DbTokens` is the REST client's
token provider (connector.sources.amocrm_api.TokenProvider).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connector.sources.crm import CrmError
from connector.store.models import CrmToken

__all__ = ["DbTokens", "Grant"]

LEASE = timedelta(seconds=60)  # one refresh call (its timeout is 15 s) fits well inside
MARGIN = timedelta(minutes=5)  # an access token this close to its end is refreshed before use
WAIT = timedelta(seconds=30)  # how long a process waits for another's refresh before giving up (transient)
POLL = 0.2  # seconds between two looks at the row while another process refreshes


class Grant(Protocol):
    """What a refresh call returns (connector.sources.amocrm_api.TokenGrant)."""

    @property
    def access_token(self) -> str: ...

    @property
    def refresh_token(self) -> str: ...

    @property
    def expires_in(self) -> int: ...  # seconds


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DbTokens:
    """A token provider over the `crm_token` row of (tenant_id, source). `refresh(refresh_token)` is the CRM's
    refresh call; it raises CrmError (status_code 401/400 when the refresh token was refused)."""

    def __init__(self, sessions: sessionmaker[Session], tenant_id: str, source: str, *, seed_refresh_token: str,
                 refresh: Callable[[str], Grant], now: Callable[[], datetime] = _utc_now,
                 sleep: Callable[[float], None] = time.sleep):
        self._sessions = sessions
        self._key = (tenant_id, source)
        self._seed = seed_refresh_token
        self._refresh = refresh
        self._now, self._sleep = now, sleep

    def __repr__(self) -> str:
        return f"DbTokens(tenant_id={self._key[0]!r}, source={self._key[1]!r})"

    def bearer(self) -> str:
        row = self._read() or self._seeded()
        if self._fresh(row):
            assert row.access_token is not None
            return row.access_token
        return self._renewed(stale=row.access_token)

    def refreshed(self, after_401: str) -> str:
        row = self._read() or self._seeded()
        if row.access_token != after_401 and self._fresh(row):  # another process refreshed meanwhile
            assert row.access_token is not None
            return row.access_token
        return self._renewed(stale=after_401)

    # --- the rotation ---------------------------------------------------------------------------------------------

    def _renewed(self, stale: str | None) -> str:
        """A new access token: refreshed here under the lease, or the one another process just stored."""
        deadline = self._now() + WAIT
        while True:
            if self._take_lease():
                row = self._read()
                assert row is not None
                if row.access_token != stale and self._fresh(row):  # refreshed between our look and the lease
                    self._release()
                    assert row.access_token is not None
                    return row.access_token
                return self._rotate(row.refresh_token)
            self._sleep(POLL)
            row = self._read()
            if row is not None and row.access_token != stale and self._fresh(row):
                assert row.access_token is not None
                return row.access_token
            if self._now() > deadline:
                raise CrmError(f"{self._key[1]}: another process is refreshing the token and has not finished",
                               transient=True, retry_after=POLL * 10)

    def _rotate(self, refresh_token: str) -> str:
        """Refresh with the stored token (then, if refused, with the settings' one); store the pair; end the lease."""
        try:
            try:
                grant = self._refresh(refresh_token)
            except CrmError as error:
                if error.status_code not in (400, 401) or self._seed == refresh_token:
                    raise
                grant = self._refresh(self._seed)  # an administrator re-authorised: the settings hold a new one
        except BaseException:
            self._release()
            raise
        now = self._now()
        with self._sessions.begin() as session:
            session.execute(update(CrmToken).where(*self._where()).values(
                access_token=grant.access_token, refresh_token=grant.refresh_token,
                expires_at=now + timedelta(seconds=grant.expires_in), refreshing_until=None, updated_at=now))
        return grant.access_token

    def _take_lease(self) -> bool:
        now = self._now()
        with self._sessions.begin() as session:
            taken = session.execute(update(CrmToken).where(
                *self._where(), or_(CrmToken.refreshing_until.is_(None), CrmToken.refreshing_until < now),
            ).values(refreshing_until=now + LEASE))
        return getattr(taken, "rowcount", 0) == 1

    def _release(self) -> None:
        with self._sessions.begin() as session:
            session.execute(update(CrmToken).where(*self._where()).values(refreshing_until=None))

    # --- the row --------------------------------------------------------------------------------------------------

    def _where(self):
        return CrmToken.tenant_id == self._key[0], CrmToken.source == self._key[1]

    def _read(self) -> CrmToken | None:
        with self._sessions() as session:
            return session.scalars(select(CrmToken).where(*self._where())).one_or_none()

    def _seeded(self) -> CrmToken:
        """The first use: the row, holding the settings' refresh token and no access token yet."""
        try:
            with self._sessions.begin() as session:
                session.add(CrmToken(tenant_id=self._key[0], source=self._key[1], access_token=None,
                                     refresh_token=self._seed, updated_at=self._now()))
        except IntegrityError:
            pass  # another process seeded it first
        row = self._read()
        assert row is not None
        return row

    def _fresh(self, row: CrmToken) -> bool:
        if not row.access_token:
            return False
        return row.expires_at is None or row.expires_at - MARGIN > self._now()
