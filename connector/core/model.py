"""The words of the domain as plain values: bookings, patients, jobs and the policy that plans them.

Nothing here does I/O or reads the clock; every function of the core takes `now` as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum


class JobKind(StrEnum):
    CONFIRMATION = "confirmation"
    REMINDER = "reminder"
    RESCHEDULE = "reschedule"
    CANCELLATION = "cancellation"
    RESULTS_READY = "results_ready"
    RECALL = "recall"


# Kinds about one visit: planning plans them and may withdraw them (results and recall notices are planned
# elsewhere, and left alone even on the same booking), and once the visit has started none is sent.
VISIT_KINDS = frozenset({JobKind.CONFIRMATION, JobKind.REMINDER, JobKind.RESCHEDULE, JobKind.CANCELLATION})

# A patient who just booked, or whose visit moved or was cancelled, must hear of it before the visit even
# at night: silence costs a wasted trip, a text at 23:00 only costs a frown.
URGENT_KINDS = frozenset({JobKind.CONFIRMATION, JobKind.RESCHEDULE, JobKind.CANCELLATION})


class JobStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    AWAITING_DELIVERY = "awaiting_delivery"
    DELIVERED = "delivered"
    READ = "read"
    UNCONFIRMED = "unconfirmed"  # sent, never confirmed: no receipt while the provider could still report
    FAILED = "failed"  # every channel refused or failed
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


# A job in one of these may still be withdrawn: nothing has gone to a provider yet.
PENDING_STATUSES = frozenset({JobStatus.SCHEDULED})


class BookingState(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    ATTENDED = "attended"
    NO_SHOW = "no_show"


class Sex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class QuietHours:
    """A daily window in the clinic's local time when nothing non-urgent is sent; may span midnight."""

    start: time
    end: time


@dataclass(frozen=True)
class Policy:
    """A tenant's planning settings."""

    timezone: str = "Europe/Moscow"
    reminder_offsets: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=2))
    quiet_hours: QuietHours | None = QuietHours(time(21, 0), time(9, 0))
    confirmation: bool = True
    reschedule: bool = True
    cancellation: bool = True


@dataclass(frozen=True)
class Patient:
    phone: str | None = None  # E.164
    first_name: str | None = None
    last_name: str | None = None
    patronymic: str | None = None
    sex: Sex = Sex.UNKNOWN
    external_id: str | None = None


@dataclass(frozen=True)
class BookingFacts:
    """One visit as a source describes it, normalised: what we store and render from."""

    external_id: str
    starts_at: datetime  # tz-aware, the instant of the visit
    state: BookingState = BookingState.ACTIVE
    timezone: str | None = None  # the source's zone when it says one; else the tenant's
    duration: timedelta | None = None
    patient: Patient = field(default_factory=Patient)
    doctor_name: str | None = None
    doctor_specialty: str | None = None
    services: tuple[str, ...] = ()
    preparation: str | None = None
    comment: str | None = None
    branch_id: str | None = None
    address: str | None = None


class EventAction(StrEnum):
    UPSERT = "upsert"  # created or changed: the facts are complete
    DELETE = "delete"  # removed at the source: only the id is to be trusted


@dataclass(frozen=True)
class SourceEvent:
    """What a source told us about one booking, after parsing its wire format."""

    action: EventAction
    external_id: str
    version: datetime | None  # the source's own change time, to order updates
    facts: BookingFacts | None  # None for a delete that carries nothing usable


@dataclass(frozen=True)
class Visit:
    """What planning needs of a booking: when, and in which state."""

    starts_at: datetime
    state: BookingState = BookingState.ACTIVE


@dataclass(frozen=True)
class ExistingJob:
    key: str
    kind: JobKind
    status: JobStatus
    due_at: datetime


@dataclass(frozen=True)
class PlannedJob:
    """A job the plan wants. `status` is SCHEDULED, or SKIPPED when no moment fits (see `note`)."""

    key: str
    kind: JobKind
    due_at: datetime
    status: JobStatus = JobStatus.SCHEDULED
    note: str | None = None


@dataclass(frozen=True)
class Cancellation:
    key: str
    reason: str


@dataclass(frozen=True)
class PlanDiff:
    """What to change in the ledger: jobs to add, pending jobs to cancel (with the reason)."""

    add: tuple[PlannedJob, ...] = ()
    cancel: tuple[Cancellation, ...] = ()


class AttemptStatus(StrEnum):
    """One try of one cascade step, in the unified vocabulary every provider is translated into."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    NOT_REGISTERED = "not_registered"
    REJECTED = "rejected"
    EXPIRED = "expired"
    # Written `queued` but its call never began (a worker stopped, or its pass failed, before taking it):
    # nothing reached the provider, so the job is sent again on the same step as if nothing happened.
    WITHDRAWN = "withdrawn"


class InboundOutcome(StrEnum):
    """What became of one inbound event (a webhook, a callback, a synced item)."""

    PENDING = "pending"  # stored by the web process; the worker's intake has not applied it yet
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # seen before, or nothing changed
    STALE = "stale"  # older than the version we hold
    IGNORED = "ignored"  # nothing in it for us (not a booking event, message ids no attempt ever took)
    HELD = "held"  # status reports kept until their attempt gets its provider id (connector.core.early_receipts)
    REJECTED = "rejected"  # refused: the error says why


# Outcomes that mean "we have this one": a repeat of the same webhook id is a duplicate of any of them.
ACCEPTED_OUTCOMES = frozenset(
    {InboundOutcome.APPLIED, InboundOutcome.DUPLICATE, InboundOutcome.STALE, InboundOutcome.IGNORED,
     InboundOutcome.HELD})


class AuditWhat(StrEnum):
    """The name of one line of the audit trail: `<subject>.<what happened>`, the clinic's proof of informing."""

    BOOKING_CREATED = "booking.created"
    BOOKING_UPDATED = "booking.updated"
    BOOKING_TIME_MOVED = "booking.time_moved"
    BOOKING_ACTIVE = "booking.active"
    BOOKING_CANCELLED = "booking.cancelled"
    BOOKING_ATTENDED = "booking.attended"
    BOOKING_NO_SHOW = "booking.no_show"

    INBOUND_PENDING = "inbound.pending"
    INBOUND_APPLIED = "inbound.applied"
    INBOUND_DUPLICATE = "inbound.duplicate"
    INBOUND_STALE = "inbound.stale"
    INBOUND_IGNORED = "inbound.ignored"
    INBOUND_HELD = "inbound.held"
    INBOUND_REJECTED = "inbound.rejected"

    JOB_PLANNED = "job.planned"
    JOB_DEFERRED = "job.deferred"
    JOB_RECIPIENT = "job.recipient"  # the booking's patient changed: the job follows them
    JOB_SCHEDULED = "job.scheduled"
    JOB_SENDING = "job.sending"
    JOB_AWAITING_DELIVERY = "job.awaiting_delivery"
    JOB_DELIVERED = "job.delivered"
    JOB_READ = "job.read"
    JOB_UNCONFIRMED = "job.unconfirmed"
    JOB_FAILED = "job.failed"
    JOB_EXPIRED = "job.expired"
    JOB_CANCELLED = "job.cancelled"
    JOB_SKIPPED = "job.skipped"

    STEP_SKIPPED = "step.skipped"

    ATTEMPT_QUEUED = "attempt.queued"
    ATTEMPT_SENT = "attempt.sent"
    ATTEMPT_DELIVERED = "attempt.delivered"
    ATTEMPT_READ = "attempt.read"
    ATTEMPT_FAILED = "attempt.failed"
    ATTEMPT_NOT_REGISTERED = "attempt.not_registered"
    ATTEMPT_REJECTED = "attempt.rejected"
    ATTEMPT_EXPIRED = "attempt.expired"
    ATTEMPT_UNKNOWN = "attempt.unknown"  # a worker stopped mid-send: the outcome was never learnt
    ATTEMPT_WITHDRAWN = "attempt.withdrawn"  # queued, never started: nothing went out

    # What staff did from the console or the command line; the detail names who.
    STAFF_RESEND = "staff.resend"
    STAFF_CANCEL = "staff.cancel"
    STAFF_SEND_NOW = "staff.send_now"
    STAFF_REPLAY = "staff.replay"
    STAFF_PHONE_SHOWN = "staff.phone_shown"
    STAFF_RETRY_WRITEBACK = "staff.retry_writeback"
    STAFF_OPT_OUTS = "staff.opt_outs"  # the patient's opt-outs set as they asked (the detail: who, and which)

    @classmethod
    def of_job(cls, status: JobStatus) -> AuditWhat:
        return cls(f"job.{status}")

    @classmethod
    def of_attempt(cls, status: AttemptStatus) -> AuditWhat:
        return cls(f"attempt.{status}")

    @classmethod
    def of_booking(cls, state: BookingState) -> AuditWhat:
        return cls(f"booking.{state}")

    @classmethod
    def of_inbound(cls, outcome: InboundOutcome) -> AuditWhat:
        return cls(f"inbound.{outcome}")
