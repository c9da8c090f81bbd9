"""Shared fixtures: a real SQLite file and a real PostgreSQL database per test run, migrated by Alembic.

PostgreSQL is `127.0.0.1:5432` (user postgres, trust auth) unless TEST_POSTGRES_URL says otherwise. Locally,
when it is unreachable, its tests skip; with CI=true they fail instead, so CI always runs them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from connector.config import Settings
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime
from connector.sources.generic import load_mappings
from connector.store.db import make_engine, make_sessionmaker
from connector.store.migrate import upgrade
from connector.tenants import Tenant, demo_tenant

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

DEMO_TOKEN = "demo-token-0123456789abcdef"
API_TOKEN = "api-token-0123456789abcdef"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as error:
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL at {POSTGRES_URL}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this test run, dropped at the end."""
    name = f"connector_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate_all(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "TRUNCATE audit_event, delivery_attempt, notification_job, inbound_event, booking, patient_channel, "
            "patient_link, worker_heartbeat, sandbox_callback, sync_state, patient, sign_in_attempt, crm_token "
            "RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """Each test using this runs twice: on a new SQLite file and on the run's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        upgrade(url)
        return url
    url = request.getfixturevalue("postgres_database")
    truncate_all(url)
    return url


def make_settings(database_url: str, **overrides) -> Settings:
    settings = Settings(database_url=database_url, config_path=None, api_token=API_TOKEN, demo_token=DEMO_TOKEN,
                        max_body_bytes=64 * 1024, log_level="WARNING", log_json=False,
                        link_secret="test-link-secret")
    return replace(settings, **overrides)


def make_runtime(database_url: str, tenants: list[Tenant] | None = None, **settings) -> Runtime:
    engine = make_engine(database_url)
    tenants = tenants or [demo_tenant(DEMO_TOKEN)]
    from tests.staff import admin

    return Runtime(make_settings(database_url, **settings), {t.id: t for t in tenants},
                   load_mappings(MAPPINGS_DIR), engine, make_sessionmaker(engine), staff={"admin": admin()})


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    rt = make_runtime(database_url)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def app(runtime: Runtime):
    from connector.web import create_app

    return create_app(runtime)


@pytest.fixture
def client(app):
    return app.test_client()
