"""Use case: early receipts (connector.core.early_receipts) — kept reports applied when an attempt takes their
ids, through the same path as any callback's (connector.usecases.receipts.apply_known), or given up.

Two ways in: the dispatcher's record step, right after it writes a group's provider ids (one query per group),
and a worker pass that catches a callback which raced that record (its report kept after the group's lookup)
and marks the callbacks of reports nobody took within the window `ignored`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from connector.core.early_receipts import give_up_before
from connector.entrypoints.bootstrap import Accounts, Runtime
from connector.store.early_receipts import as_report, held_for, now_named, release, waited_out
from connector.store.models import DeliveryAttempt, EarlyReceipt
from connector.usecases.receipts import apply_known


def on_recorded(session: Session, attempts: Sequence[tuple[str, DeliveryAttempt]], *, runtime: Runtime,
                accounts: Accounts, now: datetime) -> int:
    """The kept reports for these (tenant, attempt) pairs, just given their provider ids, applied; how many."""
    return _apply(session, held_for(session, attempts), runtime=runtime, accounts=accounts, now=now)


def settle_held(session: Session, *, runtime: Runtime, accounts: Accounts, now: datetime,
                limit: int = 500) -> tuple[int, int]:
    """Kept reports an attempt has named since are applied; those past the window are given up. (applied,
    given up)."""
    applied = _apply(session, now_named(session, limit=limit), runtime=runtime, accounts=accounts, now=now)
    expired = waited_out(session, before=give_up_before(now), limit=limit)
    release(session, expired, applied=False)
    return applied, len(expired)


def _apply(session: Session, rows: Sequence[EarlyReceipt], *, runtime: Runtime, accounts: Accounts,
           now: datetime) -> int:
    groups: dict[tuple[str, str], list[EarlyReceipt]] = {}
    for row in rows:
        groups.setdefault((row.tenant_id, row.provider), []).append(row)
    applied: list[EarlyReceipt] = []
    for (tenant_id, provider), group in groups.items():
        reports = [as_report(row) for row in group]
        _, unmatched = apply_known(session, reports, runtime=runtime, accounts=accounts, tenant_id=tenant_id,
                                   provider=provider, now=now)
        left = {id(report) for report in unmatched}
        applied += [row for row, report in zip(group, reports, strict=True) if id(report) not in left]
    release(session, applied, applied=True)
    return len(applied)
