"""Use case: one worker pass over due jobs — claim with a lease, prepare, send through the pool, record.

Three short transactions per pass and none open during a provider call:
  1. claim: `SELECT … FOR UPDATE SKIP LOCKED` the due jobs (and those whose lease ran out), write the lease;
  2. prepare: render from the current booking, choose the step, write each attempt `queued` with our id;
  3. (no transaction) send concurrently, each account within its rate limit, transient errors retried;
  4. record: the provider's answers, the cascade's decisions, the audit trail.
A worker that dies between 2 and 4 leaves a `queued` attempt; whoever reclaims the job does not resend on
that channel (at-most-once per channel and step) but moves on to the next one.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from connector.channels.base import OutboundMessage, Recipient, SendResult, TransientError
from connector.channels.settings import warmup_of
from connector.core.cascade import (
    Step,
    after_send,
    choose_step,
    must_expire,
    withdrawal,
)
from connector.core.model import (
    AttemptStatus,
    AuditWhat,
    BookingFacts,
    BookingState,
    JobKind,
    JobStatus,
    Sex,
)
from connector.core.model import (
    Patient as PatientFacts,
)
from connector.core.recipients import follow_booking
from connector.core.retry import retry_delay
from connector.core.templates import WordingError
from connector.core.texts import preparation_for, render_message
from connector.core.warmup import Allowance, Warmup
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.ledger import (
    apply_decision,
    audit,
    note_with,
    remember_channels,
    update_attempt,
    visit_times,
)
from connector.store.models import (
    Booking,
    DeliveryAttempt,
    NotificationJob,
    Patient,
    PatientChannel,
    PatientLink,
    SandboxCallback,
)
from connector.store.queue import JOB_LEASE, claim_due_jobs

log = logging.getLogger("connector.usecases.dispatch")

MAX_TRIES = 4  # per step, for transient errors (timeouts, 5xx, 429)
RETRY_BUDGET = 45.0  # seconds of retrying per step, well inside the lease
RECORD_EVERY = 100  # send results written per transaction
UNUSABLE_RETRY = timedelta(minutes=30)  # an account whose warm-up settings broke at run time: its jobs wait


@dataclass(frozen=True)
class Send:
    job_id: int
    attempt_id: int
    tenant_id: str
    step: Step
    message: OutboundMessage


@dataclass(frozen=True)
class Sent:
    send: Send
    result: SendResult
    tries: int
    reports: list[tuple[float, str]] = field(default_factory=list)


class Dispatcher:
    def __init__(self, runtime: Runtime, accounts: Accounts, worker_id: str, pool: ThreadPoolExecutor,
                 retry_base: float = 0.5, batch: int = 500):
        self.rt, self.accounts, self.worker_id, self.pool = runtime, accounts, worker_id, pool
        self.retry_base, self.batch = retry_base, batch

    # --- the pass ---------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim, prepare, send and record one batch; the number of jobs handled."""
        with self.rt.sessions.begin() as session:
            ids = claim_due_jobs(session, worker_id=self.worker_id, now=self.rt.clock(), limit=self.batch)
        if not ids:
            return 0
        with self.rt.sessions.begin() as session:
            sends = self._prepare(session, ids, self.rt.clock())
        # Answers are recorded as they come, in small groups: a slow provider does not hold back the others.
        futures = [self.pool.submit(self._send, send) for send in sends]
        done: list[Sent] = []
        flushed = time.monotonic()
        for future in as_completed(futures):
            done.append(future.result())
            if len(done) >= RECORD_EVERY or time.monotonic() - flushed > 0.5:
                self._record_now(done)
                done, flushed = [], time.monotonic()
        self._record_now(done)
        return len(ids)

    def _record_now(self, results: list[Sent]) -> None:
        if results:
            with self.rt.sessions.begin() as session:
                self._record(session, results, self.rt.clock())

    def run_until_idle(self, max_passes: int = 50) -> int:
        total = 0
        for _ in range(max_passes):
            handled = self.run_once()
            total += handled
            if handled == 0:
                break
        return total

    # --- 2. prepare -------------------------------------------------------------------------------------

    def _prepare(self, session: Session, ids: list[int], now: datetime) -> list[Send]:
        # The recipient is the booking's patient as it stands now (connector.core.recipients), not the job's.
        recipient = case((NotificationJob.booking_id.is_(None), NotificationJob.patient_id), else_=Booking.patient_id)
        rows = session.execute(
            select(NotificationJob, Booking, Patient)
            .outerjoin(Booking, NotificationJob.booking_id == Booking.id)
            .outerjoin(Patient, Patient.id == recipient)
            .where(NotificationJob.id.in_(ids))
        ).all()
        patient_ids = {patient.id for _, _, patient in rows if patient is not None}
        reach = session.scalars(select(PatientChannel).where(PatientChannel.patient_id.in_(patient_ids))).all()
        links = session.scalars(select(PatientLink).where(
            PatientLink.patient_id.in_(patient_ids), PatientLink.active.is_(True))).all()
        unfinished = session.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.job_id.in_(ids), DeliveryAttempt.status == AttemptStatus.QUEUED)).all()
        unfinished_by_job: dict[int, list[DeliveryAttempt]] = {}
        for attempt in unfinished:
            unfinished_by_job.setdefault(attempt.job_id, []).append(attempt)

        caps = self._warmup_caps(session, {job.tenant_id for job, _, _ in rows}, now)
        plans: list[tuple[NotificationJob, DeliveryAttempt, Step, OutboundMessage]] = []
        audits: list = []
        for job, booking, patient in rows:
            try:
                outcome = self._prepare_one(job, booking, patient, reach, links, unfinished_by_job.get(job.id, []),
                                            now, audits, caps)
            except Exception as error:  # one job's bad data or broken adapter costs that job, not the batch
                log.exception("a job could not be prepared", extra={"fields": {"tenant": job.tenant_id, "job": job.id}})
                outcome = self._finish(job, JobStatus.FAILED, f"could not be prepared: {_reason(error)}", now, audits)
            if outcome is not None:
                plans.append((job, *outcome))
        session.add_all([attempt for _, attempt, _, _ in plans])
        session.flush()
        for job, attempt, step, _ in plans:
            audits.append(audit(job, now, AuditWhat.ATTEMPT_QUEUED, f"step {job.cascade_step + 1}: {step.channel} via "
                                f"{step.provider}", attempt))
        session.add_all(audits)
        return [Send(job.id, attempt.id, job.tenant_id, step, message) for job, attempt, step, message in plans]

    def _prepare_one(self, job, booking, patient, reach, links, unfinished, now, audits, caps):
        tenant = self.rt.tenants.get(job.tenant_id)
        if tenant is None:
            return self._finish(job, JobStatus.FAILED, "the tenant is no longer configured", now, audits)
        kind = JobKind(job.kind)
        verdict = withdrawal(kind, BookingState(booking.state) if booking else None,
                             booking.starts_at if booking else None, now)
        if verdict is not None:
            return self._finish(job, *verdict, now, audits)
        job.patient_id, change = follow_booking(job.patient_id, booking.patient_id if booking else None,
                                                has_booking=booking is not None)
        if change is not None:
            audits.append(audit(job, now, AuditWhat.JOB_RECIPIENT, change))
        if patient is None:
            return self._finish(job, JobStatus.SKIPPED, "no phone number for the patient", now, audits)

        steps = self.accounts.steps(tenant)
        start = job.cascade_step
        for attempt in unfinished:
            # We never learnt how this send ended: do not risk the same text twice on that channel.
            update_attempt(attempt, AttemptStatus.FAILED, now, error="outcome unknown: the worker stopped mid-send")
            audits.append(audit(job, now, AuditWhat.ATTEMPT_UNKNOWN,
                                "worker stopped mid-send; moving to the next channel",
                                attempt))
            start = max(start, attempt.step + 1)
        recipient = Recipient(patient.phone, {link.provider: link.address for link in links
                                              if link.patient_id == patient.id})
        opted_out = frozenset(r.channel for r in reach if r.patient_id == patient.id and r.opted_out)
        absent = frozenset(r.channel for r in reach if r.patient_id == patient.id and r.not_registered_until
                           and r.not_registered_until > now)
        unaddressable = frozenset(
            i for i, step in enumerate(steps)
            if not self.accounts.get(tenant.id, step.provider).channel.can_address(recipient, step.channel))
        while True:
            index, skipped = choose_step(steps, start, opted_out=opted_out, not_registered=absent,
                                         unaddressable=unaddressable)
            for skipped_index, reason in skipped:
                audits.append(audit(job, now, AuditWhat.STEP_SKIPPED,
                                    f"step {skipped_index + 1} ({steps[skipped_index].channel}): {reason}"))
            if index is None:
                return self._finish(job, JobStatus.FAILED, "no channel left to try", now, audits)
            provider = steps[index].provider
            cap = caps.get((tenant.id, provider))
            if isinstance(cap, str):
                # Its warm-up settings broke after start-up: hold the work rather than send past an unknown cap.
                wait_until, why = now + UNUSABLE_RETRY, f"the warm-up settings of {provider} cannot be used: {cap}"
                skip = why
            elif cap is None or cap.take():
                break
            else:
                wait_until, why = cap.next_slot(), f"{provider} has sent its warm-up cap of {cap.limit} today"
                skip = f"warm-up cap of {provider} reached"
            if booking is None or not must_expire(kind, booking.starts_at, wait_until):
                return self._defer(job, index, wait_until, f"{why}; waits until {wait_until.isoformat()}", now, audits)
            # Waiting for that would be too late for this visit: the next channel carries it.
            audits.append(audit(job, now, AuditWhat.STEP_SKIPPED,
                                f"step {index + 1} ({steps[index].channel}): {skip} and "
                                "the visit comes first"))
            start = index + 1
        try:
            facts = _facts(booking, patient)
            if facts.preparation is None and tenant.preparations:
                facts = replace(facts, preparation=preparation_for(facts.services, tenant.preparations))
            job.rendered_text = render_message(
                kind, facts, now=now, tz=(booking.timezone if booking else tenant.timezone),
                clinic_name=tenant.name, address=tenant.address, overrides=tenant.templates)
        except (WordingError, ValueError) as error:
            return self._finish(job, JobStatus.FAILED, f"the message could not be rendered: {error}", now, audits)
        step = steps[index]
        job.cascade_step = index
        job.lease_until = now + JOB_LEASE
        job.updated_at = now
        attempt = DeliveryAttempt(job_id=job.id, step=index, channel=step.channel, provider=step.provider,
                                  message_id=uuid.uuid4().hex, status=AttemptStatus.QUEUED, tries=0,
                                  created_at=now, updated_at=now)
        message = OutboundMessage(attempt.message_id, job.tenant_id, step.channel, recipient, job.rendered_text)
        return attempt, step, message

    @staticmethod
    def _defer(job, index: int, until: datetime, reason: str, now, audits) -> None:
        job.status, job.due_at, job.cascade_step, job.updated_at = JobStatus.SCHEDULED, until, index, now
        job.lease_owner = job.lease_until = None
        audits.append(audit(job, now, AuditWhat.JOB_DEFERRED, reason))
        return None

    def _warmup_caps(self, session: Session, tenant_ids: set[str], now: datetime
                     ) -> dict[tuple[str, str], Allowance | str]:
        """Today's allowance per warming-up account: one count query per such account, not per job. Where an
        account's warm-up settings cannot be used, why (a text): its jobs wait, every other account goes on."""
        caps: dict[tuple[str, str], Allowance | str] = {}
        for tenant_id in tenant_ids:
            tenant = self.rt.tenants.get(tenant_id)
            for provider, config in (tenant.providers.items() if tenant else ()):
                try:
                    warmup = warmup_of(config)
                    if warmup is not None:
                        caps[(tenant_id, provider)] = warmup_allowance(session, tenant, provider, warmup, now)
                except ValueError as error:
                    log.error("unusable warm-up settings: %s", error, extra={"fields": {
                        "tenant": tenant_id, "provider": provider}})
                    text = str(error)[:300]
                    where = "" if text.startswith("warmup.") else "warmup: "
                    caps[(tenant_id, provider)] = f"providers.{provider}.{where}{text}"
        return caps

    @staticmethod
    def _finish(job, status: JobStatus, reason: str, now, audits) -> None:
        job.status, job.status_reason, job.updated_at = status, reason, now
        job.lease_owner = job.lease_until = job.step_deadline = None
        audits.append(audit(job, now, AuditWhat.of_job(status), reason))
        return None

    # --- 3. send (no transaction) -----------------------------------------------------------------------

    def _send(self, send: Send) -> Sent:
        account = self.accounts.get(send.tenant_id, send.step.provider)
        started = time.monotonic()
        tries = 0
        while True:
            tries += 1
            account.limiter.acquire()
            try:
                with account.in_flight:
                    result = account.channel.send(send.message)
                break
            except TransientError as error:
                delay = retry_delay(tries, error.retry_after, base=self.retry_base)
                budget = min(RETRY_BUDGET, send.step.timeout.total_seconds())
                if tries >= MAX_TRIES or time.monotonic() - started + delay > budget:
                    result = SendResult(AttemptStatus.FAILED, error=f"gave up after {tries} tries: {error}")
                    break
                time.sleep(delay)
            except Exception as error:  # an adapter bug must cost one step, not the whole batch
                log.exception("adapter error", extra={"fields": {"provider": send.step.provider}})
                result = SendResult(AttemptStatus.FAILED, error=f"adapter error: {type(error).__name__}")
                break
        return Sent(send, result, tries, account.channel.scheduled_reports(send.message, result))

    # --- 4. record --------------------------------------------------------------------------------------

    def _record(self, session: Session, results: list[Sent], now: datetime) -> None:
        if not results:
            return
        # Locked: a provider's callback may be settling one of these jobs at this very moment.
        jobs = {job.id: job for job in session.scalars(select(NotificationJob).where(
            NotificationJob.id.in_([sent.send.job_id for sent in results])).with_for_update())}
        attempts = {a.id: a for a in session.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.id.in_([sent.send.attempt_id for sent in results])))}
        audits, memory = [], {}
        visits = visit_times(session, jobs.values())
        for sent in results:
            job, attempt = jobs[sent.send.job_id], attempts[sent.send.attempt_id]
            result = sent.result
            attempt.tries = sent.tries
            attempt.provider_message_id = result.provider_message_id
            update_attempt(attempt, result.status, now, error=result.error)
            audits.append(audit(job, now, AuditWhat.of_attempt(AttemptStatus(attempt.status)),
                                _attempt_detail(sent.send.step, result, sent.tries), attempt))
            memory.setdefault(job.tenant_id, []).append((job.patient_id, attempt.channel, result.status))
            if result.status == AttemptStatus.REJECTED:
                # A refusal of the content or the account (credentials, balance, sender name) is the clinic's
                # configuration to fix, not the patient's: say so where operators look.
                log.warning("provider rejected a message: %s", result.error, extra={"fields": {
                    "tenant": job.tenant_id, "provider": sent.send.step.provider, "job": job.id}})
            if job.status != JobStatus.SENDING:
                continue  # a receipt already settled it while we were sending
            steps = self.accounts.steps(self.rt.tenants[job.tenant_id])
            decision = after_send(steps, attempt.step, AttemptStatus(attempt.status), now)
            waiting = apply_decision(job, decision, now, visits, self.rt.tenants)
            audits.append(audit(job, now, AuditWhat.of_job(decision.job_status), note_with(decision.note, waiting)))
            for delay, body in sent.reports:
                session.add(SandboxCallback(tenant_id=job.tenant_id, due_at=now + timedelta(seconds=delay), body=body))
        for tenant_id, facts in memory.items():
            remember_channels(session, now, facts, self.rt.tenants[tenant_id].remember_not_registered)
        session.add_all(audits)


def warmup_allowance(session: Session, tenant, provider: str, warmup: Warmup, now: datetime) -> Allowance:
    """Today's allowance of a warming-up account: what its config allows, less what it sent since midnight."""
    midnight = datetime.combine(now.astimezone(ZoneInfo(tenant.timezone)).date(), clock_time(0),
                                ZoneInfo(tenant.timezone))
    used = session.scalar(
        select(func.count(DeliveryAttempt.id)).join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
        .where(NotificationJob.tenant_id == tenant.id, DeliveryAttempt.provider == provider,
               DeliveryAttempt.created_at >= midnight)) or 0
    return Allowance.for_day(start=warmup.start, growth=warmup.growth, since=warmup.since, ceiling=warmup.ceiling,
                             used=used, now=now, tz=tenant.timezone, quiet=tenant.policy.quiet_hours)


def _reason(error: Exception) -> str:
    """An unexpected exception as an audit line: its type (the message alone may not say what broke), short."""
    return f"{type(error).__name__}: {str(error)[:300]}"


def _attempt_detail(step: Step, result: SendResult, tries: int) -> str:
    detail = f"{step.channel} via {step.provider}: {result.status}"
    if tries > 1:
        detail += f" after {tries} tries"
    return detail + (f" ({result.error})" if result.error else "")


def _facts(booking: Booking | None, patient: Patient) -> BookingFacts:
    person = PatientFacts(phone=patient.phone, first_name=patient.first_name, last_name=patient.last_name,
                          patronymic=patient.patronymic, sex=Sex(patient.sex or "unknown"))
    if booking is None:
        raise ValueError("results and recalls are not planned yet")
    return BookingFacts(
        external_id=booking.external_id, starts_at=booking.starts_at, state=BookingState(booking.state),
        timezone=booking.timezone, patient=person, doctor_name=booking.doctor_name,
        doctor_specialty=booking.doctor_specialty, services=tuple(booking.services or ()),
        preparation=booking.preparation, comment=booking.comment, branch_id=booking.branch_id,
        address=booking.address)
