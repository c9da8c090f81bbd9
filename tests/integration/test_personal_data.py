"""Personal data stays out of the logs, even when the database fails in the middle of a write: the webhook's one
INSERT, or the worker's intake applying the event."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from connector.entrypoints.worker import Worker, _guarded
from tests.conftest import DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import event_of

WEBHOOK = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"


@contextmanager
def table_gone(runtime, table: str) -> Iterator[None]:
    """Break the ledger under the running app: the table goes away mid-flight, and comes back after."""
    with runtime.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {table}_gone"))
    try:
        yield
    finally:
        with runtime.engine.begin() as connection:
            connection.execute(text(f"ALTER TABLE {table}_gone RENAME TO {table}"))


@contextmanager
def connector_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # The connector's logger may not propagate (connector.logs): listen on it directly.
    logger = logging.getLogger("connector")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.DEBUG, logger="connector"):
            yield
    finally:
        logger.removeHandler(caplog.handler)


def assert_no_personal_data(logged: str) -> None:
    assert "9161234560" not in logged and "Смирнов" not in logged and "Иван" not in logged


def record_create() -> dict:
    return json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))


def test_a_failed_store_logs_no_phone_or_name(client, runtime, caplog):
    with table_gone(runtime, "inbound_event"), connector_log(caplog):
        response = client.post(WEBHOOK, json=record_create())
    assert response.status_code == 503  # the database's fault, not the sender's: it may retry
    assert "could not be stored" in caplog.text
    assert_no_personal_data(caplog.text)


def test_a_failed_intake_logs_no_phone_or_name_and_loses_nothing(client, runtime, caplog):
    answer = client.post(WEBHOOK, json=record_create()).get_json()
    assert answer["outcome"] == "accepted", answer
    worker = Worker(runtime, concurrency=1, name="broken-ledger")
    try:
        with table_gone(runtime, "patient"), connector_log(caplog):
            _guarded(worker.intake)()  # as the worker's scheduler runs it: the failure is logged, not raised
        assert "intake failed" in caplog.text
        assert_no_personal_data(caplog.text)
        assert event_of(client, WEBHOOK, answer["inbound_event_id"])["outcome"] == "pending"  # tried again later
        assert worker.intake() == 1  # the ledger is back: the event is applied
    finally:
        worker.close()
    event = event_of(client, WEBHOOK, answer["inbound_event_id"])
    assert event["outcome"] == "applied" and event["booking_id"] is not None, event
