"""Use case: status reports from providers (callbacks, polling, the sandbox) move attempts and jobs forward.

A report only ever moves an attempt forward; a late receipt for an earlier step is recorded on that attempt
and never restarts the cascade. Reports for message ids we do not know are kept (the raw callback is an
inbound event) until an attempt takes their ids (connector.usecases.early_receipts), never dropped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from connector.channels.base import CallbackAuthError, CallbackRequest, Link, StatusReport
from connector.core.cascade import after_report
from connector.core.early_receipts import callback_outcome, held_note
from connector.core.invites import read_payload
from connector.core.model import AttemptStatus, AuditWhat, InboundOutcome, JobStatus
from connector.core.phones import normalise_phone
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.early_receipts import hold
from connector.store.ledger import (
    apply_decision,
    audit,
    note_with,
    record_inbound,
    remember_channels,
    storable,
    update_attempt,
    visit_times,
)
from connector.store.mapping import fallback_scheduled
from connector.store.models import AuditEvent, DeliveryAttempt, NotificationJob, Patient, PatientChannel, PatientLink
from connector.store.writebacks import add_writebacks
from connector.tenants import Tenant
from connector.usecases.refusals import record_refused

log = logging.getLogger("connector.usecases.receipts")

_LINK_CHANNEL = {"max_bot": "max", "telegram_bot": "telegram"}


@dataclass(frozen=True)
class CallbackAnswer:
    status_code: int
    body: str
    content_type: str = "application/json"


def handle_callback(session: Session, request: CallbackRequest, *, runtime: Runtime, accounts: Accounts,
                    tenant_id: str, provider: str, now: datetime) -> CallbackAnswer:
    """Check the callback, store it raw, apply its reports and links; all in the caller's transaction.

    Refusals are stored through `connector.usecases.refusals` (bounded when nobody vouched for them). Only a tenant
    that uses a provider takes its reports: the sandbox's have no secret, so elsewhere they are refused."""
    source = f"callback:{provider}"
    headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}

    def refuse(status: int, reason: str, message: str) -> CallbackAnswer:
        record_refused(session, tenant_id=tenant_id, source=source, raw=request.body, headers=headers, now=now,
                       reason=reason, message=message)
        return CallbackAnswer(status, json.dumps({"error": reason}))

    tenant = runtime.tenants.get(tenant_id)
    if tenant is None:
        return refuse(404, "unknown_tenant", "unknown tenant")
    if provider not in tenant.providers:
        return refuse(404, "unknown_provider", "the tenant does not use this provider")
    try:
        result = accounts.get(tenant_id, provider).channel.parse_callback(request)
    except CallbackAuthError as error:
        return refuse(401, "unauthorized", str(error))
    except Exception as error:
        # An adapter that cannot read a vouched-for body: kept whole for replay, and no 5xx for a retry.
        log.warning("callback could not be parsed: %s", type(error).__name__)
        return refuse(422, "unprocessable", f"the callback could not be read ({type(error).__name__})")
    inbound = record_inbound(session, tenant_id=tenant_id, source=source, body=request.body, headers=headers,
                             now=now, outcome=InboundOutcome.APPLIED)
    matched, unmatched = apply_known(session, result.reports, runtime=runtime, accounts=accounts,
                                     tenant_id=tenant_id, provider=provider, now=now)
    # A fast provider's receipt may beat its send's record: kept until an attempt takes its id, never dropped.
    held = hold(session, unmatched, tenant_id=tenant_id, provider=provider, inbound=inbound, now=now)
    linked = apply_links(session, tenant, result.links, now, runtime.settings.link_secret)
    if result.status_code >= 400:
        inbound.outcome, inbound.error = InboundOutcome.REJECTED, storable(result.body[:500], 500)
    else:
        inbound.outcome = callback_outcome(matched=matched, held=held, linked=linked)
        inbound.error = held_note(held) if held else None
    return CallbackAnswer(result.status_code, result.body, result.content_type)


def apply_reports(session: Session, reports: Sequence[StatusReport], *, runtime: Runtime, accounts: Accounts,
                  tenant_id: str, provider: str, now: datetime) -> tuple[int, int]:
    """Each report moves the attempt it names (and its job) forward; returns (matched, unmatched)."""
    matched, unmatched = apply_known(session, reports, runtime=runtime, accounts=accounts, tenant_id=tenant_id,
                                     provider=provider, now=now)
    return matched, len(unmatched)


def apply_known(session: Session, reports: Sequence[StatusReport], *, runtime: Runtime, accounts: Accounts,
                tenant_id: str, provider: str, now: datetime) -> tuple[int, list[StatusReport]]:
    """As apply_reports; returns how many matched, and the reports (the same objects) that named no attempt."""
    if not reports:
        return 0, []
    attempts = _Attempts.locked(session, reports, tenant_id=tenant_id, provider=provider)
    tenant = runtime.tenants.get(tenant_id)
    matched = 0
    unmatched: list[StatusReport] = []
    audits: list[AuditEvent] = []
    memory: list[tuple[int | None, str, AttemptStatus]] = []
    for report in reports:
        pair = attempts.named_by(report)
        if pair is None:
            unmatched.append(report)
            continue
        matched += 1
        attempt, job = pair
        at = report.at or now
        if not update_attempt(attempt, report.status, at, error=report.error, raw_status=report.raw_status):
            continue
        memory.append((job.patient_id, attempt.channel, report.status))
        audits.append(audit(job, now, AuditWhat.of_attempt(AttemptStatus(attempt.status)),
                            f"{attempt.channel} via {provider} reports {report.raw_status or report.status}", attempt))
        if tenant is not None:
            audits.extend(_move_job(session, job, attempt, tenant=tenant, accounts=accounts, now=now))
    if tenant is not None:
        remember_channels(session, now, memory, tenant.remember_not_registered)
    session.add_all(audits)
    add_writebacks(session, runtime.tenants, audits, now)
    return matched, unmatched


@dataclass(frozen=True)
class _Attempts:
    """The attempts a batch of reports names, with their jobs locked, by the provider's id and by ours."""

    by_provider_id: dict[str, tuple[DeliveryAttempt, NotificationJob]]
    by_our_id: dict[str, tuple[DeliveryAttempt, NotificationJob]]

    @classmethod
    def locked(cls, session: Session, reports: Sequence[StatusReport], *, tenant_id: str,
               provider: str) -> _Attempts:
        provider_ids = [r.provider_message_id for r in reports if r.provider_message_id]
        our_ids = [r.message_id for r in reports if r.message_id]
        rows = session.execute(
            select(DeliveryAttempt, NotificationJob)
            .join(NotificationJob, DeliveryAttempt.job_id == NotificationJob.id)
            .where(NotificationJob.tenant_id == tenant_id, DeliveryAttempt.provider == provider,
                   or_(DeliveryAttempt.provider_message_id.in_(provider_ids),
                       DeliveryAttempt.message_id.in_(our_ids)))
            .with_for_update(of=NotificationJob)
        ).all()
        return cls(by_provider_id={a.provider_message_id: (a, j) for a, j in rows if a.provider_message_id},
                   by_our_id={a.message_id: (a, j) for a, j in rows})

    def named_by(self, report: StatusReport) -> tuple[DeliveryAttempt, NotificationJob] | None:
        """The provider's id first; ours when it names nothing."""
        return (self.by_provider_id.get(report.provider_message_id) if report.provider_message_id else None) or (
            self.by_our_id.get(report.message_id) if report.message_id else None)


def _move_job(session: Session, job: NotificationJob, attempt: DeliveryAttempt, *, tenant: Tenant,
              accounts: Accounts, now: datetime) -> list[AuditEvent]:
    """The job's next state after its attempt's news (the cascade's rule); its audit line, if it moved."""
    decision = after_report(accounts.steps(tenant), job_status=JobStatus(job.status),
                            current_index=job.cascade_step, attempt_index=attempt.step,
                            status=AttemptStatus(attempt.status), now=now)
    if decision is None:
        return []
    if job.status == JobStatus.SENDING and decision.job_status == JobStatus.SCHEDULED:
        return []  # the worker holding the lease will decide from the same facts
    visits = visit_times(session, [job]) if decision.job_status == JobStatus.SCHEDULED else {}
    decision = fallback_scheduled(decision, job=job, tenant=tenant, visits=visits, now=now)
    apply_decision(job, decision, now)
    return [audit(job, now, AuditWhat.of_job(decision.job_status), note_with(decision.note, decision.waiting))]


def apply_links(session: Session, tenant: Tenant, links: Sequence[Link], now: datetime, secret: str) -> int:
    """A patient opened (or left) the clinic's bot: how max_bot / telegram_bot reach them from now on."""
    tenant_id = tenant.id
    for link in links:
        row = session.scalars(select(PatientLink).where(
            PatientLink.tenant_id == tenant_id, PatientLink.provider == link.provider,
            PatientLink.address == link.address)).one_or_none()
        if row is None:
            row = PatientLink(tenant_id=tenant_id, provider=link.provider, address=link.address, updated_at=now)
            session.add(row)
        patient_id = _patient_for(session, tenant_id, link, secret)
        if patient_id is not None:
            row.patient_id = patient_id
        row.active = link.active
        row.updated_at = now
        channel = _LINK_CHANNEL.get(link.provider)
        if row.patient_id is not None and channel and not link.active:
            remember_channels(session, now, [(row.patient_id, channel, AttemptStatus.NOT_REGISTERED)],
                              tenant.remember_not_registered)
        elif row.patient_id is not None and channel:
            _forget_absence(session, row.patient_id, channel, now)
    return len(links)


def _patient_for(session: Session, tenant_id: str, link: Link, secret: str) -> int | None:
    """By the patient's own shared contact, or by a signed invitation payload (connector.core.invites)."""
    phone = normalise_phone(link.phone) if link.phone else None
    if phone:
        return session.scalar(select(Patient.id).where(Patient.tenant_id == tenant_id, Patient.phone == phone))
    patient_id = read_payload(link.payload, secret)
    if patient_id is None:
        return None
    return session.scalar(select(Patient.id).where(Patient.tenant_id == tenant_id, Patient.id == patient_id))


def _forget_absence(session: Session, patient_id: int, channel: str, now: datetime) -> None:
    row = session.scalars(select(PatientChannel).where(
        PatientChannel.patient_id == patient_id, PatientChannel.channel == channel)).one_or_none()
    if row is not None:
        row.not_registered_until = None
        row.updated_at = now
