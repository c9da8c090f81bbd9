"""planned_at on jobs

Revision ID: 0004
Revises: 0003


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    with op.batch_alter_table('notification_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('planned_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE notification_job SET planned_at = due_at")




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('notification_job', schema=None) as batch_op:
        batch_op.drop_column('planned_at')


