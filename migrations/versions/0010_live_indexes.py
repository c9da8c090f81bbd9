"""partial indexes on the live states: the worker's claims and scans follow the live work, not the history; and
indexes on what a booking's page looks up by

A year of history is a million finished jobs and their attempts; the worker's every-tick queries must cost the
same on it as on a new ledger. Each index below holds only the rows in one live state, and the queries name the
state as a literal (connector.store.live), so every plan, a prepared statement's generic one included, uses it.

Revision ID: 0010
Revises: 0009
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SCHEDULED = sa.text("status = 'scheduled'")
SENDING = sa.text("status = 'sending'")
AWAITING = sa.text("status = 'awaiting_delivery'")
IN_FLIGHT = sa.text("status IN ('queued', 'sent', 'expired') AND provider_message_id IS NOT NULL")


def _partial(name: str, table: str, columns: list[str], where) -> None:
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.drop_index('ix_notification_job_status_due_at', table_name='notification_job')
    _partial('ix_notification_job_due', 'notification_job', ['due_at'], SCHEDULED)
    _partial('ix_notification_job_leased', 'notification_job', ['lease_until'], SENDING)
    _partial('ix_notification_job_deadline', 'notification_job', ['step_deadline'], AWAITING)
    op.drop_index('ix_delivery_attempt_status_created_at', table_name='delivery_attempt')
    _partial('ix_delivery_attempt_in_flight', 'delivery_attempt', ['created_at'], IN_FLIGHT)
    # The warm-up count: today's attempts of one account, a range at the end of the index.
    op.create_index('ix_delivery_attempt_provider_created_at', 'delivery_attempt', ['provider', 'created_at'])
    # What a booking's page and an event's page look up by, on a ledger of millions: the booking's inbound
    # events (partial: the webhook's INSERT, which has no booking yet, does not pay for it), an event's trail.
    _partial('ix_inbound_event_booking_id', 'inbound_event', ['booking_id'], sa.text("booking_id IS NOT NULL"))
    op.create_index('ix_audit_event_inbound_event_id', 'audit_event', ['inbound_event_id'])


def downgrade() -> None:
    op.drop_index('ix_audit_event_inbound_event_id', table_name='audit_event')
    op.drop_index('ix_inbound_event_booking_id', table_name='inbound_event')
    op.drop_index('ix_delivery_attempt_provider_created_at', table_name='delivery_attempt')
    op.drop_index('ix_delivery_attempt_in_flight', table_name='delivery_attempt')
    op.create_index('ix_delivery_attempt_status_created_at', 'delivery_attempt', ['status', 'created_at'])
    op.drop_index('ix_notification_job_deadline', table_name='notification_job')
    op.drop_index('ix_notification_job_leased', table_name='notification_job')
    op.drop_index('ix_notification_job_due', table_name='notification_job')
    op.create_index('ix_notification_job_status_due_at', 'notification_job', ['status', 'due_at'])
