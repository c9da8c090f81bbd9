"""early_receipt: status reports kept until their attempt gets its provider id

Revision ID: 0008
Revises: 0007 (temporarily 0006 on branch i13c, until 0007 is merged: the lead fixes the chain)


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'early_receipt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('provider_message_id', sa.String(length=128), nullable=True),
        sa.Column('message_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('raw_status', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('inbound_event_id', sa.Integer(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['inbound_event_id'], ['inbound_event.id'],
                                name='fk_early_receipt_inbound_event_id_inbound_event'),
        sa.PrimaryKeyConstraint('id', name='pk_early_receipt'),
    )
    op.create_index('ix_early_receipt_provider_message_id', 'early_receipt', ['provider_message_id'])
    op.create_index('ix_early_receipt_message_id', 'early_receipt', ['message_id'])
    op.create_index('ix_early_receipt_tenant_id_received_at', 'early_receipt', ['tenant_id', 'received_at'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_early_receipt_tenant_id_received_at', table_name='early_receipt')
    op.drop_index('ix_early_receipt_message_id', table_name='early_receipt')
    op.drop_index('ix_early_receipt_provider_message_id', table_name='early_receipt')
    op.drop_table('early_receipt')
