"""One worker process's figures on a filled ledger, each beside the same figure on a small reference ledger taken
in the same minutes (bench/backlog.py runs this in a new process per size, so its memory is a worker's).

The figures: the idle dispatch, advance and poll passes, a pass sending 100 due jobs, the intake's rate, the
process's RSS, and the plan PostgreSQL keeps for the claim once psycopg has prepared it. Runs alternate between the
two ledgers (and which goes first), because this machine's other work moves a 1 ms figure by 20 % or more from
one half-minute to the next: taken one size after another, the ratios measured that load, not the ledger.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from psycopg import sql
from sqlalchemy import event

from bench.ledger_fill import TENANT, make_due
from connector.config import Settings
from connector.core.model import BookingFacts, EventAction, Patient, Policy, SourceEvent
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime
from connector.entrypoints.worker import Worker
from connector.sources.generic import load_mappings
from connector.store.db import make_engine, make_sessionmaker
from connector.store.inbound import event_row, store_many
from connector.store.queue import claim_due_jobs
from connector.tenants import CascadeStep, Tenant
from connector.usecases.intake import BATCH, drain

IDLE_RUNS = 20
# Runs before the timed ones: by then psycopg has prepared each statement (from its 5th run) and PostgreSQL has
# chosen between a generic and a custom plan (after 5 more), as in a worker that has run for a minute. Timed
# from the first, the median fell on the border of the two regimes (~1.5 ms, then ~0.8 ms) and wandered.
IDLE_WARMUP = 10
DUE_JOBS, DUE_RUNS = 100, 5


@dataclass(frozen=True)
class Pair:
    value: float  # on the ledger measured
    reference: float  # on the reference ledger, in the same minutes

    @property
    def ratio(self) -> float:
        return self.value / self.reference


@dataclass(frozen=True)
class ClaimPlan:
    top: str  # the plan's first line
    nodes: str  # each level's node, outermost first
    generic: int  # how many executions PostgreSQL planned generically, and how many for their parameters
    custom: int


@dataclass(frozen=True)
class Figures:
    idle_ms: dict[str, Pair]  # dispatch, advance, poll: medians of IDLE_RUNS (after IDLE_WARMUP)
    due_ms: Pair  # medians of DUE_RUNS passes, each sending DUE_JOBS
    intake_per_s: Pair
    booking_ms: Pair  # one booking's page read (connector.store.views.booking_trail: the API and status page)
    rss_mb: float
    peak_rss_mb: float
    claim: ClaimPlan


class Ledger:
    """A worker on one ledger, and the numbers of the bookings it made up (each a new phone)."""

    def __init__(self, database_url: str, base_url: str):
        self.runtime = bench_runtime(database_url, base_url)
        self.worker = Worker(self.runtime, concurrency=32, name="bench")
        self.numbers = count()

    def close(self) -> None:
        self.worker.close()
        self.runtime.engine.dispose()


def measure(reference_url: str, database_url: str, base_url: str, intake: int) -> Figures:
    ledgers = Ledger(database_url, base_url), Ledger(reference_url, base_url)
    try:
        idle = {name: paired(ledgers, lambda ledger, name=name: _idle_ms(ledger, name), IDLE_RUNS, IDLE_WARMUP)
                for name in ("dispatch", "advance", "poll")}
        claim = claim_plan(ledgers[0].runtime)
        due = paired(ledgers, _due_pass_ms, DUE_RUNS, warmup=1)
        for ledger in ledgers:
            _intake_seconds(ledger, 50)
        chunk = min(intake, BATCH)  # the intake's own batches, alternated between the ledgers
        seconds = paired(ledgers, lambda ledger: _intake_seconds(ledger, chunk), max(intake // chunk, 1))
        keys = [_some_bookings(ledger) for ledger in ledgers]
        turn = count()
        booking = paired(ledgers, lambda ledger: _booking_ms(ledger, keys[ledgers.index(ledger)], next(turn)),
                         IDLE_RUNS, IDLE_WARMUP)
        rss, peak = memory_mb()
    finally:
        for ledger in ledgers:
            ledger.close()
    return Figures(idle, due, Pair(chunk / seconds.value, chunk / seconds.reference), booking, rss, peak, claim)


def _some_bookings(ledger: Ledger) -> list[tuple[str, str]]:
    """(source, external id) of bookings spread over the ledger, finished ones included."""
    from sqlalchemy import text

    with ledger.runtime.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(
            "SELECT source, external_id FROM booking TABLESAMPLE SYSTEM (1) LIMIT 100"))] or \
            [tuple(row) for row in connection.execute(text("SELECT source, external_id FROM booking LIMIT 100"))]


def _booking_ms(ledger: Ledger, keys: list[tuple[str, str]], turn: int) -> float:
    """One booking's page as the API and the status page read it: the booking, its jobs, attempts and trail."""
    from connector.store.views import booking_trail

    source, external_id = keys[turn % len(keys)]
    started = time.perf_counter()
    with ledger.runtime.sessions() as session:
        trail = booking_trail(session, tenant_id=TENANT, source=source, external_id=external_id)
    elapsed = time.perf_counter() - started
    if trail is None:
        raise RuntimeError("a sampled booking was not found")
    return elapsed * 1000


def paired(ledgers: tuple[Ledger, Ledger], once: Callable[[Ledger], float], runs: int, warmup: int = 0) -> Pair:
    """Medians of `runs` runs on each ledger, alternating, and alternating which goes first."""
    samples: tuple[list[float], list[float]] = ([], [])
    for run in range(warmup + runs):
        order = (0, 1) if run % 2 == 0 else (1, 0)
        for index in order:
            samples[index].append(once(ledgers[index]))
    return Pair(statistics.median(samples[0][warmup:]), statistics.median(samples[1][warmup:]))


def bench_tenant(base_url: str) -> Tenant:
    """The ledger's tenant: one SMS.ru step (polled: the poll pass has work to look for), no quiet hours."""
    return Tenant(id=TENANT, name="Клиника", timezone="Europe/Moscow", webhook_token="x" * 16,
                  policy=Policy(quiet_hours=None), cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                  providers={"smsru": {"base_url": base_url, "api_id": "bench"}})


def bench_runtime(database_url: str, base_url: str) -> Runtime:
    engine = make_engine(database_url)
    settings = Settings(database_url, None, "api", "demo", 65536, "WARNING", False)
    return Runtime(settings, {TENANT: bench_tenant(base_url)}, load_mappings(MAPPINGS_DIR), engine,
                   make_sessionmaker(engine))


def _idle_ms(ledger: Ledger, name: str) -> float:
    """One pass that finds nothing to do (Worker.advance and .poll; the dispatcher's run_once)."""
    idle_pass = ledger.worker.dispatcher.run_once if name == "dispatch" else getattr(ledger.worker, name)
    started = time.perf_counter()
    done = idle_pass()
    elapsed = time.perf_counter() - started
    if done:
        raise RuntimeError(f"the idle {name} pass did work: {done}")
    return elapsed * 1000


def _due_pass_ms(ledger: Ledger) -> float:
    """DUE_JOBS jobs made due, then one dispatch pass sends them (the stand-in answers at once)."""
    with ledger.runtime.engine.begin() as connection:
        make_due(connection, jobs=DUE_JOBS, now=datetime.now(UTC))
    started = time.perf_counter()
    handled = ledger.worker.dispatcher.run_once()
    elapsed = time.perf_counter() - started
    if handled != DUE_JOBS:
        raise RuntimeError(f"the due pass handled {handled} of {DUE_JOBS}")
    return elapsed * 1000


def _intake_seconds(ledger: Ledger, bookings: int) -> float:
    """New bookings (each a confirmation and two reminders) stored as the web stores them, untimed; the
    intake applying them, timed."""
    now = datetime.now(UTC)
    rows = [event_row(tenant_id=TENANT, source="generic", body="{}", headers={}, now=now,
                      event=SourceEvent(EventAction.UPSERT, facts.external_id, None, facts))
            for facts in (_new_booking(next(ledger.numbers), now) for _ in range(bookings))]
    with ledger.runtime.sessions.begin() as session:
        for start in range(0, len(rows), 1000):
            store_many(session, rows[start:start + 1000])
    started = time.perf_counter()
    result = drain(ledger.runtime)
    elapsed = time.perf_counter() - started
    if result.outcomes != {"applied": bookings}:
        raise RuntimeError(f"the intake settled {dict(result.outcomes)}, expected {bookings} applied")
    return elapsed


def _new_booking(n: int, now: datetime) -> BookingFacts:
    return BookingFacts(external_id=f"new-{n}", starts_at=now + timedelta(days=3, minutes=n % 600),
                        patient=Patient(phone=f"+7915{n:07d}", first_name="Иван"))


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now, and its peak (VmRSS, VmHWM)."""
    status = Path("/proc/self/status").read_text()
    values = {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE).group(1))  # type: ignore[union-attr]
              for key in ("VmRSS", "VmHWM")}
    return values["VmRSS"] / 1024, values["VmHWM"] / 1024


def claim_plan(runtime: Runtime) -> ClaimPlan:
    """The plan of the statement claim_due_jobs sends, as PostgreSQL keeps it once psycopg has prepared it
    (from its 5th run) and the plan cache has had IDLE_RUNS runs to choose a generic plan."""
    sent: list[tuple[str, dict]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many):
        if "SKIP LOCKED" in statement and "notification_job" in statement:
            sent.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", keep)
    try:
        with runtime.sessions() as session:  # one connection: statements are prepared per connection
            for _ in range(IDLE_RUNS):
                claim_due_jobs(session, worker_id="bench-plan", now=runtime.clock(), limit=200)
            driver = session.connection().connection.driver_connection
            plan = _explain_prepared(driver, *sent[-1])
            session.rollback()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", keep)
    return plan


def _explain_prepared(driver, statement: str, parameters: dict) -> ClaimPlan:
    """EXPLAIN EXECUTE of psycopg's prepared statement for `statement`, with the parameters it last ran with."""
    row = driver.execute("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements "
                         "WHERE statement LIKE '%SKIP LOCKED%' AND statement LIKE '%notification_job%'").fetchone()
    if row is None:
        return ClaimPlan("(not prepared)", "", 0, 0)
    name, generic, custom = row
    # psycopg numbers the placeholders in their order of first appearance
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    arguments = sql.SQL(", ").join(sql.Literal(parameters[key]) for key in names)
    lines = [line for (line,) in driver.execute(
        sql.SQL("EXPLAIN EXECUTE {}({})").format(sql.Identifier(name), arguments)).fetchall()]
    nodes = [re.sub(r"\s+\(cost=.*", "", line.strip().removeprefix("->  ")) for line in lines
             if line == lines[0] or line.strip().startswith("->")]
    return ClaimPlan(lines[0], " > ".join(nodes), generic, custom)
