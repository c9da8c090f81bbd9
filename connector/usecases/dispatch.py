"""Use case: one worker pass over due jobs — claim with a lease, prepare, send through the pool, record.

Three short transactions per pass and none open during a provider call:
  1. claim: `SELECT … FOR UPDATE SKIP LOCKED` the due jobs (and those whose lease ran out), write the lease;
  2. prepare: the core decides what to do with each job (connector.core.preparation); this renders the text
     from the current booking and writes each attempt `queued` with our id;
  3. (no transaction but one UPDATE per group) send concurrently through a window (connector.usecases.window):
     each group's attempts are marked started just before the pool takes them;
  4. record: the provider's answers, the cascade's decisions, the audit trail (retried until it lands).
A worker that dies between 3 and 4 leaves a started `queued` attempt, its outcome unknown: whoever reclaims the
job resolves it by the step's on_unknown (connector.core.preparation): move on to the next channel, await its
receipts (the last step's default), or send once more. An attempt that was never started is withdrawn and its
job sent as if nothing happened; a pass that breaks releases its unsent jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.channels.base import OutboundMessage, Recipient
from connector.core.cascade import Step, after_send
from connector.core.model import AttemptStatus, AuditWhat, JobKind, JobStatus
from connector.core.preparation import Await, Broken, Defer, Finish, Reach, SendOn, Unusable, prepare
from connector.core.templates import WordingError
from connector.core.texts import preparation_for, render_message
from connector.core.unknown import after_unknown, is_unknown
from connector.core.warmup import Allowance
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.ledger import (
    apply_decision,
    audit,
    defer_job,
    finish_job,
    insert_trail,
    mark_started,
    note_with,
    queue_attempt,
    release_jobs,
    remember_channels,
    trail_of_preparation,
    update_attempt,
    visit_times,
)
from connector.store.mapping import DueBatch, booking_facts, due_job, fallback_scheduled, load_due
from connector.store.models import AuditEvent, Booking, DeliveryAttempt, NotificationJob, Patient
from connector.store.queue import claim_due_jobs, renew_leases
from connector.store.warmup import warmup_caps
from connector.store.writebacks import add_writebacks
from connector.tenants import Tenant
from connector.usecases.batches import BatchStream
from connector.usecases.early_receipts import on_recorded
from connector.usecases.sandbox_reports import keep_reports
from connector.usecases.sending import Send, Sent, attempt_detail, send_one
from connector.usecases.window import PassFailedError, send_in_window, tried, until_landed

log = logging.getLogger("connector.usecases.dispatch")

class Dispatcher:
    def __init__(self, runtime: Runtime, accounts: Accounts, worker_id: str, pool: ThreadPoolExecutor,
                 retry_base: float = 0.5, batch: int = 500, window: int = 32):
        self.rt, self.accounts, self.worker_id, self.pool = runtime, accounts, worker_id, pool
        # window: calls in flight at most (the pool's size); twice it is what a kill may leave unknown
        self.retry_base, self.batch, self.window = retry_base, batch, window

    # --- the pass ---------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim, prepare, send and record one batch; the number of jobs handled (`run_until_idle` is the
        worker's pass: batch after batch without the pool waiting between them). A pass that breaks hands
        back at once the jobs it did not send (and raises): none waits out its lease in silence."""
        ids = self._claim()
        if not ids:
            return 0
        sends = self._prepare_claimed(ids)
        try:
            send_in_window(sends, size=self.window, start=self._start, record=lambda done: self._record_now(done, ids),
                           submit=lambda send: self.pool.submit(self._send, send))
        except PassFailedError as failed:
            self._release([send.job_id for send in failed.unsent], failed.__cause__ or failed)
            raise
        return len(ids)

    def _claim(self) -> list[int]:
        with self.rt.sessions.begin() as session:
            return claim_due_jobs(session, worker_id=self.worker_id, now=self.rt.clock(), limit=self.batch)

    def _prepare_claimed(self, ids: list[int]) -> list[Send]:
        """Prepare claimed jobs in their own transaction; if that breaks, they are released (nothing was sent)."""
        try:
            with self.rt.sessions.begin() as session:
                return self._prepare(session, ids, self.rt.clock())
        except Exception as error:
            self._release(ids, error)
            raise

    def _start(self, group: list[Send]) -> None:
        """Mark the group started; a database that blinked is given some 6 s (the group's calls wait meanwhile;
        far inside their lease, so nobody else takes them), one that stays away breaks the pass, which then
        releases what it did not send."""
        ids = [send.attempt_id for send in group]
        if not tried(lambda: self._write(lambda session: mark_started(session, ids, self.rt.clock())), tries=6):
            raise PassFailedError(list(group))

    def _record_now(self, results: list[Sent], held: list[int]) -> None:
        """Write the answers; a write the database did not take (the connection dropped) is tried again, the
        leases of the pass's jobs renewed in between, until it lands: dropped, they would look like a dead
        worker's sends and go again on the next channel."""
        if results:
            until_landed(lambda: self._write(lambda session: self._record(session, results, self.rt.clock())),
                         between=lambda: self._write(lambda session: renew_leases(
                             session, held, worker_id=self.worker_id, now=self.rt.clock())))

    def _release(self, job_ids: list[int], error: BaseException) -> None:
        """Hand back what a failed pass did not send. If the database stays away, their leases run out and
        whoever takes them sends them as if nothing happened (their calls never began)."""
        log.error("a dispatch pass failed; releasing %d jobs", len(job_ids), exc_info=error)
        reason = _reason(error) if isinstance(error, Exception) else type(error).__name__
        if job_ids:
            tried(lambda: self._write(lambda session: session.add_all(release_jobs(
                session, job_ids, worker_id=self.worker_id, reason=reason, now=self.rt.clock()))))

    def _write(self, write: Callable[[Session], object]) -> None:
        with self.rt.sessions.begin() as session:
            write(session)

    def run_until_idle(self, max_passes: int | None = None) -> int:
        """Batches until nothing is due (at most `max_passes`), as one stream: the next batch is claimed and
        prepared while the last window of the previous one is in flight (the lease makes that safe), so the
        send pool never waits for the ledger between batches, and a burst of any size goes in one run."""
        stream = BatchStream(claim=self._claim, prepare=self._prepare_claimed, max_batches=max_passes)
        try:
            send_in_window([], size=self.window, start=self._start, more=stream.next_batch,
                           record=lambda done: self._record_now(done, stream.in_flight(done)),
                           submit=lambda send: self.pool.submit(self._send, send))
        except PassFailedError as failed:
            self._release([send.job_id for send in failed.unsent], failed.__cause__ or failed)
            raise
        return stream.claimed

    # --- 2. prepare: the core decides (connector.core.preparation), this writes --------------------------

    def _prepare(self, session: Session, ids: list[int], now: datetime) -> list[Send]:
        batch = load_due(session, ids)
        caps = warmup_caps(session, self.rt.tenants, {job.tenant_id for job, _, _ in batch.rows}, now)
        plans: list[_Plan] = []
        audits: list[AuditEvent] = []
        for job, booking, patient in batch.rows:
            try:
                plan = self._prepare_one(job, booking, patient, batch, caps.get(job.tenant_id, {}), now, audits)
            except Exception as error:  # one job's bad data or broken adapter costs that job, not the batch
                log.exception("a job could not be prepared", extra={"fields": {"tenant": job.tenant_id, "job": job.id}})
                plan = None
                audits.append(finish_job(job, JobStatus.FAILED, f"could not be prepared: {_reason(error)}", now))
            if plan is not None:
                plans.append(plan)
        session.add_all([plan.attempt for plan in plans])
        session.flush()
        for plan in plans:
            audits.append(audit(plan.job, now, AuditWhat.ATTEMPT_QUEUED, f"step {plan.attempt.step + 1}: "
                                f"{plan.step.channel} via {plan.step.provider}", plan.attempt))
        insert_trail(session, audits)
        add_writebacks(session, self.rt.tenants, audits, now)
        return [Send(plan.job.id, plan.attempt.id, plan.job.tenant_id, plan.step, plan.message) for plan in plans]

    def _prepare_one(self, job: NotificationJob, booking: Booking | None, patient: Patient | None, batch: DueBatch,
                     caps: Mapping[str, Allowance | Unusable], now: datetime, audits: list[AuditEvent]
                     ) -> _Plan | None:
        tenant = self.rt.tenants.get(job.tenant_id)
        steps, reach, recipient = self._reach(tenant, patient, batch, now)
        unfinished = batch.unfinished.get(job.id, [])
        outcome = prepare(due_job(job, booking, unfinished, batch.unknown_before.get(job.id, ())), steps, reach,
                          caps, now)
        audits += trail_of_preparation(job, outcome, unfinished, steps or (), now)
        match outcome:
            case Finish():
                audits.append(finish_job(job, outcome.status, outcome.reason, now))
            case Defer():
                audits.append(defer_job(job, step=outcome.step, until=outcome.until, reason=outcome.reason, now=now))
            case Await() if steps:
                decision = after_unknown(steps, outcome.step, "the worker stopped mid-send", now, resent=False)
                apply_decision(job, decision, now)
                audits.append(audit(job, now, AuditWhat.of_job(decision.job_status), decision.note))
            case SendOn() if tenant is not None and patient is not None and recipient is not None and steps:
                try:
                    job.rendered_text = _render(job, booking, patient, tenant, now)
                except (WordingError, ValueError) as error:
                    audits.append(finish_job(job, JobStatus.FAILED, f"the message could not be rendered: {error}",
                                             now))
                    return None
                attempt = queue_attempt(job, step=outcome.step, provider_step=steps[outcome.step], now=now)
                message = OutboundMessage(attempt.message_id, job.tenant_id, attempt.channel, recipient,
                                          job.rendered_text)
                return _Plan(job, attempt, steps[outcome.step], message)
        return None

    def _reach(self, tenant: Tenant | None, patient: Patient | None, batch: DueBatch, now: datetime
               ) -> tuple[list[Step] | None, Reach | Broken | None, Recipient | None]:
        """The tenant's cascade (None: the tenant is gone), whom the patient can be reached through (None: no
        patient with a phone; Broken: an account whose adapter cannot be built), and their addresses."""
        if tenant is None:
            return None, None, None
        if patient is None:
            return [], None, None
        recipient = Recipient(patient.phone, batch.links.get(patient.id, {}))
        try:
            steps = self.accounts.steps(tenant)
            unaddressable = frozenset(
                i for i, step in enumerate(steps)
                if not self.accounts.get(tenant.id, step.provider).channel.can_address(recipient, step.channel))
        except Exception as error:  # one tenant's broken account costs its jobs, not the batch
            log.exception("an account could not be used", extra={"fields": {"tenant": tenant.id}})
            return [], Broken(_reason(error)), recipient
        reach = Reach(opted_out=batch.opted_out(patient), not_registered=batch.absent(patient, now),
                      unaddressable=unaddressable)
        return steps, reach, recipient

    # --- 3. send (no transaction) -----------------------------------------------------------------------

    def _send(self, send: Send) -> Sent:
        return send_one(self.accounts.get(send.tenant_id, send.step.provider), send, retry_base=self.retry_base)

    # --- 4. record --------------------------------------------------------------------------------------

    def _record(self, session: Session, results: list[Sent], now: datetime) -> None:
        if not results:
            return
        # Locked: a provider's callback may be settling one of these jobs at this very moment.
        jobs = {job.id: job for job in session.scalars(select(NotificationJob).where(
            NotificationJob.id.in_([sent.send.job_id for sent in results])).with_for_update())}
        attempts = {a.id: a for a in session.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.id.in_([sent.send.attempt_id for sent in results])))}
        audits: list[AuditEvent] = []
        memory: dict[str, list[tuple[int | None, str, AttemptStatus]]] = {}
        visits = visit_times(session, jobs.values())
        for sent in results:
            job, attempt = jobs[sent.send.job_id], attempts[sent.send.attempt_id]
            memory.setdefault(job.tenant_id, []).append((job.patient_id, attempt.channel, sent.result.status))
            if self._record_one(job, attempt, sent, visits, now, audits):
                keep_reports(session, tenant_id=job.tenant_id, reports=sent.reports, now=now)
        for tenant_id, facts in memory.items():
            remember_channels(session, now, facts, self.rt.tenants[tenant_id].remember_not_registered)
        insert_trail(session, audits)
        add_writebacks(session, self.rt.tenants, audits, now)
        # Receipts that came before these ids were written (a fast provider): applied now, in one lookup.
        on_recorded(session, [(jobs[s.send.job_id].tenant_id, attempts[s.send.attempt_id]) for s in results],
                    runtime=self.rt, accounts=self.accounts, now=now)

    def _record_one(self, job: NotificationJob, attempt: DeliveryAttempt, sent: Sent,
                    visits: Mapping[int, tuple[datetime, str]], now: datetime, audits: list[AuditEvent]) -> bool:
        """The provider's answer on the attempt, and the cascade's decision on the job; False when a receipt
        settled the job while we were sending (the decision is then not ours)."""
        result = sent.result
        attempt.tries = sent.tries
        attempt.provider_message_id = result.provider_message_id
        update_attempt(attempt, result.status, now, error=result.error)
        audits.append(audit(job, now, AuditWhat.of_attempt(AttemptStatus(attempt.status)),
                            attempt_detail(sent.send.step, result, sent.tries, sent.unknown), attempt))
        if result.status == AttemptStatus.REJECTED:
            # A refusal of the content or the account (credentials, balance, sender name) is the clinic's
            # configuration to fix, not the patient's: say so where operators look.
            log.warning("provider rejected a message: %s", result.error, extra={"fields": {
                "tenant": job.tenant_id, "provider": sent.send.step.provider, "job": job.id}})
        if job.status != JobStatus.SENDING:
            return False  # a receipt already settled it while we were sending
        if job.lease_owner != self.worker_id or job.cascade_step != attempt.step:
            # Our lease ran out while this answer waited for the database, and another worker took the job: the
            # answer stays on its attempt (the proof), the job's next move is that worker's.
            return False
        tenant = self.rt.tenants[job.tenant_id]
        steps = self.accounts.steps(tenant)
        if sent.unknown is not None and is_unknown(result.error):  # sent-unknown: the step's on_unknown decides
            decision = after_unknown(steps, attempt.step, sent.unknown.why, now, resent=sent.unknown.lost > 1)
        else:
            decision = after_send(steps, attempt.step, AttemptStatus(attempt.status), now)
        decision = fallback_scheduled(decision, job=job, tenant=tenant, visits=visits, now=now)
        apply_decision(job, decision, now)
        audits.append(audit(job, now, AuditWhat.of_job(decision.job_status),
                            note_with(decision.note, decision.waiting)))
        return True


@dataclass(frozen=True)
class _Plan:
    job: NotificationJob
    attempt: DeliveryAttempt
    step: Step
    message: OutboundMessage


def _render(job: NotificationJob, booking: Booking | None, patient: Patient, tenant: Tenant, now: datetime) -> str:
    """The text from the booking as it stands now, in the clinic's words. Raises WordingError or ValueError."""
    facts = booking_facts(booking, patient)
    if facts.preparation is None and tenant.preparations:
        facts = replace(facts, preparation=preparation_for(facts.services, tenant.preparations))
    return render_message(JobKind(job.kind), facts, now=now, tz=(booking.timezone if booking else tenant.timezone),
                          clinic_name=tenant.name, address=tenant.address, overrides=tenant.templates)


def _reason(error: Exception) -> str:
    """An unexpected exception as an audit line: its type (the message alone may not say what broke), short."""
    return f"{type(error).__name__}: {str(error)[:300]}"
