"""The worker intake's throughput: new bookings applied per second by one worker (each a confirmation, two
reminders and their audit rows), beside the per-webhook path it replaced (bench/per_webhook.py), in one run.

    python bench/intake.py [--bookings 5000] [--database-url URL]   (also run by bench/ingest.py)
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.per_webhook import ingest_event  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime  # noqa: E402
from connector.sources.generic import load_mappings  # noqa: E402
from connector.sources.yclients import parse_record_webhook  # noqa: E402
from connector.store.db import make_engine, make_sessionmaker  # noqa: E402
from connector.store.inbound import event_row, store_many  # noqa: E402
from connector.store.migrate import upgrade  # noqa: E402
from connector.tenants import demo_tenant  # noqa: E402
from connector.usecases.intake import drain  # noqa: E402

TEMPLATE = json.loads((ROOT / "tests/samples/yclients/record_create.json").read_text(encoding="utf-8"))


def bodies(first: int, count: int, now: datetime) -> list[dict]:
    """New YCLIENTS records, a visit three days ahead each (so both reminders are planned)."""
    out = []
    for n in range(first, first + count):
        body = copy.deepcopy(TEMPLATE)
        body["resource_id"] = body["data"]["id"] = n
        body["data"]["client"]["phone"] = f"+7917{n:07d}"
        body["data"]["datetime"] = (now + timedelta(days=3, minutes=n % 600)).isoformat()
        body["data"]["last_change_date"] = now.isoformat()
        out.append(body)
    return out


def runtime_for(database_url: str, tenant_id: str) -> Runtime:
    engine = make_engine(database_url)
    tenant = demo_tenant("bench-token-0123456789")
    tenant = replace(tenant, id=tenant_id)
    settings = Settings(database_url, None, "api", "demo", 65536, "WARNING", False)
    return Runtime(settings, {tenant_id: tenant}, load_mappings(MAPPINGS_DIR), engine, make_sessionmaker(engine))


def intake_per_second(database_url: str, count: int, first: int) -> float:
    """Store `count` webhooks as the web does (untimed), then time one worker's intake applying them."""
    runtime = runtime_for(database_url, "bench-intake")
    drain(runtime)  # whatever an earlier part of the run left pending
    now = datetime.now(UTC)
    tenant = runtime.tenants["bench-intake"]
    rows = [event_row(tenant_id=tenant.id, source="yclients", body=json.dumps(body), headers={}, now=now,
                      event=parse_record_webhook(body, default_tz=tenant.timezone))
            for body in bodies(first, count, now)]
    with runtime.sessions.begin() as session:
        for start in range(0, len(rows), 1000):
            store_many(session, rows[start:start + 1000])
    started = time.perf_counter()
    result = drain(runtime)
    elapsed = time.perf_counter() - started
    runtime.engine.dispose()
    assert result.outcomes == {"applied": count}, result.outcomes
    return count / elapsed


def per_webhook_per_second(database_url: str, count: int, first: int) -> float:
    """The path before the intake: each webhook applied in its own transaction as it came."""
    runtime = runtime_for(database_url, "bench-webhook")
    tenant = runtime.tenants["bench-webhook"]
    now = datetime.now(UTC)
    started = time.perf_counter()
    for body in bodies(first, count, now):
        event = parse_record_webhook(body, default_tz=tenant.timezone)
        with runtime.sessions.begin() as session:
            ingest_event(session, tenant=tenant, source="yclients", event=event, body=json.dumps(body), headers={},
                         now=now)
    elapsed = time.perf_counter() - started
    runtime.engine.dispose()
    return count / elapsed


def report(database_url: str, count: int) -> str:
    first = int(time.time()) % 1_000_000 * 100
    ours = intake_per_second(database_url, count, first)
    before = per_webhook_per_second(database_url, max(count // 5, 50), first + count)
    return (f"{database_url.split(':', 1)[0].split('+')[0]}: intake {ours:.0f} new bookings/s applied by one worker; "
            f"the per-webhook path {before:.0f}/s ({ours / before:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bookings", type=int, default=5000)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    upgrade(url)
    print(report(url, args.bookings), flush=True)


if __name__ == "__main__":
    main()
