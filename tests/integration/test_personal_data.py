"""Personal data stays out of the logs, even when the database fails in the middle of a write."""

from __future__ import annotations

import json
import logging

from sqlalchemy import text

from tests.conftest import DEMO_TOKEN
from tests.fixtures import sample


def test_a_failed_write_logs_no_phone_or_name(client, runtime, caplog):
    # Break the ledger under the running app: the patient table goes away mid-flight.
    with runtime.engine.begin() as connection:
        connection.execute(text("ALTER TABLE patient RENAME TO patient_gone"))
    try:
        body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
        logger = logging.getLogger("connector")
        logger.addHandler(caplog.handler)
        try:
            with caplog.at_level(logging.DEBUG, logger="connector"):
                response = client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
        finally:
            logger.removeHandler(caplog.handler)
        assert response.status_code == 503
        logged = caplog.text
        assert "could not be stored" in logged
        assert "9161234560" not in logged and "Смирнов" not in logged and "Иван" not in logged
    finally:
        with runtime.engine.begin() as connection:
            connection.execute(text("ALTER TABLE patient_gone RENAME TO patient"))
