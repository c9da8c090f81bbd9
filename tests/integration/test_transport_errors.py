"""Every adapter translates a failing network the same way (connector.transport.wire.request), against real sockets:
nothing sent → TransientError; sent and unanswered → OutcomeUnknownError (still a TransientError); any other
library error → TransientError; and never the library's exception, whose text holds the URL, in the chain."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from connector.channels.base import Channel, OutboundMessage, OutcomeUnknownError, Recipient, TransientError
from connector.channels.max_bot import MaxBotChannel
from connector.channels.smsc import SmscChannel
from connector.channels.smsru import SmsRuChannel
from connector.channels.telegram_bot import TelegramBotChannel
from connector.channels.wahelp import WahelpChannel
from connector.sources.yclients_api import YclientsApi, YclientsApiError
from tests import sockets

PHONE = "+79161234567"
TOKEN = "123456789:AAH-secret-token"
USER_ID = "98496219"
TIMEOUT = [1, 0.3]


@dataclass(frozen=True)
class Adapter:
    build: Callable[[str], Channel]  # base URL → the adapter
    channel: str
    path: str = ""  # what the adapter appends to the server's root in its base_url


ADAPTERS = {
    "telegram_bot": Adapter(lambda url: TelegramBotChannel({"base_url": url, "token": TOKEN, "timeout": TIMEOUT}),
                            "telegram"),
    "max_bot": Adapter(lambda url: MaxBotChannel({"base_url": url, "token": TOKEN, "timeout": TIMEOUT},
                                                 sleep=lambda seconds: None), "max"),
    "wahelp": Adapter(lambda url: WahelpChannel({"base_url": url, "token": TOKEN, "project_id": "7",
                                                 "channels": {"whatsapp": "uuid-wa"}, "timeout": TIMEOUT}),
                      "whatsapp", "/api"),
    "smsru": Adapter(lambda url: SmsRuChannel({"base_url": url, "api_id": TOKEN, "timeout": TIMEOUT}), "sms"),
    "smsc": Adapter(lambda url: SmscChannel({"base_url": url, "apikey": TOKEN, "timeout": TIMEOUT}), "sms", "/sys"),
}


def send(provider: str, root: str) -> None:
    adapter = ADAPTERS[provider]
    recipient = Recipient(PHONE, {"telegram_bot": USER_ID, "max_bot": USER_ID})
    result = adapter.build(root + adapter.path).send(OutboundMessage("m-1", "demo", adapter.channel, recipient, "Hi"))
    pytest.fail(f"{provider} returned {result} instead of raising")


def assert_nothing_leaks(error: BaseException) -> None:
    link: BaseException | None = error
    while link is not None:  # only our own errors in the chain: requests' (with the URL) is dropped
        assert not isinstance(link, requests.RequestException), repr(link)
        link = link.__cause__ or link.__context__
    text = "".join(traceback.format_exception(error))
    assert TOKEN not in text and USER_ID not in text and PHONE[1:] not in text


@pytest.mark.parametrize("provider", ADAPTERS)
def test_a_refused_connection_is_transient_and_was_not_sent(provider):
    with pytest.raises(TransientError) as caught:
        send(provider, sockets.closed_port())
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert "not sent" in str(caught.value)
    assert_nothing_leaks(caught.value)


@pytest.mark.parametrize("behaviour", [sockets.silent, sockets.hang_up])
@pytest.mark.parametrize("provider", ADAPTERS)
def test_a_request_sent_and_never_answered_is_outcome_unknown(misbehaving, provider, behaviour):
    with pytest.raises(OutcomeUnknownError) as caught:
        send(provider, misbehaving(behaviour))
    assert "outcome unknown" in str(caught.value)
    assert_nothing_leaks(caught.value)


@pytest.mark.parametrize("provider", ADAPTERS)
def test_any_other_request_error_is_transient_too(provider):
    # requests refuses the scheme with the whole URL (the bot token, the user id) in its message. The two bot
    # adapters used to return a FAILED result for it, the others raised TransientError: now all raise.
    with pytest.raises(TransientError) as caught:
        send(provider, "ftp://127.0.0.1:9")
    assert "(InvalidSchema)" in str(caught.value)
    assert_nothing_leaks(caught.value)


# --- the YCLIENTS client maps the same translation onto its own error ---------------------------------------------

def yclients(url: str) -> YclientsApi:
    return YclientsApi({"partner_token": TOKEN, "base_url": url + "/api/v1", "timeout": TIMEOUT},
                       sleep=lambda seconds: None, clock=lambda: 0.0)


@pytest.mark.parametrize(("behaviour", "words"), [(sockets.silent, "outcome unknown"),
                                                  (sockets.reset, "outcome unknown")])
def test_yclients_transport_failures_are_transient(misbehaving, behaviour, words):
    with pytest.raises(YclientsApiError) as caught:
        yclients(misbehaving(behaviour)).company(4564)
    assert caught.value.transient is True and caught.value.status_code is None
    assert str(caught.value).startswith("yclients: company ") and words in str(caught.value)
    assert_nothing_leaks(caught.value)


def test_yclients_invalid_url_is_transient_like_every_other_adapter():
    # It was the one copy that called this permanent; nothing reads `transient` but the retry of the next pass.
    with pytest.raises(YclientsApiError) as caught:
        yclients("ftp://127.0.0.1:9").company(4564)
    assert caught.value.transient is True
    assert_nothing_leaks(caught.value)
