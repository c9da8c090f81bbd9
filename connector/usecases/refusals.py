"""Refused bodies: what is kept of them and for how long.

A body we refuse is still evidence, so it is stored with why it was refused (`InboundEvent.reason`). But a
body nobody vouched for (an unknown tenant or provider, a wrong token or signature, a body over the size cap)
must not let a stranger fill the ledger: of those only the headers and the first KEEP_BYTES are kept
(`body_truncated` says so), and `purge_unauthenticated` deletes them after KEEP_FOR.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from connector.core.model import InboundOutcome
from connector.store.ledger import record_inbound
from connector.store.models import InboundEvent

# Reasons nobody vouched for; the only values the `reason` label of /metrics takes for them.
UNAUTHENTICATED = ("unknown_source", "unknown_tenant", "unknown_provider", "unauthorized", "body_too_large")
KEEP_BYTES = 4096
KEEP_FOR = timedelta(days=7)


def record_refused(session: Session, *, tenant_id: str, source: str, raw: bytes, headers: Mapping[str, str],
                   now: datetime, reason: str, message: str, truncated: bool = False) -> InboundEvent:
    """Store a refused body with its reason: whole when the sender proved who it is, else bounded."""
    if reason in UNAUTHENTICATED:
        truncated = truncated or len(raw) > KEEP_BYTES
        raw = raw[:KEEP_BYTES]
    return record_inbound(session, tenant_id=tenant_id, source=source, body=raw, headers=headers, now=now,
                          outcome=InboundOutcome.REJECTED, error=f"{reason}: {message}", truncated=truncated,
                          reason=reason)


def purge_unauthenticated(session: Session, now: datetime, keep_for: timedelta = KEEP_FOR) -> int:
    """Delete unauthenticated refusals older than `keep_for`; returns how many went. Run it daily."""
    result = session.execute(delete(InboundEvent).where(
        InboundEvent.reason.in_(UNAUTHENTICATED), InboundEvent.received_at < now - keep_for,
        InboundEvent.booking_id.is_(None)))
    return int(getattr(result, "rowcount", 0) or 0)
