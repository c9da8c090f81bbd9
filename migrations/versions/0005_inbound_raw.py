"""inbound events: the exact bytes where text cannot hold them; why a body was refused

Revision ID: 0005
Revises: 0004


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('inbound_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_raw', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_inbound_event_reason_received_at'), ['reason', 'received_at'],
                              unique=False)


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('inbound_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_event_reason_received_at'))
        batch_op.drop_column('reason')
        batch_op.drop_column('body_raw')
