"""The worker process: one APScheduler scheduler whose short interval jobs do the periodic work."""

from __future__ import annotations

import logging
import os
import signal
import socket
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler

from connector.logs import configure_logging
from connector.runtime import Runtime

log = logging.getLogger("connector.worker")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(runtime: Runtime) -> None:
    configure_logging(runtime.settings)
    scheduler = BlockingScheduler(timezone=UTC, job_defaults={"max_instances": 1, "coalesce": True})
    scheduler.add_job(lambda: _heartbeat(runtime), "interval", seconds=10, id="heartbeat",
                      next_run_time=datetime.now(UTC))
    signal.signal(signal.SIGTERM, lambda *_: scheduler.shutdown(wait=False))
    log.info("worker started", extra={"fields": {"worker": worker_id()}})
    scheduler.start()


def _heartbeat(runtime: Runtime) -> None:
    log.debug("heartbeat", extra={"fields": {"worker": worker_id()}})
