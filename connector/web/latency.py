"""How long the webhook doors take to answer: a histogram counted in the web process, per door and status class.

The one number /metrics cannot read from the ledger: the ledger knows what came, not how long the answer took.
gunicorn runs several web processes, so under it prometheus-client runs in its multiprocess mode (each process
writes its counts to a file in PROMETHEUS_MULTIPROC_DIR, which gunicorn.conf.py prepares) and /metrics adds the
files up; in one process (tests, `flask run`) the histogram lives in the default registry.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import Histogram

from connector.sources import SOURCES

# An answer is one INSERT: a few milliseconds, on a busy PostgreSQL tens; seconds mean trouble.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

WEBHOOK_SECONDS = Histogram(
    "connector_webhook_request_seconds", "Seconds from a webhook's request to its answer, by source door and "
    "status class (2xx, 4xx, 5xx)", ["source", "status"], buckets=BUCKETS)

_STARTED = "connector_webhook_started"


def init_app(app: Flask) -> None:
    """Time every request the webhooks blueprint serves."""
    app.before_request(_start)
    app.after_request(_observe)


def _start() -> None:
    if request.blueprint == "webhooks":
        g.setdefault(_STARTED, time.perf_counter())


def _observe(response: Response) -> Response:
    started = g.get(_STARTED)
    if started is not None:
        # The door is the URL's own word: only the doors we have are labels, never what a stranger typed.
        source = (request.view_args or {}).get("source")
        door = source if source in SOURCES else "unknown"
        WEBHOOK_SECONDS.labels(door, f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
    return response
