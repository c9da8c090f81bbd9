"""The design we did not choose, timed beside ours: one APScheduler 3 `date` job per message in its SQLAlchemyJobStore.

Two figures, each for both designs in the same run and on the same database:
 1. bookings planned per second: N new bookings (a confirmation and two reminders: 3 date jobs in the naive
    design), then the same N bookings moved (naive: remove their 3 jobs, add 3 new ones; ours: the intake
    re-plans through `plan_ours`).
 2. the drain time of a burst of messages all due at one moment, POSTed to bench/dispatch.py's SMS.ru stand-in
    answering at once: naive is a BackgroundScheduler over the SQLAlchemyJobStore with a pool of 32 threads,
    each job POSTing once; ours is one Worker with 32 sends in flight.

Each figure gets a fresh database (a new SQLite file, or a PostgreSQL database created here and dropped after),
so that one figure's leftovers (the confirmations planned due now) are not the next one's work.

    python bench/naive.py [--bookings 2000] [--burst 10000] [--quick] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bookings import apply_bookings  # noqa: E402
from bench.databases import scratch_database  # noqa: E402
from bench.dispatch import start_standin  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.core.model import BookingFacts, Patient, Policy  # noqa: E402
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime  # noqa: E402
from connector.entrypoints.worker import Worker  # noqa: E402
from connector.sources.generic import load_mappings  # noqa: E402
from connector.store.db import make_engine, make_sessionmaker  # noqa: E402
from connector.store.migrate import upgrade  # noqa: E402
from connector.store.models import NotificationJob  # noqa: E402
from connector.tenants import CascadeStep, Tenant  # noqa: E402

CONCURRENCY = 32
TEXT = "Напоминаем о приёме"
OFFSETS = (timedelta(hours=24), timedelta(hours=2))  # with the confirmation: 3 jobs per booking in both designs
_sessions = threading.local()  # one keep-alive session per pool thread, as ours keeps one per account


# --- the naive design -------------------------------------------------------------------------------------


def send_sms(base_url: str, phone: str, message: str) -> None:
    """The naive job: one POST. Stored by reference ("module:send_sms") in each pickled job."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    response = session.post(f"{base_url}/sms/send", data={"api_id": "bench", "to": phone.lstrip("+"),
                                                          "msg": message, "json": "1"}, timeout=10)
    response.raise_for_status()


def naive_scheduler(database_url: str) -> BackgroundScheduler:
    """Started paused: jobs are stored but none runs until `resume()`, as in a web process that only plans.
    misfire_grace_time=None, or APScheduler's default of 1 s would drop most of a burst as missed."""
    store = SQLAlchemyJobStore(engine=make_engine(database_url))  # the project's engine settings (SQLite WAL)
    scheduler = BackgroundScheduler(jobstores={"default": store},
                                    executors={"default": ThreadPoolExecutor(CONCURRENCY)},
                                    job_defaults={"misfire_grace_time": None}, timezone=UTC)
    scheduler.start(paused=True)
    return scheduler


def _add_jobs(scheduler: BackgroundScheduler, booking: BookingFacts, base_url: str, now: datetime) -> None:
    phone = booking.patient.phone or ""
    scheduler.add_job(send_sms, "date", run_date=now, id=f"{booking.external_id}:confirmation",
                      args=(base_url, phone, TEXT))
    for offset in OFFSETS:
        scheduler.add_job(send_sms, "date", run_date=booking.starts_at - offset,
                          id=f"{booking.external_id}:reminder:{offset}", args=(base_url, phone, TEXT))


def plan_naive(scheduler: BackgroundScheduler, bookings: Sequence[BookingFacts], base_url: str, *,
               moved: bool) -> float:
    """Seconds to (re-)plan `bookings`: a move removes the booking's 3 jobs and adds 3 new ones. The job store
    has no batch API: each add and remove is its own transaction."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    for booking in bookings:
        if moved:
            for suffix in ("confirmation", *(f"reminder:{offset}" for offset in OFFSETS)):
                scheduler.remove_job(f"{booking.external_id}:{suffix}")
        _add_jobs(scheduler, booking, base_url, now)
    return time.perf_counter() - started


class _Tally:
    """Counts the jobs APScheduler reports run (or failed, or missed) and notes when the last one did."""

    def __init__(self, expected: int):
        self.expected, self.done, self.failed = expected, 0, 0
        self.finished_at = 0.0
        self.lock, self.all_in = threading.Lock(), threading.Event()

    def hear(self, event: JobExecutionEvent) -> None:
        with self.lock:
            if event.code == EVENT_JOB_EXECUTED:
                self.done += 1
            else:
                self.failed += 1
            if self.done + self.failed == self.expected:
                self.finished_at = time.perf_counter()
                self.all_in.set()


def drain_naive(database_url: str, base_url: str, count: int) -> float:
    """Seconds from the due moment (the paused scheduler resumes: every job is due) until all were POSTed."""
    scheduler = naive_scheduler(database_url)
    try:
        due = datetime.now(UTC)
        for n in range(count):
            scheduler.add_job(send_sms, "date", run_date=due, id=f"burst:{n}", args=(base_url, _phone(n), TEXT))
        tally = _Tally(count)
        scheduler.add_listener(tally.hear, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        started = time.perf_counter()
        scheduler.resume()
        if not tally.all_in.wait(timeout=max(600.0, count / 10)):
            raise RuntimeError(f"naive drain stalled: {tally.done} of {count} sent")
        if tally.failed:
            raise RuntimeError(f"naive drain: {tally.failed} of {count} jobs failed or were missed")
        return tally.finished_at - started
    finally:
        scheduler.shutdown(wait=True)


# --- ours -------------------------------------------------------------------------------------------------


def plan_ours(runtime: Runtime, tenant: Tenant, bookings: Sequence[BookingFacts]) -> float:
    """Seconds for the service to take `bookings` (new or moved: it diffs against the jobs held): stored as the
    web stores webhooks, then applied by the worker's intake."""
    started = time.perf_counter()
    apply_bookings(runtime, tenant, bookings, runtime.clock())
    return time.perf_counter() - started


def drain_ours(runtime: Runtime, tenant: Tenant, count: int) -> float:
    """Seconds for one Worker to send `count` messages already due (confirmations: one per booking)."""
    plan_ours(runtime, tenant, _bookings(count, datetime.now(UTC) + timedelta(days=2)))
    worker = Worker(runtime, concurrency=CONCURRENCY, name="bench-ours")
    try:
        started = time.perf_counter()
        handled = worker.dispatcher.run_until_idle(max_passes=10_000)
        elapsed = time.perf_counter() - started
    finally:
        worker.close()
    if handled != count:
        raise RuntimeError(f"our drain handled {handled} of {count}")
    return elapsed


def ledger(database_url: str, tenant: Tenant) -> Runtime:
    upgrade(database_url)
    engine = make_engine(database_url)
    settings = Settings(database_url, None, "api", "demo", 65536, "WARNING", False)
    return Runtime(settings, {tenant.id: tenant}, load_mappings(MAPPINGS_DIR), engine, make_sessionmaker(engine))


def bench_tenant(base_url: str, offsets: tuple[timedelta, ...]) -> Tenant:
    return Tenant(id="bench", name="Клиника", timezone="Europe/Moscow", webhook_token="x" * 16,
                  policy=Policy(quiet_hours=None, reminder_offsets=offsets),
                  cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                  providers={"smsru": {"base_url": base_url, "api_id": "bench"}})


# --- the run ----------------------------------------------------------------------------------------------


def _phone(n: int) -> str:
    return f"+7916{n:07d}"


def _bookings(count: int, starts_at: datetime) -> list[BookingFacts]:
    return [BookingFacts(external_id=str(n), starts_at=starts_at, patient=Patient(phone=_phone(n), first_name="Иван"))
            for n in range(count)]


@contextmanager
def fresh_database(server_url: str | None, label: str) -> Iterator[str]:
    """A new SQLite file in a temporary folder, or a new PostgreSQL database on `server_url`'s server, dropped."""
    if server_url is None:
        with tempfile.TemporaryDirectory(prefix="bench-naive-") as folder:
            yield f"sqlite:///{folder}/{label}.db"
        return
    with scratch_database(server_url, f"naive_{label}") as url:
        yield url


def planning(server_url: str | None, base_url: str, count: int) -> tuple[list[float], list[float]]:
    """Seconds for [new, moved] bookings: naive's, then ours, on one fresh database."""
    start = datetime.now(UTC) + timedelta(days=2)
    new, moved = _bookings(count, start), _bookings(count, start + timedelta(days=1))
    with fresh_database(server_url, "plan") as url:
        scheduler = naive_scheduler(url)
        try:
            naive = [plan_naive(scheduler, new, base_url, moved=False),
                     plan_naive(scheduler, moved, base_url, moved=True)]
            held = len(scheduler.get_jobs())
        finally:
            # A paused scheduler's shutdown wakes its loop for one last pass, which would submit the jobs due
            # (the confirmations) to the executor just shut down (APScheduler 3.11): empty the store first.
            scheduler.remove_all_jobs()
            scheduler.shutdown(wait=True)
        runtime = ledger(url, bench_tenant(base_url, OFFSETS))
        tenant = runtime.tenants["bench"]
        try:
            ours = [plan_ours(runtime, tenant, new)]
            with runtime.sessions() as session:
                planned = session.scalar(select(func.count()).select_from(NotificationJob))
            ours.append(plan_ours(runtime, tenant, moved))
        finally:
            runtime.engine.dispose()
    if held != 3 * count or planned != 3 * count:  # both designs did the same work: 3 jobs per booking
        raise RuntimeError(f"expected {3 * count} jobs: naive holds {held}, ours planned {planned}")
    return naive, ours


def bursts(server_url: str | None, base_url: str, count: int) -> tuple[float, float]:
    """Drain seconds, naive's then ours, on one fresh database."""
    with fresh_database(server_url, "burst") as url:
        naive = drain_naive(url, base_url, count)
        runtime = ledger(url, bench_tenant(base_url, ()))
        try:
            ours = drain_ours(runtime, runtime.tenants["bench"], count)
        finally:
            runtime.engine.dispose()
    return naive, ours


def report(count: int, naive_plan: list[float], ours_plan: list[float], burst: int, naive: float,
           ours: float) -> None:
    naive_rate, ours_rate = 2 * count / sum(naive_plan), 2 * count / sum(ours_plan)
    print(f"naive (APScheduler SQLAlchemyJobStore): {naive_rate:.1f} bookings planned/s; "
          f"ours: {ours_rate:.1f}/s ({ours_rate / naive_rate:.2f}x)")
    print(f"  {count} new: naive {count / naive_plan[0]:.1f}/s, ours {count / ours_plan[0]:.1f}/s; "
          f"{count} moved: naive {count / naive_plan[1]:.1f}/s, ours {count / ours_plan[1]:.1f}/s")
    verdict = f"{naive / ours:.1f}x faster" if ours <= naive else f"{ours / naive:.1f}x slower"
    print(f"burst of {burst} due at once: naive drained in {naive:.1f} s, ours in {ours:.1f} s ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, help="new bookings, then as many moves (default 2000; --quick 300)")
    parser.add_argument("--burst", type=int, help="messages due at one moment (default 10000; --quick 1000)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a first look or a smoke test")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (its databases are created and dropped here); default: SQLite")
    args = parser.parse_args()
    if args.database_url is not None and not args.database_url.startswith("postgresql"):
        parser.error("--database-url takes a PostgreSQL URL; leave it out for SQLite files in a temporary folder")
    count = args.bookings or (300 if args.quick else 2000)
    burst = args.burst or (1000 if args.quick else 10_000)

    process, base_url = start_standin(0.0)
    try:
        naive_plan, ours_plan = planning(args.database_url, base_url, count)
        naive, ours = bursts(args.database_url, base_url, burst)
    finally:
        process.terminate()
        process.join()
    report(count, naive_plan, ours_plan, burst, naive, ours)


if __name__ == "__main__":
    main()
