"""the ledger: inbound events, patients, bookings, jobs, attempts, audit

Revision ID: 0001
Revises: 


"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('first_name', sa.String(length=120), nullable=True),
    sa.Column('last_name', sa.String(length=120), nullable=True),
    sa.Column('patronymic', sa.String(length=120), nullable=True),
    sa.Column('sex', sa.String(length=8), nullable=False),
    sa.Column('opt_outs', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('tenant_id', 'phone', name=op.f('uq_patient_tenant_id_phone'))
    )
    op.create_table('booking',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('external_id', sa.String(length=128), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('doctor_name', sa.String(length=200), nullable=True),
    sa.Column('doctor_specialty', sa.String(length=200), nullable=True),
    sa.Column('services', sa.JSON(), nullable=False),
    sa.Column('preparation', sa.Text(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('branch_id', sa.String(length=64), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('source_version', sa.DateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_booking_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking')),
    sa.UniqueConstraint('tenant_id', 'source', 'external_id', name=op.f('uq_booking_tenant_id_source_external_id'))
    )
    op.create_table('inbound_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_truncated', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('external_id', sa.String(length=128), nullable=True),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['booking_id'], ['booking.id'], name=op.f('fk_inbound_event_booking_id_booking')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_event'))
    )
    with op.batch_alter_table('inbound_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_event_tenant_id_received_at'), ['tenant_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_event_tenant_id_source_idempotency_key'), ['tenant_id', 'source', 'idempotency_key'], unique=False)

    op.create_table('notification_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('plan_key', sa.String(length=120), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('cascade_step', sa.Integer(), nullable=False),
    sa.Column('step_deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rendered_text', sa.Text(), nullable=True),
    sa.Column('lease_owner', sa.String(length=120), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['booking.id'], name=op.f('fk_notification_job_booking_id_booking')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_notification_job_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_job'))
    )
    with op.batch_alter_table('notification_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_job_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_job_status_due_at'), ['status', 'due_at'], unique=False)

    op.create_table('delivery_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['notification_job.id'], name=op.f('fk_delivery_attempt_job_id_notification_job')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempt')),
    sa.UniqueConstraint('message_id', name=op.f('uq_delivery_attempt_message_id'))
    )
    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_attempt_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_attempt_provider_provider_message_id'), ['provider', 'provider_message_id'], unique=False)

    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('inbound_event_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('what', sa.String(length=48), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['attempt_id'], ['delivery_attempt.id'], name=op.f('fk_audit_event_attempt_id_delivery_attempt')),
    sa.ForeignKeyConstraint(['booking_id'], ['booking.id'], name=op.f('fk_audit_event_booking_id_booking')),
    sa.ForeignKeyConstraint(['inbound_event_id'], ['inbound_event.id'], name=op.f('fk_audit_event_inbound_event_id_inbound_event')),
    sa.ForeignKeyConstraint(['job_id'], ['notification_job.id'], name=op.f('fk_audit_event_job_id_notification_job')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_job_id'), ['job_id'], unique=False)




def downgrade() -> None:
    """Downgrade schema."""

    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_job_id'))
        batch_op.drop_index(batch_op.f('ix_audit_event_booking_id'))

    op.drop_table('audit_event')
    with op.batch_alter_table('delivery_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_attempt_provider_provider_message_id'))
        batch_op.drop_index(batch_op.f('ix_delivery_attempt_job_id'))

    op.drop_table('delivery_attempt')
    with op.batch_alter_table('notification_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_job_status_due_at'))
        batch_op.drop_index(batch_op.f('ix_notification_job_booking_id'))

    op.drop_table('notification_job')
    with op.batch_alter_table('inbound_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_event_tenant_id_source_idempotency_key'))
        batch_op.drop_index(batch_op.f('ix_inbound_event_tenant_id_received_at'))

    op.drop_table('inbound_event')
    op.drop_table('booking')
    op.drop_table('patient')

