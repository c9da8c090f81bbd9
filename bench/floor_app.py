"""The references bench/ingest.py measures the webhook door against: the least a web process can do per request.

Served by the Procfile's own web line with `wsgi:app` swapped for `bench.floor_app:app` (from the repository root),
so the only difference from the webhook door is what the view does:

- `POST /floor` — the durable-ack floor: the raw body stored in one INSERT (one transaction) into `bench_floor`,
  then 200. No door that keeps what it is sent before answering can be faster on the same database.
- `POST /empty` — 200 {"ok": true}, touching nothing: what gunicorn, Flask and the access log cost alone.
- `GET /healthz` — 200 once the worker is up.

DATABASE_URL says where (the service's default, SQLite under instance/, when unset); the table is created when
missing. The engine is the service's own (`connector.store.db.make_engine`: WAL and the same pool), so the floor
runs with the options the webhook runs with.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, request
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, Text, insert, inspect
from sqlalchemy.exc import DBAPIError

from connector.config import INSTANCE
from connector.store.db import make_engine

METADATA = MetaData()
FLOOR = Table(
    "bench_floor", METADATA,
    Column("id", Integer, primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),  # as inbound_event.body keeps it: the body as text
)


def create_table(engine: Engine) -> None:
    try:
        METADATA.create_all(engine)
    except DBAPIError:
        # Two gunicorn workers creating it at once: the one that lost the race finds it made.
        if not inspect(engine).has_table(FLOOR.name):
            raise


def create_app(database_url: str | None = None) -> Flask:
    engine = make_engine(database_url or os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE / 'connector.db'}")
    create_table(engine)
    app = Flask(__name__)

    @app.post("/floor")
    def floor():
        with engine.begin() as connection:
            connection.execute(insert(FLOOR).values(received_at=datetime.now(UTC),
                                                    body=request.get_data(as_text=True)))
        return {"ok": True}

    @app.post("/empty")
    def empty():
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    return app


def __getattr__(name: str) -> Flask:
    # gunicorn looks `app` up by name in each worker: the app (and its engine) is built then, not when
    # bench/ingest.py imports this module for its table.
    if name == "app":
        return create_app()
    raise AttributeError(name)
