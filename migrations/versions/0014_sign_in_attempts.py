"""sign_in_attempt: failed sign-ins to the status pages, counted in a sliding window by every web worker

Revision ID: 0014
Revises: 0013
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0014'
down_revision: Union[str, Sequence[str], None] = '0013'  # after the outbox's 0012 and 0013
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'sign_in_attempt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_attempt')),
    )
    op.create_index('ix_sign_in_attempt_key_at', 'sign_in_attempt', ['key', 'at'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_attempt_key_at', table_name='sign_in_attempt')
    op.drop_table('sign_in_attempt')
