"""ended_session: staff sessions signed out, so a copy of the cookie no longer signs anyone in

Revision ID: 0015
Revises: 0014
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0015'
down_revision: Union[str, Sequence[str], None] = '0014'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'ended_session',
        sa.Column('sid', sa.String(length=32), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sid', name=op.f('pk_ended_session')),
    )


def downgrade() -> None:
    op.drop_table('ended_session')
