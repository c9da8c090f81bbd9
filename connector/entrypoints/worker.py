"""The worker process: one APScheduler scheduler whose short interval jobs do the periodic work.

Never run inside gunicorn. The database is the only source of truth: each run opens its own session, and
any number of workers may run against PostgreSQL (on SQLite, one).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.entrypoints.wakeup import listen_for_intake
from connector.logs import configure_logging
from connector.store.models import WorkerHeartbeat
from connector.usecases.deadlines import advance_timed_out
from connector.usecases.dispatch import Dispatcher
from connector.usecases.early_receipts import settle_held
from connector.usecases.fetching import fetch_batch
from connector.usecases.intake import drain
from connector.usecases.outbox import push_until_idle
from connector.usecases.polls import ask, deadline_questions, due_questions
from connector.usecases.refusals import purge_unauthenticated
from connector.usecases.sandbox_reports import deliver_due_reports
from connector.usecases.writeback_targets import TARGETS

log = logging.getLogger("connector.entrypoints.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, runtime: Runtime, *, concurrency: int = 32, retry_base: float = 0.5, name: str | None = None):
        self.rt = runtime
        self.id = name or worker_id()
        self.accounts = Accounts(dict(runtime.tenants), pool_size=concurrency)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send")
        self.dispatcher = Dispatcher(runtime, self.accounts, self.id, self.pool, retry_base=retry_base, batch=200,
                                     window=concurrency)
        self.started_at = datetime.now(UTC)
        self.sent_total = 0
        self.wake_dispatch: Callable[[], None] | None = None  # set by run_worker: its scheduler runs dispatch now
        self.wake_intake: Callable[[], None] | None = None  # … and the intake, once a CRM's entities are fetched
        self.targets = TARGETS  # write-back target name → factory (connector.usecases.writeback_targets)

    def intake(self) -> int:
        """Apply pending inbound events (connector.usecases.intake); a notice due at once is sent without
        waiting for the next dispatch tick."""
        result = drain(self.rt)
        if result.due_now and self.wake_dispatch is not None:
            self.wake_dispatch()
        return result.settled

    def fetch(self) -> int:
        """Read the entities CRMs' thin webhooks named (connector.usecases.fetching); the intake applies them at
        once."""
        fetched = 0
        for _ in range(50):  # a backlog is fetched batch after batch, the intake woken after each
            counts = fetch_batch(self.rt)
            if not counts:
                break
            fetched += counts["fetched"]
            if counts["fetched"] and self.wake_intake is not None:
                self.wake_intake()
        return fetched

    def reconcile(self) -> int:
        """What CRMs changed since their last pass, for entities whose webhook never came (usecases.reconcile)."""
        from connector.usecases.reconcile import reconcile_due, reconcile_tenant

        found = 0
        for tenant in self.rt.tenants.values():
            for source in reconcile_due(tenant):
                result = reconcile_tenant(self.rt, tenant, source, self.id)
                found += result.stored if result else 0
        return found

    def dispatch(self) -> int:
        handled = self.dispatcher.run_until_idle()
        self.sent_total += handled
        return handled

    def advance(self) -> int:
        """Steps whose deadline passed: providers that can be asked are asked once more first (no transaction
        open meanwhile), so a receipt that is there saves the next channel's message."""
        now = self.rt.clock()
        with self.rt.sessions() as session:
            questions = deadline_questions(session, self.rt, self.accounts, now)
        if questions:
            ask(self.rt, self.accounts, questions, now)
        with self.rt.sessions.begin() as session:
            return advance_timed_out(session, runtime=self.rt, accounts=self.accounts, now=now)

    def deliver_sandbox_reports(self) -> int:
        """The sandbox's status reports, through the same path as a provider's HTTP callback."""
        with self.rt.sessions.begin() as session:
            return deliver_due_reports(session, runtime=self.rt, accounts=self.accounts, now=self.rt.clock())

    def settle_early_receipts(self) -> int:
        """Kept receipts whose attempt has its id now are applied; those nobody took in an hour, ignored."""
        with self.rt.sessions.begin() as session:
            applied, given_up = settle_held(session, runtime=self.rt, accounts=self.accounts, now=self.rt.clock())
        return applied + given_up

    def poll(self) -> int:
        """Ask providers that can be polled about the messages whose next question is due (connector.usecases.polls)."""
        now = self.rt.clock()
        with self.rt.sessions() as session:
            questions = due_questions(session, self.rt, self.accounts, now)
        return ask(self.rt, self.accounts, questions, now) if questions else 0

    def push_writebacks(self) -> int:
        """Push the due write-backs to the clinics' CRMs (connector.usecases.outbox); deliveries never wait on it."""
        return push_until_idle(self.rt, targets=self.targets)

    def sync(self) -> int:
        """The safety-net sync of every tenant whose YCLIENTS source has API credentials."""
        from connector.usecases.sync import sync_due, sync_tenant

        read = 0
        for tenant in self.rt.tenants.values():
            if sync_due(tenant):
                result = sync_tenant(self.rt, tenant, self.id)
                read += result.read if result else 0
        return read

    def purge(self) -> int:
        """Refused bodies nobody vouched for are evidence for a few days, not for ever (connector.usecases.refusals)."""
        with self.rt.sessions.begin() as session:
            return purge_unauthenticated(session, self.rt.clock())

    def heartbeat(self) -> None:
        now = self.rt.clock()
        with self.rt.sessions.begin() as session:
            beat = session.get(WorkerHeartbeat, self.id)
            if beat is None:
                beat = WorkerHeartbeat(worker_id=self.id, started_at=self.started_at)
                session.add(beat)
            beat.beat_at = now
            beat.sent_total = self.sent_total

    def tick(self) -> None:
        """Everything once, in order; tests and the benchmark drive the worker with this."""
        self.fetch()
        self.intake()
        self.deliver_sandbox_reports()
        self.settle_early_receipts()
        self.poll()
        self.advance()
        self.dispatch()
        self.push_writebacks()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class SecondWorkerError(RuntimeError):
    pass


def hold_sqlite_lock(runtime: Runtime):
    """SQLite has no SKIP LOCKED: two workers on one file could send the same job twice, so only one may run."""
    url = runtime.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    import fcntl

    handle = open(f"{url.database}.worker.lock", "w")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise SecondWorkerError(
            f"another worker already runs on {url.database}; on SQLite run one worker (PostgreSQL allows many)"
        ) from error
    return handle


def run_worker(runtime: Runtime) -> None:
    configure_logging(runtime.settings)
    lock = hold_sqlite_lock(runtime)  # noqa: F841 - released when the process ends
    tick = runtime.settings.worker_tick_seconds
    worker = Worker(runtime, concurrency=runtime.settings.worker_concurrency)
    scheduler = BlockingScheduler(timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True,
                                                              "misfire_grace_time": 30})
    now = datetime.now(UTC)
    sync_every = runtime.settings.sync_interval_seconds
    for job, seconds in ((worker.intake, runtime.settings.intake_seconds),
                         (worker.dispatch, runtime.settings.dispatch_seconds),
                         (worker.advance, tick), (worker.deliver_sandbox_reports, tick),
                         (worker.settle_early_receipts, tick), (worker.poll, tick), (worker.heartbeat, 10 * tick),
                         (worker.push_writebacks, tick),
                         (worker.sync, sync_every), (worker.reconcile, sync_every), (worker.fetch, tick),
                         (worker.purge, 3600 * tick)):
        scheduler.add_job(_guarded(job), "interval", seconds=seconds, id=job.__name__, next_run_time=now)
    worker.wake_dispatch = lambda: _run_now(scheduler, "dispatch")
    worker.wake_intake = lambda: _run_now(scheduler, "intake")

    def woken() -> None:  # a pending event was stored: applied at once, or its entity fetched at once
        _run_now(scheduler, "intake")
        _run_now(scheduler, "fetch")

    listener = listen_for_intake(runtime, woken)
    # A stop lets the pass in flight finish (sends are bounded by their timeouts), so no attempt is left
    # "queued" with its outcome unknown; a platform's grace period (30 s on most) covers it.
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=True))
    log.info("worker started", extra={"fields": {"worker": worker.id, "tenants": ",".join(runtime.tenants)}})
    try:
        scheduler.start()
    finally:
        if listener is not None:
            listener.stop()
        worker.close()


def _run_now(scheduler: BlockingScheduler, job_id: str) -> None:
    """Bring a periodic job's next run forward to now (skipped by APScheduler if it is running: it then
    finds the new work itself, since its passes go on until nothing is left)."""
    try:
        scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
    except Exception:  # the scheduler is stopping
        log.debug("could not wake %s", job_id)


def _guarded(job):
    def run():
        try:
            job()
        except Exception:  # the database may be away for a while; the next run tries again
            log.exception("%s failed", job.__name__)

    run.__name__ = job.__name__
    return run
