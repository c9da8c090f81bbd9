"""Telegram Bot API adapter against a local HTTP server speaking the api.telegram.org wire format."""

from __future__ import annotations

import json
import logging
import time

import pytest
from werkzeug import Request, Response

from connector.channels.base import (
    CallbackAuthError,
    CallbackRequest,
    Link,
    OutboundMessage,
    Recipient,
    TransientError,
)
from connector.channels.telegram_bot import TelegramBotChannel
from connector.core.model import AttemptStatus

TOKEN = "123456789:AAH-test-token_0123456789abcdefghij"
SECRET = "tg-secret_0123"
CHAT_ID = "7012345678"
PATH = f"/bot{TOKEN}/sendMessage"


def channel(httpserver, **config) -> TelegramBotChannel:
    settings = {"base_url": httpserver.url_for("/").rstrip("/"), "token": TOKEN, "webhook_secret": SECRET, **config}
    return TelegramBotChannel(settings)


def outbound(text: str = "Напоминаем о приёме завтра в 10:00", chat_id: str | None = CHAT_ID) -> OutboundMessage:
    links = {"telegram_bot": chat_id} if chat_id else {}
    return OutboundMessage("msg-1", "demo", "telegram", Recipient("+79161234560", links), text)


def ok_message(message_id: int, text: str) -> dict:
    return {"ok": True, "result": {
        "message_id": message_id,
        "from": {"id": 123456789, "is_bot": True, "first_name": "Clinic", "username": "clinic_bot"},
        "chat": {"id": int(CHAT_ID), "first_name": "Ирина", "type": "private"},
        "date": 1764000000, "text": text}}


def refusal(code: int, description: str, **extra) -> dict:
    return {"ok": False, "error_code": code, "description": description, **extra}


def callback(update: dict, secret: str | None = SECRET) -> CallbackRequest:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return CallbackRequest("POST", headers, {}, json.dumps(update).encode())


USER = {"id": int(CHAT_ID), "is_bot": False, "first_name": "Ирина", "language_code": "ru"}
BOT = {"id": 123456789, "is_bot": True, "first_name": "Clinic", "username": "clinic_bot"}
PRIVATE = {"id": int(CHAT_ID), "first_name": "Ирина", "type": "private"}


def message(**fields) -> dict:
    return {"update_id": 900001, "message": {"message_id": 77, "from": USER, "chat": PRIVATE, "date": 1764000300,
                                             **fields}}


# --- sending ---------------------------------------------------------------------------------------------------


def test_send_posts_chat_id_and_text_to_the_token_path(httpserver):
    text = "Напоминаем о приёме завтра в 10:00"
    httpserver.expect_oneshot_request(PATH, method="POST", json={"chat_id": int(CHAT_ID), "text": text}) \
        .respond_with_json(ok_message(4242, text))
    telegram = channel(httpserver)

    result = telegram.send(outbound(text))

    httpserver.check_assertions()
    assert result.status is AttemptStatus.SENT
    assert result.provider_message_id == "4242"
    assert telegram.has_receipts is False
    assert telegram.name == "telegram_bot" and telegram.channels == frozenset({"telegram"})


def test_can_address_only_with_a_telegram_link(httpserver):
    telegram = channel(httpserver)
    assert telegram.can_address(Recipient("+79161234560", {"telegram_bot": CHAT_ID}), "telegram")
    assert not telegram.can_address(Recipient("+79161234560", {"max_bot": "1"}), "telegram")


def test_no_link_is_not_registered_without_a_call(httpserver):
    assert channel(httpserver).send(outbound(chat_id=None)).status is AttemptStatus.NOT_REGISTERED
    assert httpserver.log == []


@pytest.mark.parametrize("code, description", [
    (403, "Forbidden: bot can't initiate conversation with a user"),
    (403, "Forbidden: bot was blocked by the user"),
    (403, "Forbidden: user is deactivated"),
    (400, "Bad Request: chat not found"),
])
def test_unreachable_user_is_not_registered(httpserver, code, description):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(refusal(code, description), status=code)
    result = channel(httpserver).send(outbound())
    assert result.status is AttemptStatus.NOT_REGISTERED
    assert description in result.error
    assert TOKEN not in result.error


def test_invalid_token_is_rejected(httpserver):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(refusal(401, "Unauthorized"), status=401)
    result = channel(httpserver).send(outbound())
    assert result.status is AttemptStatus.REJECTED
    assert TOKEN not in result.error


def test_other_bad_request_is_rejected(httpserver):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(
        refusal(400, "Bad Request: message text is empty"), status=400)
    assert channel(httpserver).send(outbound()).status is AttemptStatus.REJECTED


def test_429_is_transient_with_retry_after(httpserver):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_json(
        refusal(429, "Too Many Requests: retry after 7", parameters={"retry_after": 7}), status=429)
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(outbound())
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("status", [502, 503])
def test_5xx_is_transient(httpserver, status):
    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_data("Bad Gateway", status=status)
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(outbound())
    assert TOKEN not in str(caught.value)


def test_timeout_is_transient_and_never_shows_the_token(httpserver, caplog):
    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", 200, content_type="application/json")

    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_handler(slow)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransientError) as caught:
        channel(httpserver, timeout=[1, 0.1]).send(outbound())
    assert TOKEN not in str(caught.value)
    assert caught.value.__suppress_context__  # the requests error, whose text has the URL, is not chained
    assert TOKEN not in caplog.text


def test_connection_refused_is_transient_and_never_shows_the_token():
    telegram = TelegramBotChannel({"base_url": "http://127.0.0.1:9", "token": TOKEN, "timeout": 1})
    with pytest.raises(TransientError) as caught:
        telegram.send(outbound())
    assert TOKEN not in str(caught.value)


def test_long_text_is_cut_on_a_word_boundary_below_the_limit(httpserver):
    seen = {}

    def handler(request: Request) -> Response:
        seen["text"] = request.get_json()["text"]
        return Response(json.dumps(ok_message(1, seen["text"])), 200, content_type="application/json")

    httpserver.expect_oneshot_request(PATH, method="POST").respond_with_handler(handler)
    long_text = " ".join(["подготовка"] * 800)
    assert channel(httpserver).send(outbound(long_text)).status is AttemptStatus.SENT

    text = seen["text"]
    assert len(text) <= 4096 and text.endswith("…")
    head = text[:-1]
    assert long_text.startswith(head) and long_text[len(head)] == " "


# --- webhook updates -------------------------------------------------------------------------------------------


def test_start_with_deep_link_payload_links_the_chat(httpserver):
    update = message(text="/start p-7f3a9c", entities=[{"offset": 0, "length": 6, "type": "bot_command"}])
    result = channel(httpserver).parse_callback(callback(update))
    assert result.links == [Link(provider="telegram_bot", address=CHAT_ID, payload="p-7f3a9c", phone=None)]
    assert list(result.reports) == []


def test_bare_start_links_without_payload(httpserver):
    result = channel(httpserver).parse_callback(callback(message(text="/start")))
    assert result.links == [Link(provider="telegram_bot", address=CHAT_ID, payload=None)]


def test_own_shared_contact_links_the_phone(httpserver):
    update = message(contact={"phone_number": "79161234560", "first_name": "Ирина", "user_id": int(CHAT_ID)})
    result = channel(httpserver).parse_callback(callback(update))
    assert result.links == [Link(provider="telegram_bot", address=CHAT_ID, phone="79161234560")]


def test_someone_elses_contact_links_no_phone(httpserver):
    update = message(contact={"phone_number": "+79160000000", "first_name": "Other", "user_id": 999999})
    result = channel(httpserver).parse_callback(callback(update))
    assert result.links == [Link(provider="telegram_bot", address=CHAT_ID, phone=None)]


def test_blocking_the_bot_unlinks_and_restarting_relinks(httpserver):
    def change(old: str, new: str) -> dict:
        return {"update_id": 900002, "my_chat_member": {
            "chat": PRIVATE, "from": USER, "date": 1764000400,
            "old_chat_member": {"user": BOT, "status": old},
            "new_chat_member": {"user": BOT, "status": new, "until_date": 0}}}

    telegram = channel(httpserver)
    kicked = telegram.parse_callback(callback(change("member", "kicked")))
    assert kicked.links == [Link(provider="telegram_bot", address=CHAT_ID, active=False)]
    back = telegram.parse_callback(callback(change("kicked", "member")))
    assert back.links == [Link(provider="telegram_bot", address=CHAT_ID, active=True)]


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
def test_wrong_or_missing_secret_is_refused(httpserver, secret):
    with pytest.raises(CallbackAuthError):
        channel(httpserver).parse_callback(callback(message(text="/start x"), secret=secret))


def test_no_configured_secret_refuses_everything(httpserver):
    with pytest.raises(CallbackAuthError):
        channel(httpserver, webhook_secret="").parse_callback(callback(message(text="/start x"), secret=""))


def test_button_press_is_read_and_answered_in_the_webhook_response(httpserver):
    update = {"update_id": 900003, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": USER, "chat_instance": "-123", "data": "confirm",
        "message": {"message_id": 4242, "from": BOT, "chat": PRIVATE, "date": 1764000000, "text": "Подтвердите"}}}
    result = channel(httpserver).parse_callback(callback(update))
    [report] = result.reports
    assert (report.status, report.provider_message_id) == (AttemptStatus.READ, "4242")
    assert json.loads(result.body) == {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}
    assert result.status_code == 200 and result.content_type == "application/json"


def test_reply_to_our_message_is_read(httpserver):
    replied = {"message_id": 4242, "from": BOT, "chat": PRIVATE, "date": 1764000000, "text": "Напоминаем…"}
    result = channel(httpserver).parse_callback(callback(message(text="Буду", reply_to_message=replied)))
    [report] = result.reports
    assert (report.status, report.provider_message_id) == (AttemptStatus.READ, "4242")
    assert report.at is not None


def test_plain_message_only_refreshes_the_link(httpserver):
    result = channel(httpserver).parse_callback(callback(message(text="Здравствуйте")))
    assert list(result.reports) == []
    assert result.links == [Link(provider="telegram_bot", address=CHAT_ID)]


def test_unknown_group_or_broken_updates_give_nothing(httpserver):
    telegram = channel(httpserver)
    group = {"id": -100200300, "title": "Clinic staff", "type": "supergroup"}
    for update in [
        {"update_id": 1, "edited_message": {"message_id": 1, "chat": PRIVATE, "date": 1, "text": "x"}},
        {"update_id": 2, "poll": {"id": "1"}},
        {"update_id": 3, "message": {"message_id": 1, "from": USER, "chat": group, "date": 1, "text": "/start x"}},
        {"update_id": 4, "message": {"message_id": 1, "chat": "not an object", "date": 1}},
        ["not", "an", "update"],
    ]:
        result = telegram.parse_callback(callback(update))
        assert (list(result.reports), list(result.links), result.status_code) == ([], [], 200)
    garbage = CallbackRequest("POST", {"X-Telegram-Bot-Api-Secret-Token": SECRET}, {}, b"{broken")
    assert telegram.parse_callback(garbage).status_code == 200
