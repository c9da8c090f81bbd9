"""What bench/lateness.py runs the service against: a database of its own, a tenants file with one clinic whose
cascade is a single SMS.ru step pointing at the recording stand-in, the processes' environment, and the bench's
own view of the ledger (to feed bookings through the intake and to read the worker's heartbeat and sends).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from bench.databases import scratch_database
from connector.config import Settings
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime
from connector.sources.generic import load_mappings
from connector.store.db import make_engine, make_sessionmaker
from connector.store.models import InboundEvent, WorkerHeartbeat
from connector.tenants import load_tenants

TENANT = "bench"
OFFSET_SECONDS = 3600  # the one reminder, an hour before the visit: a booking's due time is its start less this
# No confirmation (a booking fed ahead must send nothing until its reminder), no quiet hours (the run may fall
# at night), one SMS.ru step whose hour-long timeout puts its first status question after the run.
TENANTS = """
tenants:
  - id: {tenant}
    name: Клиника «Бенч»
    timezone: Europe/Moscow
    webhook_token: ${{BENCH_WEBHOOK_TOKEN}}
    quiet_hours: null
    reminders: [PT{offset}S]
    notices: {{confirmation: false, reschedule: true, cancellation: true}}
    cascade:
      - {{channel: sms, provider: smsru, timeout: PT1H}}
    providers:
      smsru: {{base_url: "{standin}", api_id: "${{BENCH_SMSRU_API_ID}}"}}
    sources:
      yclients: {{}}
      generic: {{mapping: generic}}
"""
SECRETS = {"BENCH_WEBHOOK_TOKEN": "bench-webhook-token-0123456789", "BENCH_SMSRU_API_ID": "bench-api-id",
           "CONNECTOR_API_TOKEN": "bench-api-token-0123456789", "CONNECTOR_DEMO_TOKEN": "bench-demo-token-01234",
           "CONNECTOR_LINK_SECRET": "bench-link-secret"}


@contextmanager
def fresh_database(server_url: str | None, folder: Path) -> Iterator[str]:
    """A SQLite file in `folder` (server_url None), or a new PostgreSQL database on that server, dropped after."""
    if server_url is None:
        yield f"sqlite:///{folder / 'lateness.db'}"
        return
    with scratch_database(server_url, "lateness") as url:
        yield url


def write_tenants(folder: Path, standin_url: str) -> Path:
    path = folder / "tenants.yaml"
    path.write_text(TENANTS.format(tenant=TENANT, offset=OFFSET_SECONDS, standin=standin_url), encoding="utf-8")
    return path


def service_env(base: dict[str, str], database_url: str, config: Path, port: int) -> dict[str, str]:
    """The Procfile processes' environment: the bench's database and tenants file, the defaults for the rest
    (WORKER_TICK_SECONDS, WORKER_INTAKE_SECONDS, WORKER_CONCURRENCY as deployed), the Procfile's 2 web workers."""
    env = {key: value for key, value in base.items() if not key.startswith(("WORKER_", "CONNECTOR_"))}
    env.update(SECRETS, DATABASE_URL=database_url, CONNECTOR_CONFIG=str(config), PORT=str(port),
               WEB_CONCURRENCY="2", PYTHONUNBUFFERED="1", LOG_LEVEL="INFO")
    env["PATH"] = f"{Path(sys.executable).parent}:{base.get('PATH', '')}"  # the venv's python and gunicorn
    return env


def bench_runtime(database_url: str, config: Path, env: dict[str, str]) -> Runtime:
    """The bench's own view of the ledger, with the tenants the processes load."""
    engine = make_engine(database_url)
    settings = Settings(database_url, str(config), SECRETS["CONNECTOR_API_TOKEN"], "demo", 65536, "WARNING", False)
    return Runtime(settings, load_tenants(config, env), load_mappings(MAPPINGS_DIR), engine,
                   make_sessionmaker(engine))


def worker_ready(runtime: Runtime) -> bool:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(WorkerHeartbeat)) > 0


def pending_events(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(InboundEvent)
                              .where(InboundEvent.outcome == "pending")) or 0
