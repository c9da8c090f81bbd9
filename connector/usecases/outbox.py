"""Use case: the worker's push pass over the write-back outbox (connector.store.writebacks).

Three steps, and no transaction open during a push:
  1. claim: the due rows that are the oldest unsent of their booking and target, leased in one short transaction;
  2. push each through its tenant's `Target` (connector.usecases.writeback_targets), outside any transaction;
  3. record every result in one transaction: sent; a transient error tried again later by the core's backoff
     (a target's Retry-After honoured); a refusal, or the last try, failed with its error for all to see.
A target that fails transiently is not called again in the same pass: its other rows wait for its retry time
untouched, so an outage costs one call per pass, not one per row. A delivery never waits for any of this, and
nothing here changes a delivery's outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from connector.core.writeback import retry_at
from connector.entrypoints.bootstrap import Runtime
from connector.sources.crm import CrmError, Report, Target
from connector.store.writebacks import Claimed, Pushed, claim_writebacks, record_pushes
from connector.usecases.writeback_targets import TARGETS, TargetFactory

log = logging.getLogger("connector.usecases.outbox")

BATCH = 20  # rows per pass, pushed one after another: some 15 minutes at worst (store.writebacks.WRITEBACK_LEASE)


def push_until_idle(runtime: Runtime, *, targets: Mapping[str, TargetFactory] = TARGETS, batch: int = BATCH,
                    max_passes: int = 50) -> int:
    """Passes until nothing is due (at most `max_passes`: a booking's next row becomes due when its previous one
    is sent); the number of rows pushed."""
    pushed = 0
    for _ in range(max_passes):
        done = push_once(runtime, targets=targets, batch=batch)
        pushed += done
        if done == 0:
            break
    return pushed


def push_once(runtime: Runtime, *, targets: Mapping[str, TargetFactory] = TARGETS, batch: int = BATCH) -> int:
    with runtime.sessions.begin() as session:
        claimed = claim_writebacks(session, now=runtime.clock(), limit=batch)
    if not claimed:
        return 0
    pass_ = _Pass(runtime, targets)
    results = [pass_.push(row) for row in claimed]
    with runtime.sessions.begin() as session:
        record_pushes(session, results, runtime.clock())
    return sum(1 for result in results if result.error is None)


class _Pass:
    """One pass's targets, built once per tenant and name, and those that failed transiently in it."""

    def __init__(self, runtime: Runtime, factories: Mapping[str, TargetFactory]):
        self.rt, self.factories = runtime, factories
        self.targets: dict[tuple[str, str], Target | None] = {}
        self.down: dict[tuple[str, str], Pushed] = {}  # a target's transient failure in this pass

    def push(self, row: Claimed) -> Pushed:
        key = (row.tenant_id, row.target)
        if key in self.down:  # not called again: the row waits with the target, its tries untouched
            failed = self.down[key]
            return Pushed(row.id, row.tries, failed.error, failed.retry_at or self.rt.clock())
        try:
            target = self._target(key)
            if target is None:
                return Pushed(row.id, row.tries + 1, f"{row.target}: the tenant is not set up for this target")
            target.push(_report(row))
        except CrmError as error:
            return self._failed(row, key, str(error), error.transient, error.retry_after)
        except Exception as error:  # a broken adapter costs its row a try, never the pass
            log.exception("a write-back push failed", extra={"fields": {"tenant": row.tenant_id,
                                                                         "target": row.target}})
            return self._failed(row, key, f"{type(error).__name__}: {str(error)[:300]}", True, None)
        return Pushed(row.id, row.tries + 1)

    def _failed(self, row: Claimed, key: tuple[str, str], error: str, transient: bool,
                retry_after: float | None) -> Pushed:
        tries = row.tries + 1
        when: datetime | None = retry_at(tries, retry_after, self.rt.clock()) if transient else None
        result = Pushed(row.id, tries, error, when)
        if transient:
            self.down[key] = result
        return result

    def _target(self, key: tuple[str, str]) -> Target | None:
        if key not in self.targets:
            tenant = self.rt.tenants.get(key[0])
            factory = self.factories.get(key[1])
            self.targets[key] = factory(tenant, self.rt) if tenant is not None and factory is not None else None
        return self.targets[key]


def _report(row: Claimed) -> Report:
    return Report(row_id=row.id, tenant_id=row.tenant_id, source=row.source, external_id=row.external_id,
                  branch_id=row.branch_id, text=row.text, status=row.word, at=row.at, details=row.details,
                  retry=row.tries > 0)
