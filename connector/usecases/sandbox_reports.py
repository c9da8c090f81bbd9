"""Use case: the sandbox's status reports, kept until due and then delivered through the same path as a real
provider's HTTP callback (connector.usecases.receipts.handle_callback).

The sandbox lives in our own process and cannot call us back: after each send it says which callbacks the send
will cause (connector.channels.base.SelfReporting), the worker records them with the send's result, and a worker
pass delivers those that are due. The demo relies on it: every path of `make demo` ends through these.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connector.channels.base import CallbackRequest
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.models import SandboxCallback
from connector.store.queue import claim_sandbox_reports
from connector.usecases.receipts import handle_callback


def keep_reports(session: Session, *, tenant_id: str, reports: Sequence[tuple[float, str]], now: datetime) -> None:
    """Keep a send's coming reports, as (seconds from now, callback body), until they are due."""
    for delay, body in reports:
        session.add(SandboxCallback(tenant_id=tenant_id, due_at=now + timedelta(seconds=delay), body=body))


def deliver_due_reports(session: Session, *, runtime: Runtime, accounts: Accounts, now: datetime,
                        limit: int = 500) -> int:
    """Hand the due reports to the receipts use case as callbacks, and forget them; how many."""
    due = claim_sandbox_reports(session, now=now, limit=limit)
    for item in due:
        request = CallbackRequest("POST", {"Content-Type": "application/json"}, {}, item.body.encode())
        handle_callback(session, request, runtime=runtime, accounts=accounts, tenant_id=item.tenant_id,
                        provider="sandbox", now=now)
        session.delete(item)
    return len(due)
