"""writeback: the outbox of status reports pushed to the booking's CRM (a YCLIENTS record, an amoCRM note, a
Bitrix24 comment, a signed JSON webhook)

Rows are written in the same transaction as the change they report; the worker pushes the oldest unsent row of
each booking and target. The partial index follows the due rows only (connector.store.live), not the history.

Revision ID: 0012
Revises: 0011
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0012'
down_revision: Union[str, Sequence[str], None] = '0011'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

UNSENT = sa.text("status IN ('pending', 'sending')")
DUE = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_table(
        'writeback',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('booking_id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=True),
        sa.Column('target', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('word', sa.String(length=24), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('next_try_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['booking_id'], ['booking.id'], name='fk_writeback_booking_id_booking'),
        sa.ForeignKeyConstraint(['job_id'], ['notification_job.id'], name='fk_writeback_job_id_notification_job'),
        sa.PrimaryKeyConstraint('id', name='pk_writeback'),
    )
    # The worker's claim: the unsent rows, by booking and target (the oldest of each goes first).
    op.create_index('ix_writeback_unsent', 'writeback', ['booking_id', 'target', 'id'],
                    postgresql_where=UNSENT, sqlite_where=UNSENT)
    op.create_index('ix_writeback_due', 'writeback', ['next_try_at'], postgresql_where=DUE, sqlite_where=DUE)
    op.create_index('ix_writeback_tenant_id_status_id', 'writeback', ['tenant_id', 'status', 'id'])


def downgrade() -> None:
    op.drop_index('ix_writeback_tenant_id_status_id', table_name='writeback')
    op.drop_index('ix_writeback_due', table_name='writeback')
    op.drop_index('ix_writeback_unsent', table_name='writeback')
    op.drop_table('writeback')
