"""Use case: cascades whose step deadline passed without the receipt they wait for move to the next step.

The last step has no next one: its job waits for a receipt while the provider may still report (the step's
status window), then ends unconfirmed. Where the provider can be asked, the worker has asked it just before
(connector.usecases.polls.deadline_questions), so only a message still pending times out here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.core.cascade import Decision, Step, on_timeout
from connector.core.model import AttemptStatus, AuditWhat, JobStatus
from connector.core.unknown import is_unknown
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.ledger import apply_decision, audit, note_with, update_attempt, visit_times
from connector.store.mapping import fallback_scheduled
from connector.store.models import DeliveryAttempt
from connector.store.queue import claim_timed_out
from connector.store.writebacks import add_writebacks

log = logging.getLogger("connector.usecases.deadlines")

def advance_timed_out(session: Session, *, runtime: Runtime, accounts: Accounts, now: datetime,
                      limit: int = 500) -> int:
    """Steps whose deadline passed without the receipt they wait for: the attempt expires, the cascade moves."""
    jobs = claim_timed_out(session, now=now, limit=limit)
    if not jobs:
        return 0
    attempts = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.job_id.in_([j.id for j in jobs]))
                               .order_by(DeliveryAttempt.id)).all()
    current = {(a.job_id, a.step): a for a in attempts}
    visits = visit_times(session, jobs)
    audits = []
    cascades = _cascades(runtime, accounts, {job.tenant_id for job in jobs})
    for job in jobs:
        steps = cascades.get(job.tenant_id)
        if steps is None:
            continue  # said once per pass in the log; the job waits until its tenant is usable again
        attempt = current.get((job.id, job.cascade_step))
        status = AttemptStatus(attempt.status) if attempt else AttemptStatus.SENT
        decision: Decision = on_timeout(steps, job.cascade_step, status, now,
                                        sent_at=attempt.created_at if attempt else None,
                                        unknown=attempt is not None and is_unknown(attempt.error))
        waits = decision.job_status == JobStatus.AWAITING_DELIVERY  # the last step, within its status window
        if attempt is not None and status in (AttemptStatus.QUEUED, AttemptStatus.SENT) and not waits:
            update_attempt(attempt, AttemptStatus.EXPIRED, now, error="sent_timeout")
            audits.append(audit(job, now, AuditWhat.ATTEMPT_EXPIRED, "sent_timeout: no delivery receipt in time",
                                attempt))
        decision = fallback_scheduled(decision, job=job, tenant=runtime.tenants[job.tenant_id], visits=visits,
                                      now=now)
        apply_decision(job, decision, now)
        audits.append(audit(job, now, AuditWhat.of_job(decision.job_status), note_with(decision.note,
                                                                                        decision.waiting)))
    session.add_all(audits)
    add_writebacks(session, runtime.tenants, audits, now)
    return len(jobs)


def _cascades(runtime: Runtime, accounts: Accounts, tenant_ids: set[str]) -> dict[str, list[Step]]:
    """Each tenant's resolved cascade; a tenant gone from the configuration, or whose accounts cannot be built,
    is left out (and logged) so that it cannot stop the other tenants' cascades."""
    cascades = {}
    for tenant_id in tenant_ids:
        try:
            cascades[tenant_id] = accounts.steps(runtime.tenants[tenant_id])
        except Exception as error:
            log.warning("cascades of a tenant not advanced: %s", type(error).__name__,
                        extra={"fields": {"tenant": tenant_id}})
    return cascades
