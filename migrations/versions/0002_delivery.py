"""delivery: patient channels and links, heartbeats, sandbox callbacks

Revision ID: 0002
Revises: 0001


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table('sandbox_callback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_callback'))
    )
    with op.batch_alter_table('sandbox_callback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sandbox_callback_due_at'), ['due_at'], unique=False)

    op.create_table('worker_heartbeat',
    sa.Column('worker_id', sa.String(length=120), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_total', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id', name=op.f('pk_worker_heartbeat'))
    )
    op.create_table('patient_channel',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('not_registered_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('last_delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_channel_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_channel')),
    sa.UniqueConstraint('patient_id', 'channel', name=op.f('uq_patient_channel_patient_id_channel'))
    )
    op.create_table('patient_link',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_patient_link_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_link')),
    sa.UniqueConstraint('tenant_id', 'provider', 'address', name=op.f('uq_patient_link_tenant_id_provider_address'))
    )
    with op.batch_alter_table('patient_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_link_patient_id'), ['patient_id'], unique=False)

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw_status', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('tries', sa.Integer(), nullable=False, server_default='0'))




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.drop_column('tries')
        batch_op.drop_column('raw_status')

    with op.batch_alter_table('patient_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_link_patient_id'))

    op.drop_table('patient_link')
    op.drop_table('patient_channel')
    op.drop_table('worker_heartbeat')
    with op.batch_alter_table('sandbox_callback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sandbox_callback_due_at'))

    op.drop_table('sandbox_callback')

