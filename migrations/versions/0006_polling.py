"""polled_at and next_poll_at on attempts

Revision ID: 0006
Revises: 0004 (0005 once merged with 0005_inbound_raw)


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('polled_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_delivery_attempt_status_created_at', ['status', 'created_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_attempt_status_created_at')
        batch_op.drop_column('next_poll_at')
        batch_op.drop_column('polled_at')
