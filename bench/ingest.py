"""How fast the webhook door takes new bookings, against the durable-ack floor, under the Procfile's own web line.

Three servers, one after another, each started by the Procfile's `web` line (gunicorn, its sync workers, the
masking access logger) on the same database, only the app swapped: the empty endpoint (gunicorn and Flask alone),
the floor (one INSERT of the raw body per request: bench/floor_app.py) and the YCLIENTS webhook door
(`wsgi:app`, the demo tenant). wrk POSTs one new record per request to each for the same time
(bench/wrk_load.py). Per database, one line: the three rates and the webhook's as a fraction of the floor's.
SQLite is a new file and PostgreSQL a database made for the run on TEST_POSTGRES_URL's server (as the tests use;
default postgres@127.0.0.1:5432) and dropped after, each migrated by `python -m connector release` first. A
`--database-url` is used instead, as it is: its ledger keeps the run's bookings (record ids drawn at random per run).

    python bench/ingest.py [--duration 10 | --quick] [--connections 16] [--sqlite-only] [--database-url URL]

Any non-2xx answer or socket error is printed, and makes the run say its figures are not valid and exit 1.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.databases import scratch_database  # noqa: E402
from bench.floor_app import FLOOR, create_table  # noqa: E402
from bench.procfile_web import free_port, serving  # noqa: E402
from bench.wrk_load import (  # noqa: E402
    INSTALL_HINT,
    Load,
    LoadError,
    fill,
    record_template,
    run_wrk,
    write_script,
    wrk_path,
)
from connector.store.db import make_engine  # noqa: E402

SAMPLE = ROOT / "tests" / "samples" / "yclients" / "record_create.json"
POSTGRES_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Endpoint:
    name: str
    app: str  # what gunicorn serves, in place of the Procfile's wsgi:app
    path: str
    table: str | None  # where each acknowledged request must have left a row


@dataclass(frozen=True)
class Run:
    """What every server of one run shares: where logs go, the body, the tokens."""

    workdir: Path
    script: Path
    probe_body: str
    token: str
    seconds: int
    connections: int


def endpoints(token: str) -> list[Endpoint]:
    return [Endpoint("empty", "bench.floor_app:app", "/empty", None),
            Endpoint("floor", "bench.floor_app:app", "/floor", FLOOR.name),
            Endpoint("webhook", "wsgi:app", f"/webhooks/yclients/demo?token={token}", "inbound_event")]


def server_env(database_url: str, run: Run) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "CONNECTOR_DEMO_TOKEN": run.token,
           # set, so that no process writes generated secrets under instance/
           "CONNECTOR_API_TOKEN": secrets.token_urlsafe(18), "CONNECTOR_LINK_SECRET": secrets.token_urlsafe(18),
           "PORT": str(free_port()), "WEB_CONCURRENCY": "2"}
    env.pop("CONNECTOR_CONFIG", None)  # the demo tenant, whose token is ours
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the venv's gunicorn and python
    return env


def rows(database_url: str, table: str | None) -> int:
    if table is None:
        return 0
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Figure:
    endpoint: Endpoint
    load: Load
    stored: int  # rows the endpoint's table gained during the load


def measure(endpoint: Endpoint, database_url: str, run: Run) -> Figure:
    """One server, one probe (a body it must answer 200, or the figure would time refusals), then the load."""
    env = server_env(database_url, run)
    with serving(endpoint.app, env, run.workdir / f"{endpoint.name}.log") as base_url:
        probe = requests.post(base_url + endpoint.path, data=run.probe_body.encode(), timeout=30,
                              headers={"Content-Type": "application/json"})
        if probe.status_code != 200:
            raise RuntimeError(f"{endpoint.name} answered the probe {probe.status_code}: {probe.text[:300]}")
        before = rows(database_url, endpoint.table)
        load = run_wrk(base_url + endpoint.path, run.script, seconds=run.seconds, connections=run.connections,
                       log=run.workdir / f"{endpoint.name}.wrk.log")
    return Figure(endpoint, load, rows(database_url, endpoint.table) - before)


def migrate(database_url: str, run: Run) -> None:
    env = server_env(database_url, run)
    done = subprocess.run([sys.executable, "-m", "connector", "release"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"release failed ({done.returncode}): {done.stdout[-500:]}{done.stderr[-1500:]}")
    engine = make_engine(database_url)
    try:
        create_table(engine)  # before two gunicorn workers race to create it
    finally:
        engine.dispose()


def report(name: str, figures: list[Figure]) -> bool:
    """Print each endpoint's details and the figures line; whether the run was clean."""
    clean = True
    for figure in figures:
        load, table = figure.load, figure.endpoint.table
        stored = f", {figure.stored} rows stored" if table else ""
        print(f"  {name} {figure.endpoint.name}: {load.answers} answers in {load.seconds:.1f} s, "
              f"non-2xx {load.non_2xx}, socket errors {load.socket_errors}, p50 {load.p50_ms:.1f} ms, "
              f"p99 {load.p99_ms:.1f} ms{stored}")
        acknowledged = load.answers - load.non_2xx
        # a 200 promises the row is kept: fewer rows than 200s is a lost acknowledgement (more are in-flight ones)
        lost = f", {acknowledged} acknowledged but {figure.stored} stored" if table and figure.stored < acknowledged \
            else ""
        if load.failures or lost:
            clean = False
            print(f"!!! {name} {figure.endpoint.name}: {load.non_2xx} non-2xx answers, {load.socket_errors} socket "
                  f"errors{lost}: THESE FIGURES ARE NOT VALID !!!")
    empty, floor, webhook = (figure.load.rate for figure in figures)
    print(f"{name}: empty endpoint {empty:.0f} req/s; floor (one INSERT) {floor:.0f} req/s; "
          f"webhook {webhook:.0f} req/s = {webhook / floor if floor else 0:.2f}x the floor"
          + ("" if clean else "   !!! NOT VALID: errors above !!!"), flush=True)
    return clean


def intake_rate(database_url: str, quick: bool) -> None:
    """The worker intake's throughput (bench/intake.py), after it applied what the webhook run stored."""
    from bench.intake import report

    print(report(database_url, 500 if quick else 5000), flush=True)


@contextmanager
def postgres_database(given: str | None) -> Iterator[str]:
    """The given database as it is, or a new one on the local server, dropped after."""
    if given:
        yield given
        return
    with scratch_database(POSTGRES_SERVER, "ingest") as url:
        yield url


def new_run(workdir: Path, seconds: int, connections: int) -> Run:
    id_base, phone_base = random.randrange(10**9, 8 * 10**9), random.randrange(10**7)  # new on a reused ledger
    template = record_template(SAMPLE, datetime.now(UTC))
    script = write_script(workdir / "new_record.lua", template, id_base, phone_base)
    return Run(workdir, script, fill(template, id_base, phone_base, 0), secrets.token_urlsafe(18), seconds,
               connections)


def bench_database(database_url: str, run: Run) -> bool:
    """Migrate, measure the three endpoints, print; whether the run was clean."""
    migrate(database_url, run)
    figures = [measure(endpoint, database_url, run) for endpoint in endpoints(run.token)]
    _drop_floor(database_url)  # a given database keeps its ledger (the intake hook reads it), not our table
    return report(make_url(database_url).get_backend_name(), figures)


def _drop_floor(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        FLOOR.drop(engine, checkfirst=True)
    finally:
        engine.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=None, help="seconds of load per endpoint (default 10)")
    parser.add_argument("--quick", action="store_true", help="3 s per endpoint unless --duration says otherwise")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--database-url", default=None,
                        help=f"a PostgreSQL database to use as it is (default: a new one on {POSTGRES_SERVER})")
    args = parser.parse_args(argv)
    args.seconds = args.duration or (3 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if wrk_path() is None:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    databases: list[AbstractContextManager[str]] = [nullcontext(f"sqlite:///{workdir / 'ledger.db'}")]
    if not args.sqlite_only:
        databases.append(postgres_database(args.database_url))
    print(f"wrk: {args.connections} connections, {args.seconds} s per endpoint; each server the Procfile's web line "
          "(gunicorn, 2 sync workers, the masking access log)", flush=True)
    clean = True
    try:
        run = new_run(workdir, args.seconds, args.connections)
        for database in databases:
            with database as url:
                clean &= bench_database(url, run)
                intake_rate(url, args.quick)
    except (LoadError, RuntimeError) as error:
        print(f"!!! the bench stopped: {error} !!!", flush=True)
        clean = False
    except OperationalError as error:
        print(f"!!! a database could not be reached ({error.orig}); --sqlite-only skips PostgreSQL !!!", flush=True)
        clean = False
    if clean:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"!!! the run had errors: the servers' and wrk's logs are kept in {workdir} !!!")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
