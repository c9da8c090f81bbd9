"""amoCRM's single-use refresh token, rotated through the database (connector.store.crm_tokens) against a stand-in
that refuses a refresh token used once already, as amoCRM does: 401 {"hint": "Token has been revoked"}."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from werkzeug import Request, Response

from connector.sources.amocrm_api import AmocrmApi
from connector.sources.amocrm_fetch import tokens_for
from connector.sources.amocrm_settings import AmocrmOAuth, AmocrmSource
from connector.sources.crm import CrmError
from connector.store.crm_tokens import DbTokens
from connector.store.db import make_engine, make_sessionmaker
from connector.store.models import CrmToken

CLIENT = {"client_id": "client-1", "client_secret": "secret-1", "redirect_uri": "https://connector.example/amo"}


class OAuthServer:
    """amoCRM's token endpoint: each refresh token works once; a refresh takes `delay` seconds."""

    def __init__(self, httpserver, valid: str = "refresh-0", delay: float = 0.0):
        self.valid = {valid}
        self.delay = delay
        self.calls: list[str] = []
        self.issued = 0
        self.lock = threading.Lock()
        httpserver.expect_request("/oauth2/access_token", method="POST").respond_with_handler(self.handle)
        httpserver.expect_request("/api/v4/leads/24681357").respond_with_handler(self.lead)

    def handle(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        assert {key: body[key] for key in CLIENT} == CLIENT and body["grant_type"] == "refresh_token"
        time.sleep(self.delay)
        with self.lock:
            self.calls.append(body["refresh_token"])
            if body["refresh_token"] not in self.valid:
                return Response(json.dumps({"title": "Unauthorized", "status": 401,
                                            "hint": "Token has been revoked"}), status=401,
                                content_type="application/json")
            self.valid.discard(body["refresh_token"])
            self.issued += 1
            self.valid.add(f"refresh-{self.issued}")
            self.access = f"access-{self.issued}"
        return Response(json.dumps({"token_type": "Bearer", "expires_in": 86400, "access_token": self.access,
                                    "refresh_token": f"refresh-{self.issued}"}), content_type="application/json")

    def lead(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {getattr(self, 'access', None)}":
            return Response(json.dumps({"title": "Unauthorized", "status": 401}), status=401,
                            content_type="application/problem+json")
        return Response(json.dumps({"id": 24681357, "updated_at": 1795766400}), content_type="application/hal+json")


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"clinic-{uuid.uuid4().hex[:8]}"  # PostgreSQL's database is shared by the run: a row of our own


def settings(httpserver, refresh_token: str = "refresh-0") -> AmocrmSource:
    return AmocrmSource(subdomain="clinic", base_url=httpserver.url_for("/"), timeout=5,
                        oauth=AmocrmOAuth(**CLIENT, refresh_token=refresh_token))


def provider(httpserver, sessions, tenant, refresh_token: str = "refresh-0") -> DbTokens:
    tokens = tokens_for(settings(httpserver, refresh_token), sessions, tenant)
    assert isinstance(tokens, DbTokens)
    return tokens


def stored(sessions, tenant) -> CrmToken:
    with sessions() as session:
        return session.scalars(select(CrmToken).where(CrmToken.tenant_id == tenant)).one()


def test_the_first_use_refreshes_once_and_stores_the_new_pair(httpserver, sessions, tenant):
    server = OAuthServer(httpserver)
    tokens = provider(httpserver, sessions, tenant)

    assert tokens.bearer() == "access-1"
    assert tokens.bearer() == "access-1"  # still fresh: no second refresh
    assert server.calls == ["refresh-0"]
    row = stored(sessions, tenant)
    assert (row.source, row.access_token, row.refresh_token, row.refreshing_until) == (
        "amocrm", "access-1", "refresh-1", None)
    assert row.expires_at is not None and row.expires_at > datetime.now(UTC) + timedelta(hours=23)


def test_the_next_refresh_uses_the_rotated_token_not_the_settings_one(httpserver, sessions, tenant):
    server = OAuthServer(httpserver)
    provider(httpserver, sessions, tenant).bearer()
    with sessions.begin() as session:  # the access token ran out
        session.execute(update(CrmToken).where(CrmToken.tenant_id == tenant)
                        .values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))

    assert provider(httpserver, sessions, tenant).bearer() == "access-2"  # a new process, same row
    assert server.calls == ["refresh-0", "refresh-1"]  # refresh-0 was never sent twice


def test_a_401_on_a_call_refreshes_once_and_the_call_is_asked_again(httpserver, sessions, tenant):
    server = OAuthServer(httpserver)
    tokens = provider(httpserver, sessions, tenant)
    tokens.bearer()
    server.access = "access-revoked-by-amocrm"  # amoCRM stopped taking access-1 before its time
    server.issued = 1

    api = AmocrmApi(httpserver.url_for("/"), tokens, timeout=5, sleep=lambda _: None, clock=lambda: 0.0)
    assert api.lead("24681357") == {"id": 24681357, "updated_at": 1795766400}
    assert server.calls == ["refresh-0", "refresh-1"] and stored(sessions, tenant).access_token == "access-2"


def test_after_another_process_refreshed_a_401_takes_its_token_without_a_call(httpserver, sessions, tenant):
    server = OAuthServer(httpserver)
    first, second = provider(httpserver, sessions, tenant), provider(httpserver, sessions, tenant)
    old = first.bearer()
    assert first.refreshed(after_401=old) == "access-2"  # process one found access-1 refused and refreshed

    assert second.refreshed(after_401=old) == "access-2"  # process two, refused with access-1 too
    assert server.calls == ["refresh-0", "refresh-1"]


def test_two_refreshers_at_once_make_one_refresh_call_and_both_get_the_new_token(httpserver, database_url, tenant):
    server = OAuthServer(httpserver, delay=0.5)  # slow enough for the second to find the lease taken
    engines = [make_engine(database_url) for _ in range(2)]  # two processes: two pools
    providers = [provider(httpserver, make_sessionmaker(engine), tenant) for engine in engines]
    results: list[str] = []
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def run(tokens: DbTokens) -> None:
        start.wait()
        try:
            results.append(tokens.bearer())
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(tokens,)) for tokens in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.dispose()

    assert failures == [] and results == ["access-1", "access-1"]
    assert server.calls == ["refresh-0"]


def test_a_refused_stored_token_falls_back_to_a_new_one_in_the_settings(httpserver, sessions, tenant):
    server = OAuthServer(httpserver)
    provider(httpserver, sessions, tenant).bearer()
    server.valid = {"refresh-reissued"}  # the pair was revoked; an administrator re-authorised
    with sessions.begin() as session:
        session.execute(update(CrmToken).where(CrmToken.tenant_id == tenant).values(access_token=None))

    assert provider(httpserver, sessions, tenant, refresh_token="refresh-reissued").bearer() == "access-2"
    assert server.calls == ["refresh-0", "refresh-1", "refresh-reissued"]
    assert stored(sessions, tenant).refresh_token == "refresh-2"


def test_a_revoked_pair_is_a_refusal_and_leaves_no_lease_behind(httpserver, sessions, tenant):
    server = OAuthServer(httpserver, valid="someone-else's")
    tokens = provider(httpserver, sessions, tenant)

    with pytest.raises(CrmError) as caught:
        tokens.bearer()

    assert not caught.value.transient and caught.value.status_code == 401
    assert "Token has been revoked" in str(caught.value) and "refresh-0" not in str(caught.value)
    assert server.calls == ["refresh-0"]  # the settings' token is the stored one: not tried twice
    assert stored(sessions, tenant).refreshing_until is None
    server.valid = {"refresh-0"}  # the next try may refresh at once
    assert tokens.bearer() == "access-1"


def test_a_waiter_gives_up_transiently_while_another_holds_the_lease(httpserver, sessions, tenant):
    OAuthServer(httpserver)
    clock = [datetime(2026, 12, 3, 9, 0, tzinfo=UTC)]

    def tick(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)

    tokens = DbTokens(sessions, tenant, "amocrm", seed_refresh_token="refresh-0", refresh=lambda _: None,  # type: ignore[arg-type,return-value]
                      now=lambda: clock[0], sleep=tick)
    with sessions.begin() as session:  # another process took the lease a moment ago and is still at it
        session.add(CrmToken(tenant_id=tenant, source="amocrm", refresh_token="refresh-0", updated_at=clock[0],
                             refreshing_until=clock[0] + timedelta(seconds=60)))

    with pytest.raises(CrmError) as caught:
        tokens.bearer()
    assert caught.value.transient
