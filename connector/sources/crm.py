"""What the intake and the outbox ask of a CRM (amoCRM, Bitrix24) and of any write-back target.

A CRM's webhook is thin: it says "entity X changed" (or was deleted), not what X now is. The web door turns a
body into `Hint`s (pure: connector.sources.amocrm / bitrix24), stores one pending event per hint in one INSERT,
and answers at once. The worker's fetch step (connector.usecases.fetching) then asks the tenant's `Fetcher` for
each entity, outside any transaction, and stores what it read as the event's parsed form, with the entity's own
change time as its version: the ordinary intake applies it, stale-proof by that time, not by arrival order.
Reconciliation (connector.usecases.reconcile) asks the same `Fetcher` what changed since its watermark.

A write-back goes the other way: the outbox (connector.usecases.outbox) gives each target a `Report` to push.

Adapters raise `CrmError` for every failed call: `transient` says whether trying again later may help (a
timeout, a 5xx, a 429 — with `retry_after` when known); a refusal (401 with a revoked token, 403, 404 of a
write target, a 4xx that says the request is wrong) is not transient and ends the row or event with its message.
Messages name the CRM, the call and the HTTP status; never a token, a phone, a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from connector.core.model import SourceEvent

__all__ = ["CrmError", "Fetcher", "Hint", "Report", "Target"]


@dataclass(frozen=True)
class Hint:
    """A thin webhook's word on one entity of its source: it changed, or it was deleted. `external_id` is the
    booking's id at the source as the API names it (an amoCRM lead id, a Bitrix24 deal id)."""

    external_id: str
    deleted: bool = False


CONTACT_ENTITIES = 20  # of a changed contact's leads or deals, the newest are read again: the visits still to come


def newest(ids: Iterable[int], limit: int = CONTACT_ENTITIES) -> list[str]:
    """The highest (newest) of these entity ids, each once, as the APIs write them: what a contact's change makes
    worth reading again, bounded so that a patient of twenty years costs a CRM no hundred calls."""
    return [str(entity) for entity in sorted(set(ids), reverse=True)[:limit]]


class CrmError(Exception):
    """A call to a CRM failed. `transient`: worth trying again later (after `retry_after` seconds when known)."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None,
                 status_code: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.status_code = status_code

    def __reduce__(self):  # keep the attributes when pickled (keyword-only arguments defeat the default)
        return (_rebuild, (type(self), str(self), self.transient, self.retry_after, self.status_code))


def _rebuild(kind: type[CrmError], message: str, transient: bool, retry_after: float | None,
             status_code: int | None) -> CrmError:
    return kind(message, transient=transient, retry_after=retry_after, status_code=status_code)


class Fetcher(Protocol):
    """One tenant's view of one CRM, for the intake (built per tenant; holds its REST client and mapping)."""

    def fetch(self, hint: Hint) -> SourceEvent | None:
        """The entity as it is now, mapped: an upsert with its facts and its own change time as `version`; a
        DELETE when the source says it is gone (a 404 of a deleted lead, `is_deleted`); None when the entity is
        no booking of ours (a pipeline or stage the mapping does not know). Raises CrmError, PayloadError."""
        ...

    def related(self, hint: Hint) -> list[Hint] | None:
        """None when the hint names a booking (fetch it); else the hints it stands for: a Bitrix24 contact
        changed names no booking, but its deals are read again with it. Raises CrmError."""
        ...

    def changed(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        """(external id, change time) of every entity changed in [since, until), for reconciliation; pages
        through the listing as the CRM allows. Raises CrmError."""
        ...

    def changed_contacts(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        """(external id, the contact's change time) of what to read again because a patient's contact changed in
        [since, until) (a new phone changes no lead or deal): amoCRM the contact's leads, Bitrix24 a `contact-<id>`
        hint that `related` expands. Raises CrmError."""
        ...


@dataclass(frozen=True)
class Report:
    """One write-back to push: what the clinic's administrator will read on the booking itself."""

    row_id: int  # the outbox row: a target may use it as an idempotency key (the generic target's webhook-id)
    tenant_id: str
    source: str  # where the booking came from: yclients | amocrm | bitrix24 | generic
    external_id: str  # the booking's id at its source (a record, a lead, a deal)
    branch_id: str | None  # the YCLIENTS company id of the record
    text: str  # «Напоминание доставлено в MAX 02.12 18:02»: Russian, short, local time, no phone
    status: str  # the machine word beside it: delivered | read | failed | expired | sent | fallback | …
    at: datetime  # when it happened (UTC)
    details: Mapping[str, Any] = field(default_factory=dict)  # job kind, channel, job id…: the generic JSON
    # An earlier push of this row failed, perhaps after the target took it (its answer lost): a target that can
    # look first (an amoCRM note, a Bitrix24 comment) does, so the administrator does not read it twice.
    retry: bool = False


class Target(Protocol):
    """One write-back target of one tenant (a YCLIENTS record field, an amoCRM note, a Bitrix24 comment, a URL)."""

    def push(self, report: Report) -> None:
        """Write the report; return only once the target took it. Raises CrmError."""
        ...
