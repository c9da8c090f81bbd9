"""amoCRM as a tenant's Fetcher (the worker re-reads a lead a hook named) and as a write-back Target (a note).

Both are built per tenant from its settings; the REST client does the wire, connector.sources.amocrm the mapping.
The token provider is a plain long-lived token, or, for OAuth, the database's rotated pair (`tokens_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import requests
from sqlalchemy.orm import Session, sessionmaker

from connector.core.model import EventAction, SourceEvent
from connector.sources.amocrm import lead_event, main_contact_id
from connector.sources.amocrm_api import AmocrmApi, StaticToken, TokenGrant, TokenProvider, refresh_grant
from connector.sources.amocrm_mapping import AmocrmMapping
from connector.sources.amocrm_settings import AmocrmSource, AmocrmWriteback
from connector.sources.crm import CrmError, Hint, Report
from connector.store.crm_tokens import DbTokens

__all__ = ["NOTE_SERVICE", "AmocrmFetcher", "AmocrmNoteTarget", "tokens_for"]

SOURCE = "amocrm"
NOTE_SERVICE = "Уведомления пациентам"  # the sender's name a service note shows on the lead's timeline


def tokens_for(settings: AmocrmSource, sessions: sessionmaker[Session] | None, tenant_id: str, *,
               session: requests.Session | None = None) -> TokenProvider:
    """The tenant's token provider: its long-lived token, or its OAuth pair in the database (`sessions` needed)."""
    if settings.token is not None:
        return StaticToken(settings.token)
    oauth = settings.oauth
    if oauth is None or sessions is None:
        raise ValueError("amocrm: OAuth settings need the database to keep the rotated token pair")

    def refresh(refresh_token: str) -> TokenGrant:
        return refresh_grant(settings.api_base, oauth.client_id, oauth.client_secret, oauth.redirect_uri,
                             refresh_token, timeout=settings.timeout, session=session)

    return DbTokens(sessions, tenant_id, SOURCE, seed_refresh_token=oauth.refresh_token, refresh=refresh)


def _api(settings: AmocrmSource, tokens: TokenProvider, session: requests.Session | None,
         sleep: Callable[[float], None] | None, clock: Callable[[], float] | None) -> AmocrmApi:
    return AmocrmApi(settings.api_base, tokens, timeout=settings.timeout, session=session, sleep=sleep, clock=clock)


class AmocrmFetcher:
    """connector.sources.crm.Fetcher for one tenant's amoCRM account."""

    def __init__(self, api: AmocrmApi, mapping: AmocrmMapping, default_tz: str):
        self.api, self.mapping, self.default_tz = api, mapping, default_tz

    @classmethod
    def build(cls, settings: AmocrmSource, mapping: AmocrmMapping, default_tz: str, *, tokens: TokenProvider,
              session: requests.Session | None = None, sleep: Callable[[float], None] | None = None,
              clock: Callable[[], float] | None = None) -> AmocrmFetcher:
        return cls(_api(settings, tokens, session, sleep, clock), mapping, default_tz)

    def fetch(self, hint: Hint) -> SourceEvent | None:
        """The lead as it is now (re-read even for a deleted hint: a restore may have followed)."""
        lead = self.api.lead(hint.external_id)
        if lead is None:  # 204/404: gone
            return SourceEvent(EventAction.DELETE, hint.external_id, None, None)
        if lead.get("is_deleted") is True or self.mapping.state_of(lead.get("pipeline_id"),
                                                                   lead.get("status_id")) is None:
            return lead_event(lead, None, self.mapping, self.default_tz)  # no contact needed to say so
        contact_id = main_contact_id(lead)
        contact = self.api.contact(contact_id) if contact_id is not None else None
        return lead_event(lead, contact, self.mapping, self.default_tz)

    def related(self, hint: Hint) -> list[Hint] | None:
        return None  # every hint names a lead: a contact's hook names its leads at the door

    def changed(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        return self.api.changed_leads(since, until)

    def changed_contacts(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime]]:
        return self.api.changed_contact_leads(since, until)


class AmocrmNoteTarget:
    """connector.sources.crm.Target: each report as a service note on the lead; optionally also into a field."""

    def __init__(self, api: AmocrmApi, writeback: AmocrmWriteback):
        self.api, self.writeback = api, writeback

    @classmethod
    def build(cls, settings: AmocrmSource, writeback: AmocrmWriteback, *, tokens: TokenProvider,
              session: requests.Session | None = None, sleep: Callable[[float], None] | None = None,
              clock: Callable[[], float] | None = None) -> AmocrmNoteTarget:
        return cls(_api(settings, tokens, session, sleep, clock), writeback)

    def push(self, report: Report) -> None:
        """The note, then the field. amoCRM takes no idempotency key for notes, so a repeat (its first answer
        perhaps lost) looks at the lead's newest notes first and writes none that is already there."""
        if report.source != SOURCE:
            raise CrmError(f"amocrm: a report about a {report.source} booking cannot go to amoCRM", transient=False)
        if self.writeback.note and not (report.retry and self.api.has_note(report.external_id, report.text)):
            self.api.add_note(report.external_id, NOTE_SERVICE, report.text)
        if self.writeback.field_id is not None:
            self.api.set_field(report.external_id, self.writeback.field_id, report.text)
