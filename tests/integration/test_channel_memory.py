"""A patient's channel memory (connector.store.ledger.remember_channels) under receipts that come at once, on
PostgreSQL: a fast provider's callbacks for two of one patient's messages both land, none is refused."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.core.model import AttemptStatus
from connector.store.ledger import remember_channels
from connector.store.models import Patient, PatientChannel

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REMEMBER = timedelta(days=30)


@pytest.mark.postgres
def test_two_receipts_of_a_patients_first_delivery_on_a_channel_both_land(postgres_database):
    from tests.conftest import make_runtime, truncate_all

    truncate_all(postgres_database)
    runtime = make_runtime(postgres_database)
    with runtime.sessions.begin() as session:
        patient = Patient(tenant_id="demo", phone="+79161234566", opt_outs=[], created_at=NOW, updated_at=NOW)
        session.add(patient)
        session.flush()
        pid = patient.id
    errors: list[BaseException] = []

    def second_receipt() -> None:
        try:
            with runtime.sessions.begin() as session:
                remember_channels(session, NOW + timedelta(seconds=1), [(pid, "whatsapp", AttemptStatus.DELIVERED)],
                                  REMEMBER)
        except Exception as error:  # whatever it is, the test reports it
            errors.append(error)

    try:
        # The first receipt's transaction holds the new row, uncommitted, while the second one's comes.
        with runtime.sessions.begin() as first:
            remember_channels(first, NOW, [(pid, "whatsapp", AttemptStatus.DELIVERED)], REMEMBER)
            thread = threading.Thread(target=second_receipt)
            thread.start()
            thread.join(0.5)  # the second waits on the first's row: it may not see it before the first commits
        thread.join(10)
        assert not thread.is_alive() and errors == []
        with runtime.sessions() as session:
            rows = session.scalars(select(PatientChannel).where(PatientChannel.patient_id == pid)).all()
        assert [(row.channel, row.last_delivered_at) for row in rows] == [("whatsapp", NOW + timedelta(seconds=1))]
    finally:
        runtime.engine.dispose()
