"""The ledger's tables as typed SQLAlchemy 2 models; Alembic migrations in migrations/ create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from connector.store.types import UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


PENDING = text("outcome = 'pending'")
REFUSED = text("reason IS NOT NULL")
KEYED = text("idempotency_key IS NOT NULL")
IN_FLIGHT = text("status IN ('queued', 'sent', 'expired') AND provider_message_id IS NOT NULL")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InboundEvent(Base):
    """Every body that reached a webhook URL, as received, with what became of it.

    `body` is the readable text; where the bytes are not UTF-8 or hold a NUL (PostgreSQL text cannot), the
    exact bytes are in `body_raw` too (`connector.usecases.ingest.received_bytes` gives them back). `reason` is why a
    body was refused (the error code of the answer), so unauthenticated ones can be counted and purged.
    """

    __tablename__ = "inbound_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[str] = mapped_column(Text)
    body_raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    external_id: Mapped[str | None] = mapped_column(String(128))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    # pending (stored by the web, not applied yet), applied, duplicate, stale, ignored, held, rejected
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(32))
    # The parsed event (connector.core.event_records) the intake applies, and the source's own change time,
    # which orders one booking's events; when the intake settled it.
    parsed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source_version: Mapped[datetime | None] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A CRM's thin webhook waits for the worker to fetch its entity: not before `fetch_due`; failed `fetch_tries`
    # times so far (connector.usecases.fetching). NULL once fetched, and for every event that needs no fetch.
    fetch_due: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fetch_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index(None, "tenant_id", "received_at"),
        Index("ix_inbound_event_fetch_due", "fetch_due", postgresql_where=text("fetch_due IS NOT NULL"),
              sqlite_where=text("fetch_due IS NOT NULL")),
        # Partial: the webhook's INSERT pays only for the indexes its event is in; these follow the events that
        # have a webhook id, the refused ones, and the pending ones (the intake's claim), not the millions applied.
        Index("ix_inbound_event_tenant_id_source_idempotency_key", "tenant_id", "source", "idempotency_key",
              postgresql_where=KEYED, sqlite_where=KEYED),
        Index("ix_inbound_event_reason_received_at", "reason", "received_at",
              postgresql_where=REFUSED, sqlite_where=REFUSED),
        Index("ix_inbound_event_pending", "id", postgresql_where=PENDING, sqlite_where=PENDING),
        Index("ix_inbound_event_pending_key", "tenant_id", "source", "external_id",
              postgresql_where=PENDING, sqlite_where=PENDING),
        Index("ix_inbound_event_booking_id", "booking_id", postgresql_where=text("booking_id IS NOT NULL"),
              sqlite_where=text("booking_id IS NOT NULL")),  # a booking's page
    )


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    patronymic: Mapped[str | None] = mapped_column(String(120))
    sex: Mapped[str] = mapped_column(String(8), default="unknown")
    opt_outs: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "phone"),)


class Booking(Base):
    __tablename__ = "booking"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    timezone: Mapped[str] = mapped_column(String(64))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    doctor_name: Mapped[str | None] = mapped_column(String(200))
    doctor_specialty: Mapped[str | None] = mapped_column(String(200))
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    preparation: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    branch_id: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(300))
    source_version: Mapped[datetime | None] = mapped_column(UTCDateTime())
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "source", "external_id"),)


class NotificationJob(Base):
    """One message we mean to deliver: a kind, a due time, and where it stands in the cascade."""

    __tablename__ = "notification_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    kind: Mapped[str] = mapped_column(String(24))
    plan_key: Mapped[str] = mapped_column(String(120))
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the due time the plan chose
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the worker next takes it (a fallback, a wait)
    status: Mapped[str] = mapped_column(String(24))
    status_reason: Mapped[str | None] = mapped_column(Text)
    cascade_step: Mapped[int] = mapped_column(Integer, default=0)
    step_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rendered_text: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Partial: each follows one live state (the worker's claims, connector.store.live), not the history.
    __table_args__ = (
        Index("ix_notification_job_due", "due_at", postgresql_where=text("status = 'scheduled'"),
              sqlite_where=text("status = 'scheduled'")),
        Index("ix_notification_job_leased", "lease_until", postgresql_where=text("status = 'sending'"),
              sqlite_where=text("status = 'sending'")),
        Index("ix_notification_job_deadline", "step_deadline", postgresql_where=text("status = 'awaiting_delivery'"),
              sqlite_where=text("status = 'awaiting_delivery'")),
        Index(None, "booking_id"),
    )

    @property
    def next_try_at(self) -> datetime | None:
        """When the worker takes it next, if that is not the planned time: a fallback step, a warm-up wait."""
        waiting = self.status == "scheduled" and self.planned_at is not None and self.due_at != self.planned_at
        return self.due_at if waiting else None


class DeliveryAttempt(Base):
    """One try of one cascade step: append-only, its status only ever moves forward."""

    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("notification_job.id"))
    step: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # ours
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24))
    raw_status: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())  # when its status last changed
    # Written just before its call (in groups, as the send pool takes them): a `queued` attempt without it never
    # reached the provider, one with it may have (its outcome is unknown when its worker died).
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Polling (providers that can be asked): when we last asked, and when to ask next (None: not any more).
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(None, "job_id"),
        Index(None, "provider", "provider_message_id"),
        # The poll pass, every tick: messages in flight (partial: not the history), recent ones.
        Index("ix_delivery_attempt_in_flight", "created_at", postgresql_where=IN_FLIGHT, sqlite_where=IN_FLIGHT),
        Index(None, "provider", "created_at"),  # the warm-up count: today's attempts of one account
    )


class EarlyReceipt(Base):
    """A provider's status report that named no attempt when it came (its send's answer not recorded yet): kept
    until an attempt takes its id, then applied and removed; after connector.core.early_receipts.HOLD_FOR, its
    callback is marked ignored and it is removed. The raw callback is its inbound event."""

    __tablename__ = "early_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(64))  # ours, where the provider echoes it
    status: Mapped[str] = mapped_column(String(24))
    raw_status: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the provider says it happened
    inbound_event_id: Mapped[int] = mapped_column(ForeignKey("inbound_event.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(None, "provider_message_id"),
        Index(None, "message_id"),
        Index(None, "tenant_id", "received_at"),
    )


class AuditEvent(Base):
    """One recorded transition: the clinic's proof of when and how a patient was informed."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("notification_job.id"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("delivery_attempt.id"))
    inbound_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_event.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    what: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(None, "booking_id"),
        Index(None, "job_id"),
        Index(None, "inbound_event_id"),  # an inbound event's page: what it changed
    )


class PatientChannel(Base):
    """What we know of one patient on one channel: known absent until when, opted out, last delivered."""

    __tablename__ = "patient_channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    channel: Mapped[str] = mapped_column(String(16))
    not_registered_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    last_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("patient_id", "channel"),)


class PatientLink(Base):
    """A bot chat a patient opened (max_bot user_id, telegram_bot chat_id): how those providers reach them."""

    __tablename__ = "patient_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"))
    provider: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("tenant_id", "provider", "address"), Index(None, "patient_id"))


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeat"

    worker_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_total: Mapped[int] = mapped_column(Integer, default=0)


class SandboxCallback(Base):
    """A status report the sandbox provider will deliver later, through the same path as a real callback."""

    __tablename__ = "sandbox_callback"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    body: Mapped[str] = mapped_column(Text)


class SyncState(Base):
    """Where the safety-net sync of one tenant's source stands, and who is running it (a lease)."""

    __tablename__ = "sync_state"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[datetime] = mapped_column(UTCDateTime())  # changes up to here have been read
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    records_read: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInAttempt(Base):
    """A sign-in try (a failure unless it succeeded), kept a short while so every web worker counts the same ones.

    `key` is a SHA-256 of "login:<login>" or "address:<ip>": neither a login typed by mistake (a password?) nor an
    address is stored in clear.
    """

    __tablename__ = "sign_in_attempt"
    __table_args__ = (Index(None, "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class EndedSession(Base):
    """A staff session signed out: its cookie, should a copy of it be left somewhere, signs nobody in. Kept for
    the longest a session lasts (Settings.session_max), then deleted at the next sign-out."""

    __tablename__ = "ended_session"

    sid: Mapped[str] = mapped_column(String(32), primary_key=True)  # the session's random id (web.access)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())


UNSENT = text("status IN ('pending', 'sending')")
DUE = text("status = 'pending'")


class Writeback(Base):
    """One status report to push to the booking's CRM (connector.usecases.outbox): written with the change it
    reports, pushed with bounded retries, the oldest unsent of each booking and target first. `status`: pending,
    sending (leased until `lease_until`), sent, failed (its `last_error` says why), replaced (a newer report of the
    same booking and target came before it was sent). `word` is the machine word beside the text."""

    __tablename__ = "writeback"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("notification_job.id"))
    target: Mapped[str] = mapped_column(String(16))  # yclients | amocrm | bitrix24 | generic
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    word: Mapped[str] = mapped_column(String(24))  # delivered | read | failed | expired | sent | fallback | …
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when it happened
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_writeback_unsent", "booking_id", "target", "id", postgresql_where=UNSENT, sqlite_where=UNSENT),
        Index("ix_writeback_due", "next_try_at", postgresql_where=DUE, sqlite_where=DUE),
        Index(None, "tenant_id", "status", "id"),
    )


class CrmToken(Base):
    """One tenant's OAuth pair for one CRM (amoCRM): the refresh token is single-use, so the pair lives here,
    rotated atomically, and `refreshing_until` is the lease of the one process refreshing it
    (connector.store.crm_tokens)."""

    __tablename__ = "crm_token"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refreshing_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
