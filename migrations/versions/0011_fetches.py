"""inbound_event: the thin webhooks of a CRM wait here for the worker to fetch the entity they name

amoCRM and Bitrix24 say only "lead 123 changed". The web process stores one pending event per entity with
`fetch_due` set; the worker's fetch step reads the entity through the CRM's REST API (outside any transaction),
stores what it read as the event's parsed form and clears `fetch_due`, and the intake applies it as any other.
`fetch_tries` counts the failed fetches (a CRM down, its rate limit): backoff, then `rejected`, replayable.

Revision ID: 0011
Revises: 0010
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

AWAITING = sa.text("fetch_due IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table('inbound_event') as batch:
        batch.add_column(sa.Column('fetch_due', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('fetch_tries', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_inbound_event_fetch_due', 'inbound_event', ['fetch_due'],
                    postgresql_where=AWAITING, sqlite_where=AWAITING)


def downgrade() -> None:
    op.drop_index('ix_inbound_event_fetch_due', table_name='inbound_event')
    with op.batch_alter_table('inbound_event') as batch:
        batch.drop_column('fetch_tries')
        batch.drop_column('fetch_due')
