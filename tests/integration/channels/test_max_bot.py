"""MAX Bot API adapter against a local HTTP server speaking the platform-api2.max.ru wire format."""

from __future__ import annotations

import json
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
from connector.channels.max_bot import ChatRateLimiter, MaxBotChannel, truncate
from connector.core.model import AttemptStatus

TOKEN = "max-token-0123456789abcdef"
SECRET = "max-secret_0123"
USER_ID = "98496219"


class FakeClock:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def channel(httpserver, clock: FakeClock | None = None, **config) -> MaxBotChannel:
    clock = clock or FakeClock()
    settings = {"base_url": httpserver.url_for("/"), "token": TOKEN, "webhook_secret": SECRET, **config}
    return MaxBotChannel(settings, clock=clock, sleep=clock.sleep)


def outbound(text: str = "Напоминаем о приёме завтра в 10:00", user_id: str | None = USER_ID) -> OutboundMessage:
    links = {"max_bot": user_id} if user_id else {}
    return OutboundMessage("msg-1", "demo", "max", Recipient("+79161234560", links), text)


def sent_message(mid: str, text: str, user_id: int = int(USER_ID)) -> dict:
    return {"message": {
        "sender": {"user_id": 5550001, "first_name": "Clinic", "username": "clinic_bot", "is_bot": True},
        "recipient": {"chat_id": 77001, "chat_type": "dialog", "user_id": user_id},
        "timestamp": 1764000000000,
        "body": {"mid": mid, "seq": 115, "text": text, "attachments": None},
    }}


def callback(update: dict, secret: str | None = SECRET) -> CallbackRequest:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Max-Bot-Api-Secret"] = secret
    return CallbackRequest("POST", headers, {}, json.dumps(update).encode())


USER = {"user_id": int(USER_ID), "first_name": "Ирина", "last_name": None, "username": None, "is_bot": False,
        "last_activity_time": 1764000000000}


# --- sending ---------------------------------------------------------------------------------------------------


def test_send_posts_text_with_raw_token_and_returns_the_mid(httpserver):
    text = "Напоминаем о приёме завтра в 10:00"
    httpserver.expect_oneshot_request(
        "/messages", method="POST", query_string={"user_id": USER_ID},
        headers={"Authorization": TOKEN}, json={"text": text},
    ).respond_with_json(sent_message("mid.0000000000abcdef", text))
    max_bot = channel(httpserver)

    result = max_bot.send(outbound(text))

    httpserver.check_assertions()
    assert result.status is AttemptStatus.SENT
    assert result.provider_message_id == "mid.0000000000abcdef"
    assert max_bot.has_receipts is False
    assert max_bot.name == "max_bot" and max_bot.channels == frozenset({"max"})


def test_authorization_header_has_no_bearer_prefix(httpserver):
    seen = {}

    def handler(request: Request) -> Response:
        seen["authorization"] = request.headers.get("Authorization")
        return Response(json.dumps(sent_message("mid.1", "x")), 200, content_type="application/json")

    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_handler(handler)
    channel(httpserver).send(outbound("x"))
    assert seen["authorization"] == TOKEN


def test_can_address_only_with_a_max_link(httpserver):
    max_bot = channel(httpserver)
    assert max_bot.can_address(Recipient("+79161234560", {"max_bot": USER_ID}), "max")
    assert not max_bot.can_address(Recipient("+79161234560", {}), "max")
    assert not max_bot.can_address(Recipient("+79161234560", {"telegram_bot": "1"}), "max")


def test_no_link_is_not_registered_without_a_call(httpserver):
    result = channel(httpserver).send(outbound(user_id=None))
    assert result.status is AttemptStatus.NOT_REGISTERED
    assert httpserver.log == []


@pytest.mark.parametrize("status, body", [
    (403, {"code": "chat.denied", "message": f"Key: error.dialog.suspended, args: [{USER_ID},]."}),
    (404, {"code": "dialog.not.found", "message": "error.dialog.notfound"}),
    (404, {"code": "chat.not.found", "message": f"Chat with user {USER_ID} not found"}),
])
def test_user_who_never_started_or_blocked_the_bot_is_not_registered(httpserver, status, body):
    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_json(body, status=status)
    result = channel(httpserver).send(outbound())
    assert result.status is AttemptStatus.NOT_REGISTERED
    assert body["code"] in result.error
    assert USER_ID not in result.error  # MAX echoes the user id in `args`: not for the audit trail


def test_invalid_token_is_rejected(httpserver):
    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_json(
        {"code": "verify.token", "message": "Invalid access_token"}, status=401)
    result = channel(httpserver).send(outbound())
    assert result.status is AttemptStatus.REJECTED
    assert "verify.token" in result.error
    assert TOKEN not in result.error


def test_bad_body_is_rejected(httpserver):
    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_json(
        {"code": "proto.payload", "message": "Invalid request payload"}, status=400)
    assert channel(httpserver).send(outbound()).status is AttemptStatus.REJECTED


def test_503_is_transient(httpserver):
    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_json(
        {"code": "service.unavailable", "message": "Service unavailable"}, status=503)
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(outbound())
    assert caught.value.retry_after is None


def test_429_is_transient_with_retry_after(httpserver):
    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_json(
        {"code": "too.many.requests", "message": "Too many requests"}, status=429, headers={"Retry-After": "3"})
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(outbound())
    assert caught.value.retry_after == 3.0


def test_timeout_is_transient_and_names_no_user(httpserver):
    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response("{}", 200, content_type="application/json")

    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_handler(slow)
    with pytest.raises(TransientError) as caught:
        channel(httpserver, timeout=0.1).send(outbound())
    assert USER_ID not in str(caught.value) and TOKEN not in str(caught.value)
    assert caught.value.__suppress_context__  # the library error (with the URL) is not chained into logs


def test_long_text_is_cut_on_a_word_boundary_below_the_limit(httpserver):
    seen = {}

    def handler(request: Request) -> Response:
        seen["text"] = request.get_json()["text"]
        return Response(json.dumps(sent_message("mid.2", seen["text"])), 200, content_type="application/json")

    httpserver.expect_oneshot_request("/messages", method="POST").respond_with_handler(handler)
    long_text = " ".join(["подготовка"] * 800)  # 8799 characters
    assert channel(httpserver).send(outbound(long_text)).status is AttemptStatus.SENT

    text = seen["text"]
    assert len(text) <= 4000 and text.endswith("…")
    head = text[:-1]
    assert long_text.startswith(head) and long_text[len(head)] == " "


def test_truncate_counts_utf16_units_and_leaves_short_text_alone():
    assert truncate("коротко", 4000) == "коротко"
    emoji = "🙂" * 3000  # 6000 UTF-16 units, no spaces: a hard cut
    cut = truncate(emoji, 4000)
    assert len(cut.encode("utf-16-le")) // 2 <= 4000 and cut.endswith("…")


# --- rate limits -----------------------------------------------------------------------------------------------


def test_sends_into_one_dialog_are_spaced_half_a_second(httpserver):
    clock = FakeClock()
    seen_at: list[float] = []

    def handler(request: Request) -> Response:
        seen_at.append(clock.now)
        return Response(json.dumps(sent_message("mid.3", "x")), 200, content_type="application/json")

    httpserver.expect_request("/messages", method="POST").respond_with_handler(handler)
    max_bot = channel(httpserver, clock)
    for _ in range(3):
        max_bot.send(outbound("x"))

    assert [round(at - seen_at[0], 6) for at in seen_at] == [0.0, 0.5, 1.0]
    assert clock.sleeps == pytest.approx([0.5, 0.5])


def test_limiter_spaces_all_requests_at_30_per_second_without_holding_other_chats():
    clock = FakeClock()
    limiter = ChatRateLimiter(clock=clock, sleep=clock.sleep)
    granted: list[tuple[str, float]] = []
    for chat in ["a", "b", "a", "c"]:
        limiter.acquire(chat)
        granted.append((chat, clock.now))

    start = granted[0][1]
    offsets = [(chat, round(at - start, 4)) for chat, at in granted]
    # b waits only for the overall spacing; the second "a" waits for its own dialog; c then goes 1/30 s later.
    assert offsets == [("a", 0.0), ("b", round(1 / 30, 4)), ("a", 0.5), ("c", round(0.5 + 1 / 30, 4))]

    burst = FakeClock()
    limiter = ChatRateLimiter(clock=burst, sleep=burst.sleep)
    times = []
    for index in range(61):
        limiter.acquire(f"chat-{index}")
        times.append(burst.now)
    # never more than 30 in any one-second window (1e-9: float sums of 1/30 fall a hair short of a second)
    assert all(sum(1 for t in times if start_ <= t < start_ + 1.0 - 1e-9) <= 30 for start_ in times)
    assert times[-1] - times[0] == pytest.approx(2.0)


# --- webhook updates -------------------------------------------------------------------------------------------


def test_bot_started_with_deep_link_payload_links_the_user(httpserver):
    update = {"update_type": "bot_started", "timestamp": 1764000000000, "chat_id": 77001, "user": USER,
              "payload": "p-7f3a9c", "user_locale": "ru"}
    result = channel(httpserver).parse_callback(callback(update))
    assert result.links == [Link(provider="max_bot", address=USER_ID, payload="p-7f3a9c", phone=None)]
    assert list(result.reports) == []
    assert result.status_code == 200


@pytest.mark.parametrize("kind", ["bot_stopped", "dialog_removed"])
def test_bot_stopped_or_dialog_removed_unlinks(httpserver, kind):
    update = {"update_type": kind, "timestamp": 1764000000000, "chat_id": 77001, "user": USER, "user_locale": "ru"}
    result = channel(httpserver).parse_callback(callback(update))
    assert result.links == [Link(provider="max_bot", address=USER_ID, active=False)]


@pytest.mark.parametrize("secret", [None, "wrong-secret", ""])
def test_wrong_or_missing_secret_is_refused(httpserver, secret):
    update = {"update_type": "bot_started", "timestamp": 1764000000000, "chat_id": 1, "user": USER}
    with pytest.raises(CallbackAuthError):
        channel(httpserver).parse_callback(callback(update, secret=secret))


def test_no_configured_secret_refuses_everything(httpserver):
    update = {"update_type": "bot_started", "timestamp": 1764000000000, "chat_id": 1, "user": USER}
    with pytest.raises(CallbackAuthError):
        channel(httpserver, webhook_secret="").parse_callback(callback(update, secret=""))


def test_secret_header_is_matched_case_insensitively(httpserver):
    update = {"update_type": "bot_stopped", "timestamp": 1764000000000, "chat_id": 1, "user": USER}
    request = CallbackRequest("POST", {"x-max-bot-api-secret": SECRET}, {}, json.dumps(update).encode())
    assert channel(httpserver).parse_callback(request).links


def test_button_press_is_read_for_the_message_that_carried_it(httpserver):
    message = sent_message("mid.0000000000abcdef", "Подтвердите запись")["message"]
    update = {"update_type": "message_callback", "timestamp": 1764000100000,
              "callback": {"timestamp": 1764000100000, "callback_id": "cb-1", "payload": "confirm", "user": USER},
              "message": message, "user_locale": "ru"}
    result = channel(httpserver).parse_callback(callback(update))
    [report] = result.reports
    assert report.status is AttemptStatus.READ
    assert report.provider_message_id == "mid.0000000000abcdef"
    assert report.at is not None and report.at.year == 2025


def test_button_press_on_a_deleted_message_only_refreshes_the_link(httpserver):
    update = {"update_type": "message_callback", "timestamp": 1764000100000,
              "callback": {"timestamp": 1764000100000, "callback_id": "cb-1", "payload": "confirm", "user": USER},
              "message": None}
    result = channel(httpserver).parse_callback(callback(update))
    assert list(result.reports) == []
    assert result.links == [Link(provider="max_bot", address=USER_ID)]


def test_reply_to_our_message_is_read(httpserver):
    update = {"update_type": "message_created", "timestamp": 1764000200000, "message": {
        "sender": USER, "recipient": {"chat_id": 77001, "chat_type": "dialog", "user_id": 5550001},
        "timestamp": 1764000200000,
        "link": {"type": "reply", "sender": {"user_id": 5550001, "is_bot": True}, "message": {"mid": "mid.42"}},
        "body": {"mid": "mid.43", "seq": 116, "text": "Да, буду", "attachments": None}}}
    [report] = channel(httpserver).parse_callback(callback(update)).reports
    assert (report.status, report.provider_message_id) == (AttemptStatus.READ, "mid.42")


def test_plain_message_without_a_reply_only_refreshes_the_link(httpserver):
    update = {"update_type": "message_created", "timestamp": 1764000200000, "message": {
        "sender": USER, "recipient": {"chat_id": 77001, "chat_type": "dialog", "user_id": 5550001},
        "timestamp": 1764000200000, "body": {"mid": "mid.44", "seq": 117, "text": "Здравствуйте", "attachments": None}}}
    result = channel(httpserver).parse_callback(callback(update))
    assert list(result.reports) == []
    assert result.links == [Link(provider="max_bot", address=USER_ID)]


def test_shared_own_contact_links_the_phone_but_someone_elses_does_not(httpserver):
    def contact(owner_id: int) -> dict:
        vcf = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ирина\r\nTEL;TYPE=cell:79161234560\r\nEND:VCARD"
        return {"update_type": "message_created", "timestamp": 1764000200000, "message": {
            "sender": USER, "recipient": {"chat_id": 77001, "chat_type": "dialog", "user_id": 5550001},
            "timestamp": 1764000200000, "body": {"mid": "mid.45", "seq": 118, "text": None, "attachments": [
                {"type": "contact", "payload": {"vcf_info": vcf, "hash": "h", "max_info": {"user_id": owner_id}}}]}}}

    own = channel(httpserver).parse_callback(callback(contact(int(USER_ID))))
    assert own.links == [Link(provider="max_bot", address=USER_ID, phone="79161234560")]
    other = channel(httpserver).parse_callback(callback(contact(123456789)))
    assert other.links == [Link(provider="max_bot", address=USER_ID, phone=None)]


def test_unknown_or_broken_updates_give_nothing(httpserver):
    max_bot = channel(httpserver)
    for update in [
        {"update_type": "dialog_muted", "timestamp": 1764000000000, "chat_id": 1, "user": USER, "muted_until": 1},
        {"update_type": "something_new", "timestamp": 1764000000000},
        {"update_type": "bot_started"},  # no user
        {"update_type": "message_created", "message": "not an object"},
        ["not", "an", "update"],
    ]:
        result = max_bot.parse_callback(callback(update))
        assert (list(result.reports), list(result.links), result.status_code) == ([], [], 200)
    garbage = CallbackRequest("POST", {"X-Max-Bot-Api-Secret": SECRET}, {}, b"\xff not json")
    assert max_bot.parse_callback(garbage).status_code == 200
