"""How late the service sends, measured on the Procfile's real processes against an SMS.ru stand-in answering
after 100 ms; three figures, each printed with its target:

 1. steady load: reminders falling due at a steady rate (20/s for 60 s) — p99 of (sent − due) ≤ 2 s;
 2. a burst: 10 000 reminders due at one moment — all sent ≤ 60 s after it;
 3. a moved visit's notice: YCLIENTS webhooks POSTed to the web process (gunicorn), a visit soon moved, so its
    reschedule notice is due at once; 100 of them ~0.2 s apart — p99 from the POST to the send ≤ 3 s.

`sent` is when the stand-in received the message (bench/recording_standin.py, by phone): what left us, not what
our ledger says; the worker's own record (the attempt's `started_at`) is printed beside figure 1 as a
cross-check. Bookings for figures 1 and 2 are fed ahead through the worker's intake (stored as pending events,
bench/bookings.py) with a reminder an hour before each visit, so each one's due time is chosen; the worker
(`python -m connector worker`) and the web (`gunicorn wsgi:app`) run as the Procfile has them, with the deployed
defaults (dispatch tick 1 s; intake every 0.5 s, woken at once by PostgreSQL's NOTIFY). Each run gets its own
database: a new PostgreSQL one, dropped after, or a SQLite file.

    python bench/lateness.py [--quick] [--sqlite | --database-url postgresql+psycopg://…] [--env NAME=VALUE]
                             [--logs DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bookings import store_bookings  # noqa: E402
from bench.lateness_setup import (  # noqa: E402
    OFFSET_SECONDS,
    SECRETS,
    TENANT,
    bench_runtime,
    fresh_database,
    pending_events,
    service_env,
    worker_ready,
    write_tenants,
)
from bench.procfile_web import free_port, serving  # noqa: E402
from bench.procfile_worker import release, working  # noqa: E402
from bench.recording_standin import arrivals, start_recording_standin  # noqa: E402
from connector.core.model import BookingFacts, Patient  # noqa: E402
from connector.entrypoints.bootstrap import Runtime  # noqa: E402
from connector.store.models import Booking, DeliveryAttempt, NotificationJob  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DELAY = 0.1  # the stand-in answers after 100 ms, like a real provider
FEED_FLOOR = 200.0  # bookings/s the intake is assumed to take at least (it takes ~800 on PostgreSQL here)
TEMPLATE = json.loads((ROOT / "tests/samples/yclients/record_create.json").read_text(encoding="utf-8"))


@dataclass
class Run:
    """What the three figures share: the bench's view of the ledger, the stand-in, the web's URL."""

    runtime: Runtime
    standin: str
    web: str
    feed_rate: float = FEED_FLOOR  # bookings/s the intake took in figure 1: sets figure 2's lead


def phone(figure: int, n: int) -> str:
    """Digits as SMS.ru receives them; one prefix per figure (79160…, 79161…, 79162…), so they never mix."""
    return f"7916{figure}{n:06d}"


def p99(values: list[float]) -> float:
    """Nearest rank: the value 99 % of the samples are at or under."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# --- feeding and waiting ----------------------------------------------------------------------------------


def feed(run: Run, label: str, dues: dict[str, float]) -> float:
    """Bookings whose one reminder falls due at each phone's moment, stored as pending events for the worker's
    intake to apply (as the web stores webhooks): the seconds until none is pending."""
    tenant = run.runtime.tenants[TENANT]
    offset = timedelta(seconds=OFFSET_SECONDS)
    bookings = [BookingFacts(external_id=f"{label}-{digits}", patient=Patient(phone=f"+{digits}", first_name="Иван"),
                             starts_at=datetime.fromtimestamp(due, UTC) + offset) for digits, due in dues.items()]
    started = time.time()
    store_bookings(run.runtime, tenant, bookings, datetime.now(UTC))
    while pending_events(run.runtime):
        time.sleep(0.05)
    return time.time() - started


def wait_for(run: Run, prefix: str, expected: int, until: float) -> dict[str, float]:
    """The stand-in's arrivals for `prefix` once `expected` came, or what came by `until` (Unix time)."""
    while True:
        got, _ = arrivals(run.standin, prefix)
        if len(got) >= expected or time.time() > until:
            return got
        time.sleep(0.25)


def fed_note(fed_at: float, due: float) -> str:
    """Said when feeding overran the first due moment: then the figure counts the bench's own setup."""
    return "" if fed_at <= due else f" [fed {fed_at - due:.1f} s after the first due moment: figure unfair]"


# --- the figures ------------------------------------------------------------------------------------------


def steady(run: Run, rate: float, seconds: float) -> str:
    count = int(rate * seconds)
    first = time.time() + 3 + count / FEED_FLOOR
    dues = {phone(0, n): first + n / rate for n in range(count)}
    took = feed(run, "steady", dues)
    run.feed_rate = count / took
    note = fed_note(time.time(), first)
    got = wait_for(run, phone(0, 0)[:5], count, until=first + seconds + 30)
    late = [got[digits] - due for digits, due in dues.items() if digits in got]
    ledger = ledger_lateness(run.runtime, "steady")
    figure = p99(late) if late else math.inf
    return (f"steady {rate:g}/s for {seconds:g} s: p99 (sent − due) {figure:.2f} s (target ≤ 2 s) "
            f"{verdict(figure <= 2 and len(got) == count)}; max {max(late, default=math.inf):.2f} s, "
            f"{len(got)}/{count} sent; the ledger's started_at: p99 {p99(ledger) if ledger else math.inf:.2f} s"
            + note)


def burst(run: Run, count: int) -> str:
    due = time.time() + 3 + 1.5 * count / max(run.feed_rate, FEED_FLOOR)  # a short figure 1 measures latency only
    feed(run, "burst", {phone(1, n): due for n in range(count)})
    note = fed_note(time.time(), due)
    got = wait_for(run, phone(1, 0)[:5], count, until=due + 180)
    last = max(got.values(), default=math.inf) - due
    first = min(got.values(), default=math.inf) - due
    done, pace = len(got) == count, (len(got) - 1) / (last - first) if last > first else math.inf
    return (f"burst of {count} reminders due at one moment: all sent {last:.1f} s after it (target ≤ 60 s) "
            f"{verdict(done and last <= 60)}; first after {first:.2f} s, {len(got)}/{count} sent, "
            f"{pace:.0f} msg/s from first to last" + note)


def moves(run: Run, count: int, spacing: float) -> str:
    """Each record created by webhook (a visit 45 min ahead), applied; then moved 5 min later, one POST every
    `spacing` s: its reschedule notice is due at once."""
    visit = datetime.now(UTC) + timedelta(minutes=45)
    for n in range(count):
        post_record(run, n, "create", visit)
    while pending_events(run.runtime):
        time.sleep(0.05)
    posted: dict[str, float] = {}
    start = time.time()
    for n in range(count):
        time.sleep(max(0.0, start + n * spacing - time.time()))
        posted[phone(2, n)] = time.time()
        post_record(run, n, "update", visit + timedelta(minutes=5))
    got = wait_for(run, phone(2, 0)[:5], count, until=time.time() + 30)
    waits = [got[digits] - at for digits, at in posted.items() if digits in got]
    figure = p99(waits) if waits else math.inf
    return (f"moved visit, webhook to first send: p99 {figure:.2f} s over {count} POSTs {spacing:g} s apart "
            f"(target ≤ 3 s) {verdict(figure <= 3 and len(got) == count)}; "
            f"median {sorted(waits)[len(waits) // 2] if waits else math.inf:.2f} s, {len(got)}/{count} sent")


def post_record(run: Run, n: int, status: str, visit: datetime) -> None:
    """One YCLIENTS record webhook (the sample record, its id, phone and time ours) to the web process."""
    body = copy.deepcopy(TEMPLATE)
    body["status"] = status
    body["resource_id"] = body["data"]["id"] = 5_000_000 + n
    body["data"]["client"]["phone"] = f"+{phone(2, n)}"
    body["data"]["datetime"] = visit.isoformat()
    body["data"]["last_change_date"] = datetime.now(UTC).isoformat()
    answer = requests.post(f"{run.web}/webhooks/yclients/{TENANT}", params={"token": SECRETS["BENCH_WEBHOOK_TOKEN"]},
                           json=body, timeout=10)
    if answer.status_code != 200 or answer.json().get("outcome") != "accepted":
        raise RuntimeError(f"webhook {status} refused: {answer.status_code} {answer.text[:200]}")


def ledger_lateness(runtime: Runtime, label: str) -> list[float]:
    """The cross-check from our own ledger: when each attempt's call began less its job's planned time. An SMS.ru
    send is answered `queued` (code 100), and `sent_at` waits for a receipt, which comes after the run (the
    stand-in sends none): the call's start, `started_at`, is the ledger's moment of sending."""
    sent = func.coalesce(DeliveryAttempt.sent_at, DeliveryAttempt.started_at)
    query = (select(sent, func.coalesce(NotificationJob.planned_at, NotificationJob.due_at))
             .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
             .join(Booking, NotificationJob.booking_id == Booking.id)
             .where(Booking.external_id.like(f"{label}-%"), sent.is_not(None)))
    with runtime.sessions() as session:
        return [(at - due).total_seconds() for at, due in session.execute(query)]


# --- the run ----------------------------------------------------------------------------------------------


def measure(server_url: str | None, logs: Path, overrides: dict[str, str], figures: Callable[[Run], None]) -> None:
    """The stand-in, a fresh database, release, then the worker and the web running while `figures` measure."""
    standin_process, standin = start_recording_standin(DELAY)
    try:
        with fresh_database(server_url, logs) as database_url:
            config = write_tenants(logs, standin)
            env = {**service_env(dict(os.environ), database_url, config, free_port()), **overrides}
            release(env, logs / "release.log")
            runtime = bench_runtime(database_url, config, env)
            try:
                with working(env, logs / "worker.log", lambda: worker_ready(runtime)), \
                        serving("wsgi:app", env, logs / "web.log") as web:
                    figures(Run(runtime, standin, web))
            finally:
                runtime.engine.dispose()
    finally:
        standin_process.terminate()
        standin_process.join()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s of steady load, a burst of 1000, 20 moves")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--database-url", default=POSTGRES,
                        help="a PostgreSQL server: the run's database is created there and dropped after")
    parser.add_argument("--rate", type=float, default=20.0, help="steady load: reminders due per second")
    parser.add_argument("--seconds", type=float, help="steady load's length (default 60; --quick 10)")
    parser.add_argument("--burst", type=int, help="reminders due at one moment (default 10000; --quick 1000)")
    parser.add_argument("--moves", type=int, help="moved-visit webhooks (default 100; --quick 20)")
    parser.add_argument("--spacing", type=float, default=0.2, help="seconds between moved-visit webhooks")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the processes, e.g. WORKER_CONCURRENCY=64 (named in every line)")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs here (default: a temporary folder)")
    args = parser.parse_args()
    if not args.sqlite and not args.database_url.startswith("postgresql"):
        parser.error("--database-url takes a PostgreSQL URL; use --sqlite for a SQLite file")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    args.burst = args.burst or (1000 if args.quick else 10_000)
    args.moves = args.moves or (20 if args.quick else 100)
    return args


def main() -> None:
    args = arguments()
    label = ("sqlite" if args.sqlite else "postgresql") + (f" ({', '.join(args.env)})" if args.env else "")

    def figures(run: Run) -> None:
        for figure in (lambda: steady(run, args.rate, args.seconds), lambda: burst(run, args.burst),
                       lambda: moves(run, args.moves, args.spacing)):
            print(f"{label}: {figure()}", flush=True)

    server, overrides = None if args.sqlite else args.database_url, dict(item.split("=", 1) for item in args.env)
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
        measure(server, args.logs, overrides, figures)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-lateness-") as folder:
            measure(server, Path(folder), overrides, figures)


if __name__ == "__main__":
    main()
