"""The channel interface: what every provider adapter offers, in our words. Adapters translate wire formats only.

Errors an adapter may raise (everything else from a library is caught at the boundary and translated):

    ChannelError
    ├── TransientError      a timeout, a 5xx, a 429: worth retrying later in the same step (retry_after honoured)
    │   └── OutcomeUnknownError   the request went out and its answer was lost (read timeout, reset after
    │                             sending): the provider may have taken it. Never retried blindly: the
    │                             dispatcher asks (`lookup`, where `can_lookup`) or the step's on_unknown decides.
    ├── HttpRefused         a non-2xx answer, neither 429 nor 5xx, to a call that expects JSON (smsc, smsru)
    └── CallbackAuthError   a status callback that does not prove it comes from the provider (answer 401)

Transport errors (requests' exceptions, 429, 5xx) are translated once, in connector.transport.wire.request.

A permanent refusal is not an exception: `send` returns a SendResult with status REJECTED, FAILED or
NOT_REGISTERED, and the cascade moves on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import requests

from connector.core.model import AttemptStatus
from connector.transport.sessions import new_session

DEFAULT_TIMEOUT = (5.0, 15.0)  # connect, read (seconds): every outbound call carries one


class ChannelError(Exception):
    """Base of the errors an adapter raises."""


class TransientError(ChannelError):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    """The request was sent and no answer came back: the provider may have taken it, so a blind retry may send
    the same message twice. Still a TransientError, so callers that do not ask (polls) treat it as before; the
    dispatcher tells it apart (connector.core.unknown)."""


class HttpRefused(ChannelError):
    """A non-2xx answer that is neither a 429 nor a 5xx (a wrong base_url, a proxy refusing us…)."""

    def __init__(self, provider: str, status_code: int):
        super().__init__(f"{provider}: HTTP {status_code}")
        self.status_code = status_code


class CallbackAuthError(ChannelError):
    pass


@dataclass(frozen=True)
class Recipient:
    """Who to reach, with the addresses we know: a phone, and ids linked through bots (max_bot, telegram_bot)."""

    phone: str | None  # E.164
    links: Mapping[str, str] = field(default_factory=dict)  # provider name → user_id / chat_id


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str  # ours, unique; providers that accept a client id get it, so a lost answer can be looked up
    tenant_id: str
    channel: str  # max, telegram, whatsapp, sms
    recipient: Recipient
    text: str


@dataclass(frozen=True)
class SendResult:
    status: AttemptStatus  # SENT or QUEUED on success; NOT_REGISTERED, REJECTED or FAILED when refused
    provider_message_id: str | None = None
    error: str | None = None  # the provider's words or code, for the audit trail (never patient data)


@dataclass(frozen=True)
class StatusReport:
    """One status change of one message, as a callback or a poll told it."""

    status: AttemptStatus
    provider_message_id: str | None = None
    message_id: str | None = None  # ours, where the provider echoes it
    at: datetime | None = None
    error: str | None = None
    raw_status: str | None = None


@dataclass(frozen=True)
class Link:
    """A patient reached us through a bot: from now on this provider can address them (or no longer can)."""

    provider: str
    address: str  # user_id / chat_id
    phone: str | None = None  # when the patient shared a contact
    payload: str | None = None  # deep-link payload (e.g. our patient reference)
    active: bool = True  # False: the patient blocked or stopped the bot


@dataclass(frozen=True)
class CallbackRequest:
    """An HTTP request to /callbacks/<provider>/<tenant>, framework-free."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class CallbackResult:
    reports: Sequence[StatusReport] = ()
    links: Sequence[Link] = ()
    status_code: int = 200
    body: str = '{"ok": true}'  # some providers want a particular answer (SMS.ru: "100")
    content_type: str = "application/json"


class Channel(ABC):
    """One provider account of one tenant. Construct with the tenant's config for it and a requests.Session."""

    name: str = ""
    channels: frozenset[str] = frozenset()  # which of max/telegram/whatsapp/sms it carries
    has_receipts: bool = True  # False: a successful send is final unless the step says otherwise
    can_poll: bool = False
    # True: the provider keeps the message id we send and answers by it (`lookup`), so a call whose answer was
    # lost can be asked about before anything is sent again.
    can_lookup: bool = False
    # How long after a send the provider may still report on it. A message sent on the last step and not yet
    # confirmed is waited for this long (and asked about, where `can_poll`) before its job ends unconfirmed.
    # A day for providers that only call back: a receipt later than that is rare, and is still recorded when
    # it comes. Providers with a status API say how long it remembers (SMS gateways: days).
    status_window: timedelta = timedelta(days=1)

    def __init__(self, config: Mapping[str, Any], session: requests.Session | None = None):
        self.config = config
        self.http = session or new_session()

    @abstractmethod
    def send(self, message: OutboundMessage) -> SendResult:
        """Hand one message to the provider. Raises TransientError when it is worth trying again."""

    def can_address(self, recipient: Recipient, channel: str) -> bool:
        """Whether this provider has what it needs to reach the patient (a phone, a linked chat)."""
        return recipient.phone is not None

    def parse_callback(self, request: CallbackRequest) -> CallbackResult:
        """Turn a provider's status callback into reports. Raises CallbackAuthError when not authentic."""
        raise NotImplementedError(f"{self.name} sends no callbacks")

    def poll(self, provider_message_ids: Sequence[str]) -> list[StatusReport]:
        """Ask the provider for the current status of messages it has no callback for."""
        raise NotImplementedError(f"{self.name} cannot be polled")

    def lookup(self, message: OutboundMessage) -> SendResult | None:
        """What the provider holds under our message id: the answer the send would have given (its status and
        provider id), or None when it has no such message (it was not sent). Raises ChannelError (a
        TransientError among them) when it cannot say."""
        raise NotImplementedError(f"{self.name} cannot be asked by our message id")


@runtime_checkable
class SelfReporting(Protocol):
    """Not part of the Channel port: a provider that lives in our own process (the sandbox) cannot call us back
    over HTTP, so it says which callbacks a send will cause, and the worker delivers them through the same
    receipt path as a real provider's (connector.usecases.sandbox_reports). Checked once, when the account is
    built (connector.entrypoints.bootstrap.Account)."""

    def reports_after(self, message: OutboundMessage, result: SendResult) -> list[tuple[float, str]]:
        """The callbacks this send will cause, as (seconds from now, callback body)."""
        ...
