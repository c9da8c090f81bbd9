"""crm_token: a tenant's OAuth pair for a CRM (amoCRM), rotated atomically, with the lease of its one refresher

amoCRM's refresh token is single-use: whoever refreshes must store the new pair before anyone else tries, or the
account is locked out until an administrator re-authorises. So the pair lives in the database, not in a file.

Revision ID: 0013
Revises: 0012
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0013'
down_revision: Union[str, Sequence[str], None] = '0012'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'crm_token',
        sa.Column('tenant_id', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('access_token', sa.Text(), nullable=True),
        sa.Column('refresh_token', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('refreshing_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('tenant_id', 'source', name=op.f('pk_crm_token')),
    )


def downgrade() -> None:
    op.drop_table('crm_token')
