"""How fast one worker drains due jobs, against a bare loop POSTing the same messages with the same session.

A local stand-in speaks SMS.ru's wire format (`POST /sms/send`, json=1), in its own process so that it does
not share our interpreter. Two rounds: the stand-in answering at once (the ratio is the figure: what the
ledger, the cascade and the audit trail cost per message), and answering after 100 ms like a real provider
(messages per second per worker is the figure: what the bounded send pool buys over a serial loop). With a
PostgreSQL URL also two worker processes on one ledger against one (the figure: their ratio, and that no job
was sent twice).

    python bench/dispatch.py [--jobs 2000] [--delay-jobs 1000] [--concurrency 32] [--database-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bookings import apply_bookings  # noqa: E402
from connector.config import Settings  # noqa: E402
from connector.core.model import BookingFacts, Patient, Policy  # noqa: E402
from connector.entrypoints.bootstrap import MAPPINGS_DIR, Runtime  # noqa: E402
from connector.entrypoints.worker import Worker  # noqa: E402
from connector.sources.generic import load_mappings  # noqa: E402
from connector.store.db import make_engine, make_sessionmaker  # noqa: E402
from connector.store.migrate import upgrade  # noqa: E402
from connector.tenants import CascadeStep, Tenant  # noqa: E402
from connector.transport.sessions import new_session  # noqa: E402


def _serve(port_queue, delay: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers and body go as two segments and wait on delayed ACKs
        wbufsize = -1

        def do_POST(self):  # noqa: N802 (the stdlib's name)
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            if delay:
                time.sleep(delay)
            to = form["to"][0]
            body = json.dumps({"status": "OK", "status_code": 100, "balance": 1000.0,
                               "sms": {to: {"status": "OK", "status_code": 100, "sms_id": uuid.uuid4().hex}}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def start_standin(delay: float) -> tuple[multiprocessing.Process, str]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(queue, delay), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{queue.get(timeout=10)}"


def bare_loop(base_url: str, count: int) -> float:
    """The baseline: the same POSTs, one after another, on one session of the kind ours use; messages per second."""
    session = new_session()
    started = time.perf_counter()
    for n in range(count):
        response = session.post(f"{base_url}/sms/send", data={"api_id": "bench", "to": f"7916{n:07d}",
                                                              "msg": "Напоминаем о приёме", "json": "1"}, timeout=10)
        response.raise_for_status()
    return count / (time.perf_counter() - started)


def _runtime(database_url: str, base_url: str) -> Runtime:
    tenant = Tenant(id="bench", name="Клиника", timezone="Europe/Moscow", webhook_token="x" * 16,
                    policy=Policy(quiet_hours=None, reminder_offsets=()),
                    cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                    providers={"smsru": {"base_url": base_url, "api_id": "bench"}})
    engine = make_engine(database_url)
    settings = Settings(database_url, None, "api", "demo", 65536, "WARNING", False)
    return Runtime(settings, {"bench": tenant}, load_mappings(MAPPINGS_DIR), engine, make_sessionmaker(engine))


def _ledger(base_url: str, count: int, database_url: str | None) -> str:
    """A new ledger with `count` confirmations due now; its URL."""
    if database_url is None:
        database_url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        _reset(database_url)
    upgrade(database_url)
    runtime = _runtime(database_url, base_url)
    now = datetime.now(UTC)
    apply_bookings(runtime, runtime.tenants["bench"], [
        BookingFacts(external_id=str(n), starts_at=now + timedelta(days=2),
                     patient=Patient(phone=f"+7916{n:07d}", first_name="Иван")) for n in range(count)], now)
    runtime.engine.dispose()
    return database_url


def _drain(database_url: str, base_url: str, concurrency: int, name: str) -> int:
    runtime = _runtime(database_url, base_url)
    worker = Worker(runtime, concurrency=concurrency, name=name)
    handled = worker.dispatcher.run_until_idle()
    worker.close()
    runtime.engine.dispose()
    return handled


def worker_rate(base_url: str, count: int, database_url: str | None, concurrency: int) -> float:
    """One worker draining `count` due confirmations through an SMS.ru step; messages per second."""
    database_url = _ledger(base_url, count, database_url)
    started = time.perf_counter()
    handled = _drain(database_url, base_url, concurrency, "bench")
    elapsed = time.perf_counter() - started
    assert handled == count, (handled, count)
    return count / elapsed


def workers_rate(base_url: str, count: int, database_url: str, concurrency: int, workers: int
                 ) -> tuple[float, int]:
    """`workers` worker processes on one PostgreSQL ledger; messages per second, and jobs sent more than once."""
    from concurrent.futures import ProcessPoolExecutor

    from sqlalchemy import text

    database_url = _ledger(base_url, count, database_url)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(time.sleep, [0.0] * workers))  # the processes up before the clock starts
        started = time.perf_counter()
        handled = sum(pool.map(_drain, *zip(*[(database_url, base_url, concurrency, f"bench-{n}")
                                              for n in range(workers)], strict=True)))
        elapsed = time.perf_counter() - started
    engine = make_engine(database_url)
    with engine.connect() as connection:
        twice = connection.execute(text("SELECT count(*) FROM (SELECT job_id FROM delivery_attempt GROUP BY job_id "
                                        "HAVING count(*) > 1) AS t")).scalar_one()
    engine.dispose()
    assert handled == count, (handled, count)
    return count / elapsed, int(twice)


def _reset(database_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--delay-jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--postgresql", action="store_true", help="a new database on the local server, dropped after")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 500 and 300 messages")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.delay_jobs = min(args.jobs, 500), min(args.delay_jobs, 300)
    if args.postgresql and not args.database_url:
        from bench.ingest import postgres_database

        with postgres_database(None) as url:
            args.database_url = url
            run(args)
    else:
        run(args)


def run(args: argparse.Namespace) -> None:
    process, url = start_standin(0.0)
    bare = bare_loop(url, args.jobs)
    ours = worker_rate(url, args.jobs, args.database_url, args.concurrency)
    process.terminate()
    print(f"stand-in answering at once, {args.jobs} messages:")
    print(f"  bare loop (one session, serial): {bare:8.1f} msg/s")
    print(f"  one worker (ledger + cascade):   {ours:8.1f} msg/s   ratio {ours / bare:.2f}")

    process, url = start_standin(0.1)
    bare = bare_loop(url, min(args.delay_jobs, 100))
    ours = worker_rate(url, args.delay_jobs, args.database_url, args.concurrency)
    print(f"stand-in answering after 100 ms, {args.delay_jobs} messages:")
    print(f"  bare loop (one session, serial): {bare:8.1f} msg/s")
    print(f"  one worker, {args.concurrency} sends in flight:  {ours:8.1f} msg/s   ratio {ours / bare:.2f}")
    print(f"  a 09:00 burst of 10 000 reminders: {10_000 / ours / 60:.1f} min with one worker, "
          f"{10_000 / bare / 60:.1f} min serially")
    if args.database_url and args.database_url.startswith("postgresql"):
        two, twice = workers_rate(url, args.delay_jobs * 2, args.database_url, args.concurrency, 2)
        one = worker_rate(url, args.delay_jobs * 2, args.database_url, args.concurrency)
        print(f"  two worker processes on PostgreSQL: {two:8.1f} msg/s = {two / one:.2f}x one ({one:.1f}); "
              f"jobs sent twice: {twice}")
    process.terminate()


if __name__ == "__main__":
    main()
