"""The worker's every-tick queries use the partial indexes on the live states (migration 0010), on PostgreSQL,
with a history of finished jobs beside a handful of live ones, and keep them in a generic plan (what a prepared
statement runs from its sixth execution on). A change that loses an index fails here, not in a year's ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, text

from connector.core.model import Policy
from connector.entrypoints.bootstrap import Accounts
from connector.store.queue import claim_due_jobs, claim_timed_out
from connector.tenants import CascadeStep, Tenant
from connector.usecases.polls import due_questions
from tests.conftest import make_runtime

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
HISTORY = 5000


@pytest.fixture
def ledger(postgres_database):
    from tests.conftest import truncate_all

    truncate_all(postgres_database)
    tenant = Tenant(id="clinic", name="Клиника", timezone="Europe/Moscow", webhook_token="t" * 16, policy=Policy(),
                    cascade=(CascadeStep("sms", "smsru", timedelta(hours=1)),),
                    providers={"smsru": {"base_url": "http://127.0.0.1:9", "api_id": "x"}})
    runtime = make_runtime(postgres_database, [tenant])
    with runtime.engine.begin() as connection:
        connection.execute(text("""
            INSERT INTO notification_job (tenant_id, kind, plan_key, planned_at, due_at, status, cascade_step,
                                          created_at, updated_at)
            SELECT 'clinic', 'reminder', 'reminder@' || n, :past - n * interval '1 minute',
                   :past - n * interval '1 minute', 'delivered', 0, :past, :past
            FROM generate_series(1, :history) AS n"""), {"past": NOW - timedelta(days=30), "history": HISTORY})
        connection.execute(text("""
            INSERT INTO delivery_attempt (job_id, step, channel, provider, message_id, provider_message_id, status,
                                          tries, created_at, sent_at, delivered_at, updated_at)
            SELECT id, 0, 'sms', 'smsru', md5(id::text), 'p' || id, 'delivered', 1, due_at, due_at, due_at, due_at
            FROM notification_job"""))
        connection.execute(text("""
            INSERT INTO notification_job (tenant_id, kind, plan_key, due_at, status, cascade_step, step_deadline,
                                          lease_until, created_at, updated_at)
            SELECT 'clinic', 'reminder', 'live@' || n, :now - interval '1 minute',
                   (ARRAY['scheduled', 'sending', 'awaiting_delivery'])[n % 3 + 1], 0,
                   :now - interval '1 minute', :now - interval '1 minute', :now, :now
            FROM generate_series(1, 9) AS n"""), {"now": NOW})
        connection.execute(text("""
            INSERT INTO booking (tenant_id, source, external_id, starts_at, timezone, state, services, content_hash,
                                 created_at, updated_at)
            SELECT 'clinic', 'generic', 'b' || n, :past, 'Europe/Moscow', 'attended', '[]', md5(n::text), :past, :past
            FROM generate_series(1, :history) AS n"""), {"past": NOW - timedelta(days=30), "history": HISTORY})
        connection.execute(text("""
            INSERT INTO inbound_event (tenant_id, source, received_at, headers, body, body_truncated, external_id,
                                       booking_id, outcome)
            SELECT 'clinic', 'generic', created_at, '{}', '{}', false, external_id, id, 'applied' FROM booking"""))
        connection.execute(text("""
            INSERT INTO audit_event (tenant_id, booking_id, inbound_event_id, at, what)
            SELECT 'clinic', booking_id, id, received_at, 'booking.created' FROM inbound_event"""))
        connection.execute(text("ANALYZE notification_job; ANALYZE delivery_attempt; ANALYZE booking; "
                                "ANALYZE inbound_event; ANALYZE audit_event"))
    yield runtime
    runtime.engine.dispose()


def plans_of(runtime, run: Callable[[], object], generic: bool) -> list[str]:
    """Run the real query and EXPLAIN each statement it sent, with the same parameters."""
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
    plans = []
    with runtime.engine.connect() as connection:
        if generic:
            connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for statement, parameters in sent:
            rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars().all()
            plans.append("\n".join(rows))
    return plans


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
def test_the_claim_walks_the_live_indexes(ledger, generic):
    def claim():
        with ledger.sessions.begin() as session:
            claim_due_jobs(session, worker_id="w", now=NOW, limit=200)
            session.rollback()

    leased, due = plans_of(ledger, claim, generic)
    assert "ix_notification_job_leased" in leased and "Seq Scan" not in leased, leased
    assert "ix_notification_job_due" in due and "Seq Scan" not in due and "Sort" not in due, due


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
def test_the_advance_pass_walks_the_deadline_index(ledger, generic):
    def advance():
        with ledger.sessions.begin() as session:
            claim_timed_out(session, now=NOW, limit=500)
            session.rollback()

    [plan] = plans_of(ledger, advance, generic)
    assert "ix_notification_job_deadline" in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
def test_the_poll_pass_reads_only_messages_in_flight(ledger, generic):
    accounts = Accounts(dict(ledger.tenants), pool_size=2)

    def poll():
        with ledger.sessions() as session:
            due_questions(session, ledger, accounts, NOW)

    [plan] = plans_of(ledger, poll, generic)
    assert "ix_delivery_attempt_in_flight" in plan and "Seq Scan on delivery_attempt" not in plan, plan


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
def test_a_bookings_page_reads_by_index_on_a_ledger_of_history(ledger, generic):
    from connector.store.views import booking_trail, event_trail

    def page():
        with ledger.sessions() as session:
            trail = booking_trail(session, tenant_id="clinic", source="generic", external_id="b4321")
            assert trail is not None and len(trail.inbound) == 1 and len(trail.audit) == 1
            assert event_trail(session, tenant_id="clinic", event_id=trail.inbound[0].id) is not None

    plans = plans_of(ledger, page, generic)
    assert len(plans) >= 5
    for plan in plans:  # the tables that grow with the history (the patients are none here)
        for table in ("booking", "notification_job", "delivery_attempt", "inbound_event", "audit_event"):
            assert f"Seq Scan on {table}" not in plan, plan
