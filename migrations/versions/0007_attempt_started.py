"""started_at on attempts: a queued attempt whose call never began is withdrawn, not unknown

Revision ID: 0007
Revises: 0006


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
    # Attempts queued before this column existed may have been sent: count them as started (unknown).
    op.execute("UPDATE delivery_attempt SET started_at = created_at WHERE status = 'queued'")


def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.drop_column('started_at')
