"""inbound_event: the parsed event beside the raw body, and what finds the pending ones fast

The web process stores each webhook as a `pending` inbound event in one INSERT; the worker's intake applies
them. Partial indexes follow the pending events only, so a ledger with millions of applied events finds the
few pending ones as fast as a new one. On PostgreSQL a trigger wakes the workers (NOTIFY connector_intake) when
a pending event is stored; the web process itself runs nothing but its INSERT. The indexes on refusals and on
webhook ids become partial too: an accepted webhook without an id no longer pays for them.

Revision ID: 0009
Revises: 0008
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = sa.text("outcome = 'pending'")
REFUSED = sa.text("reason IS NOT NULL")
KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('inbound_event') as batch:
        batch.add_column(sa.Column('parsed', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('source_version', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_inbound_event_pending', 'inbound_event', ['id'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index('ix_inbound_event_pending_key', 'inbound_event', ['tenant_id', 'source', 'external_id'],
                    postgresql_where=PENDING, sqlite_where=PENDING)
    # The webhook's INSERT pays for every index: those only some events need follow only those events.
    op.drop_index('ix_inbound_event_reason_received_at', table_name='inbound_event')
    op.create_index('ix_inbound_event_reason_received_at', 'inbound_event', ['reason', 'received_at'],
                    postgresql_where=REFUSED, sqlite_where=REFUSED)
    op.drop_index('ix_inbound_event_tenant_id_source_idempotency_key', table_name='inbound_event')
    op.create_index('ix_inbound_event_tenant_id_source_idempotency_key', 'inbound_event',
                    ['tenant_id', 'source', 'idempotency_key'], postgresql_where=KEYED, sqlite_where=KEYED)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION connector_intake_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_notify('connector_intake', ''); RETURN NULL; END $$""")
        op.execute("""
            CREATE TRIGGER inbound_event_pending_notify AFTER INSERT ON inbound_event
            FOR EACH ROW WHEN (NEW.outcome = 'pending') EXECUTE FUNCTION connector_intake_notify()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS inbound_event_pending_notify ON inbound_event")
        op.execute("DROP FUNCTION IF EXISTS connector_intake_notify()")
    op.drop_index('ix_inbound_event_tenant_id_source_idempotency_key', table_name='inbound_event')
    op.create_index('ix_inbound_event_tenant_id_source_idempotency_key', 'inbound_event',
                    ['tenant_id', 'source', 'idempotency_key'])
    op.drop_index('ix_inbound_event_reason_received_at', table_name='inbound_event')
    op.create_index('ix_inbound_event_reason_received_at', 'inbound_event', ['reason', 'received_at'])
    op.drop_index('ix_inbound_event_pending_key', table_name='inbound_event')
    op.drop_index('ix_inbound_event_pending', table_name='inbound_event')
    with op.batch_alter_table('inbound_event') as batch:
        batch.drop_column('applied_at')
        batch.drop_column('source_version')
        batch.drop_column('parsed')
