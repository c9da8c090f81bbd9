"""The ledger-size benchmark (issue 12): does a worker stay as fast, and as small, when the ledger grows?

For each size — that many jobs scheduled in the future, plus `--history` finished ones (delivered, one delivered
attempt each, their trail) — the ledger is filled with bulk SQL (bench/ledger_fill.py), vacuumed and analysed (this
server runs no autovacuum) and checkpointed. Then a new worker process (bench/worker_passes.py) times its idle
dispatch, advance and poll passes (median of 20), a pass sending 100 due jobs through bench/dispatch.py's SMS.ru
stand-in answering at once (median of 5), the intake applying 1 000 new bookings, and reads its RSS and the claim's
plan as a prepared statement.

Each figure's ratio is to the same figure on a reference ledger — the smallest size, with no history — refilled
for each size in a second database and measured alongside, runs alternating: this machine's other work moves a
1 ms figure by 20 % and more within a minute, which sizes measured one after the other would take for the
ledger's doing. The smallest size's own line is then the noise floor (and, with `--history`, the history's cost).

PostgreSQL only: the databases are created on `--server-url` for the run and dropped after; with `--database-url`
the sized ledgers go there instead (migrated; its ledger tables emptied before each size and left filled after).

    python bench/backlog.py [--sizes 1000,100000,1000000] [--history N] [--intake 1000] [--quick]
                            [--server-url postgresql+psycopg://…] [--database-url postgresql+psycopg://…]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.databases import scratch_database  # noqa: E402
from bench.dispatch import start_standin  # noqa: E402
from bench.ledger_fill import FUTURE, HISTORY, TABLES, empty, fill  # noqa: E402
from bench.worker_passes import Figures, measure  # noqa: E402
from connector.store.db import make_engine  # noqa: E402
from connector.store.migrate import upgrade  # noqa: E402

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WITHIN = 1.2  # the idle and due passes across sizes, and the intake against the smallest ledger
RSS_LIMIT_MB = 150


def main() -> None:
    args = _arguments()
    sizes = sorted(int(size) for size in (args.sizes or ("1000,20000" if args.quick else "1000,100000,1000000"))
                   .split(","))
    history = args.history if args.history is not None else (20_000 if args.quick else 0)
    process, base_url = start_standin(0.0)
    missed: list[str] = []
    try:
        with ledger_database(args.server_url, args.database_url) as url, \
                ledger_database(args.server_url, None) as reference_url:
            for database in (url, reference_url):
                upgrade(database)
            print(f"ratios: to a reference ledger of {sizes[0]} future jobs and no history, measured alongside")
            for size in sizes:
                figures = run_size((reference_url, sizes[0]), url, base_url, size, history, args.intake)
                missed += report(size, figures, args.intake)
    finally:
        process.terminate()
        process.join()
    print(f"targets missed: {', '.join(missed)}" if missed else "all targets met", flush=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", help="future jobs per ledger, comma-separated (default 1000,100000,1000000; "
                                        "--quick 1000,20000)")
    parser.add_argument("--history", type=int, help="finished jobs added to each ledger (default 0; --quick 20000)")
    parser.add_argument("--intake", type=int, default=1000, help="new bookings the timed intake applies")
    parser.add_argument("--quick", action="store_true", help="CI-sized: small ledgers, some history")
    parser.add_argument("--server-url", default=SERVER, help="where this run's database is created and dropped")
    parser.add_argument("--database-url", help="a PostgreSQL database to use instead (its ledger is emptied)")
    args = parser.parse_args()
    for url in (args.server_url, args.database_url):
        if url is not None and not url.startswith("postgresql"):
            parser.error("the ledger-size benchmark runs on PostgreSQL: give a postgresql+psycopg:// URL")
    return args


@contextmanager
def ledger_database(server_url: str, database_url: str | None) -> Iterator[str]:
    """The given database, or a new one on the server for this run, dropped after (also on errors)."""
    if database_url is not None:
        yield database_url
        return
    with scratch_database(server_url, "backlog") as url:
        yield url


def run_size(reference: tuple[str, int], url: str, base_url: str, size: int, history: int, intake: int
             ) -> Figures:
    """Fill the ledger to this size and the reference afresh, then measure both in a new worker process (a
    worker's memory, a cold start)."""
    fill_s, vacuum_s = fill_ledger(url, size, history)
    print(f"ledger: {size} future jobs + {history} finished: filled in {fill_s:.1f} s, vacuum analyze "
          f"and checkpoint {vacuum_s:.1f} s", flush=True)
    fill_ledger(reference[0], reference[1], 0)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, reference[0], url, base_url, intake).result()


def fill_ledger(url: str, size: int, history: int) -> tuple[float, float]:
    """Seconds to fill (in one transaction), and to vacuum and analyse what was filled (the visibility map and
    statistics a ledger grown over months has), then to write it out: a checkpoint of the fill's WAL must not land
    in the middle of the figures."""
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            now = datetime.now(UTC)
            empty(connection)
            fill(connection, HISTORY, jobs=history, now=now)
            fill(connection, FUTURE, jobs=size, now=now)
        filled = time.perf_counter()
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text(f"VACUUM (ANALYZE) {', '.join(TABLES)}"))
            connection.execute(text("CHECKPOINT"))
        return filled - started, time.perf_counter() - filled
    finally:
        engine.dispose()


def report(size: int, figures: Figures, intake: int) -> list[str]:
    """Print one size's figures beside their ratios to the reference's; the targets it missed."""
    lines = [(f"idle {name} pass", pair) for name, pair in figures.idle_ms.items()]
    lines.append(("pass sending 100 due jobs", figures.due_ms))
    lines.append(("a booking's page (API)", figures.booking_ms))
    missed = []
    for label, pair in lines:
        ok = pair.ratio <= WITHIN
        print(f"  {label:<28}{pair.value:9.2f} ms  {pair.ratio:5.2f}x (reference {pair.reference:.2f} ms)   "
              f"target <= {WITHIN}x  {_verdict(ok)}")
        missed += [] if ok else [f"{label} at {size}"]
    rate = figures.intake_per_s
    ok = rate.ratio >= 1 / WITHIN
    print(f"  {f'intake, {intake} new bookings':<28}{rate.value:9.0f} /s  {rate.ratio:5.2f}x (reference "
          f"{rate.reference:.0f} /s)   target >= {1 / WITHIN:.2f}x (within {WITHIN}x)  {_verdict(ok)}")
    missed += [] if ok else [f"intake at {size}"]
    ok = figures.rss_mb <= RSS_LIMIT_MB
    print(f"  {'worker RSS':<28}{figures.rss_mb:9.0f} MB  (peak {figures.peak_rss_mb:.0f} MB)   "
          f"target <= {RSS_LIMIT_MB} MB  {_verdict(ok)}")
    missed += [] if ok else [f"RSS at {size}"]
    claim = figures.claim
    print(f"  claim plan after 20 runs ({claim.custom} custom, {claim.generic} generic): {claim.top}")
    print(f"    {claim.nodes}", flush=True)
    return missed


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


if __name__ == "__main__":
    main()
