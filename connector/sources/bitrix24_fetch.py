"""One tenant's Bitrix24 portal for the intake (`Bitrix24Fetcher`) and the outbox (`Bitrix24CommentTarget`).

The fetcher re-reads what a hint names: a deal (crm.item.get) and its contact (crm.contact.get), or a booking of the
booking module (booking.v1.booking.get, its clients, the first CRM contact among them), and maps it with the pure
functions of connector.sources.bitrix24. The target writes a report on the deal's timeline, and/or into a user
field: that field is stripped from every deal before mapping, so the echo of our own write (ONCRMDEALUPDATE)
re-reads the same facts and the intake judges it a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import requests

from connector.core.model import EventAction, SourceEvent
from connector.sources.bitrix24 import CONTACT_PREFIX, booking_id, contact_id, deal_id, map_booking, map_deal
from connector.sources.bitrix24_api import Bitrix24Api
from connector.sources.bitrix24_mapping import Bitrix24Mapping
from connector.sources.bitrix24_settings import Bitrix24Source, Bitrix24Writeback
from connector.sources.crm import CrmError, Hint, Report
from connector.sources.errors import PayloadError

__all__ = ["Bitrix24CommentTarget", "Bitrix24Fetcher"]


class Bitrix24Fetcher:
    """The `Fetcher` of one tenant's portal (connector.sources.crm)."""

    def __init__(self, api: Bitrix24Api, mapping: Bitrix24Mapping, default_tz: str, *,
                 writeback_field: str | None = None):
        self.api, self.mapping, self.default_tz = api, mapping, default_tz
        self.writeback_field = writeback_field

    @classmethod
    def build(cls, settings: Bitrix24Source, mapping: Bitrix24Mapping, default_tz: str, *,
              writeback: Bitrix24Writeback | None = None, session: requests.Session | None = None,
              sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None,
              wall: Callable[[], float] | None = None) -> Bitrix24Fetcher:
        api = Bitrix24Api(settings.webhook_url, timeout=settings.timeout, session=session, sleep=sleep,
                          clock=clock, wall=wall)
        return cls(api, mapping, default_tz, writeback_field=writeback.field if writeback else None)

    def fetch(self, hint: Hint) -> SourceEvent | None:
        if hint.deleted:  # the webhook said so; there is nothing left to read
            return SourceEvent(EventAction.DELETE, hint.external_id, None, None)
        booking = booking_id(hint.external_id)
        if booking is not None:
            return self._booking(hint.external_id, booking)
        deal = self.api.deal(deal_id(hint.external_id))
        if deal is None:  # "not found": deleted since the webhook was sent
            return SourceEvent(EventAction.DELETE, hint.external_id, None, None)
        if self.writeback_field is not None:
            deal = {key: value for key, value in deal.items() if key != self.writeback_field}
        if self.mapping.state_of(deal) is None:
            return None  # no booking of ours: no need to read its contact
        contact = self._contact(deal.get("contactId"))
        event = map_deal(deal, contact, self.mapping, self.default_tz)
        if event is not None and event.external_id != hint.external_id:
            event = replace(event, external_id=hint.external_id)  # keyed as the hint was (it is the same deal)
        return event

    def related(self, hint: Hint) -> list[Hint] | None:
        """A contact's newest deals, read again with the contact: a new phone reaches them."""
        contact = contact_id(hint.external_id)
        if contact is None:
            return None
        return [Hint(deal) for deal in self.api.deals_of_contact(contact)]

    def changed(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        """Deals only: the booking module's listing has no change time to filter on."""
        return self.api.changed_deals(since, until)

    def changed_contacts(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        """Each changed contact as a `contact-<id>` hint: its fetch reads its deals again (`related`)."""
        return ((CONTACT_PREFIX + contact, at) for contact, at in self.api.changed_contacts(since, until))

    def _booking(self, external_id: str, booking: str) -> SourceEvent | None:
        if not self.mapping.booking_module:
            return None
        found = self.api.booking(booking)
        if found is None:
            return SourceEvent(EventAction.DELETE, external_id, None, None)
        contact_id = next((str(client.get("id")) for client in self.api.booking_clients(booking)
                           if _is_crm_contact(client)), None)
        return map_booking(found, self._contact(contact_id), self.mapping, self.default_tz)

    def _contact(self, raw_id: Any) -> dict[str, Any] | None:
        """The contact, or None when the deal has none (contactId 0) or it is gone: the booking keeps its facts."""
        text = str(raw_id).strip() if isinstance(raw_id, int | str) and not isinstance(raw_id, bool) else ""
        if not (text.isascii() and text.isdigit()) or int(text) <= 0:
            return None
        return self.api.contact(text)


def _is_crm_contact(client: Any) -> bool:
    kind = client.get("type") if isinstance(client, dict) else None
    return (isinstance(kind, dict) and str(kind.get("code", "")).upper() == "CONTACT"
            and str(kind.get("module", "crm")).lower() == "crm")


class Bitrix24CommentTarget:
    """The write-back `Target` of one tenant's portal: a timeline comment and/or a user field of the deal."""

    def __init__(self, api: Bitrix24Api, writeback: Bitrix24Writeback):
        self.api, self.writeback = api, writeback

    @classmethod
    def build(cls, settings: Bitrix24Source, writeback: Bitrix24Writeback, *,
              session: requests.Session | None = None, sleep: Callable[[float], None] | None = None,
              clock: Callable[[], float] | None = None) -> Bitrix24CommentTarget:
        return cls(Bitrix24Api(settings.webhook_url, timeout=settings.timeout, session=session, sleep=sleep,
                               clock=clock), writeback)

    def push(self, report: Report) -> None:
        if booking_id(report.external_id) is not None:
            # A booking of the booking module is no CRM item: it has no timeline and no user fields.
            raise CrmError("bitrix24: a booking of the booking module takes no write-back", transient=False)
        try:
            deal = deal_id(report.external_id)
        except PayloadError:
            raise CrmError("bitrix24: the booking's external id is not a deal id", transient=False) from None
        # The field first: writing it again is harmless, so a retry after a failed comment repeats nothing visible.
        if self.writeback.field is not None:
            self.api.set_field(deal, self.writeback.field, report.text)
        if self.writeback.comment and not (report.retry and self.api.has_comment(deal, report.text)):
            self.api.add_comment(deal, report.text)  # a repeat looks first: its first answer may have been lost
