"""`python -m connector replay <id>…`, as support runs it: one line per event, its outcome now, exit 1 while any
is still rejected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from connector.store.ledger import record_inbound
from connector.store.models import InboundEvent
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.fixtures import sample

ROOT = Path(__file__).resolve().parents[2]


def run_cli(database_url: str, *ids: int) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url, "CONNECTOR_DEMO_TOKEN": DEMO_TOKEN,
           "CONNECTOR_API_TOKEN": "api-token-0123456789abcdef", "CONNECTOR_LINK_SECRET": "s" * 16,
           "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "connector", "replay", *map(str, ids)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_rejected_webhook_is_applied_again_from_the_command_line(database_url):
    runtime = make_runtime(database_url)
    body = sample("yclients", "record_create.json").read_bytes()
    with runtime.sessions.begin() as session:
        # what an earlier version refused (a parser bug, since fixed): the body is kept exactly
        rejected = record_inbound(session, tenant_id="demo", source="yclients", body=body, headers={},
                                  now=runtime.clock(), outcome="rejected", error="unprocessable: a parser bug",
                                  reason="unprocessable").id
        stranger = record_inbound(session, tenant_id="demo", source="yclients", body=body, headers={},
                                  now=runtime.clock(), outcome="rejected", error="unauthorized: wrong token",
                                  reason="unauthorized").id
    result = run_cli(database_url, rejected, stranger, 999)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{rejected}\tapplied", result
    assert lines[1].startswith(f"{stranger}\trejected\trefused as unauthorized"), result
    assert lines[2] == "999\tmissing\tno such inbound event", result
    assert result.returncode == 1  # one of them is still rejected
    with runtime.sessions() as session:
        event = session.get(InboundEvent, rejected)
        assert event is not None and event.booking_id is not None and event.error is None
        assert session.scalars(select(InboundEvent.outcome).where(InboundEvent.id == stranger)).one() == "rejected"
    runtime.engine.dispose()
