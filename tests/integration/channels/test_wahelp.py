"""The Wahelp adapter against a local server speaking Wahelp's wire format as providers.md §1 documents it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from werkzeug import Request, Response

from connector.channels.base import (
    CallbackAuthError,
    CallbackRequest,
    OutboundMessage,
    Recipient,
    TransientError,
)
from connector.channels.wahelp import WahelpChannel
from connector.core.model import AttemptStatus

PROJECT = "4242"
UUIDS = {"max": "uuid-max", "telegram": "uuid-tg", "whatsapp": "uuid-wa"}
SECRET = "cb-secret-0123456789"
LOGIN = {"login": "clinic@example.ru", "password": "pa55word"}
PHONE = "+79161234567"
TEXT = "Иван Петрович, напоминаем о приёме завтра в 10:00"

Reply = tuple[int, object] | tuple[int, object, dict[str, str]]


class FakeWahelp:
    """Login hands out Bearer tokens; project calls answer 401 to any other token and insist on X-Project."""

    def __init__(self, server):
        self.server = server
        self.valid: set[str] = set()
        self.logins = 0
        self.calls: list[tuple[str, object, str]] = []  # path, JSON body, token used
        server.expect_request("/api/app/user/login", method="POST").respond_with_handler(self._login)

    def _login(self, request: Request) -> Response:
        assert request.get_json() == LOGIN
        assert "Authorization" not in request.headers
        self.logins += 1
        token = f"token-{self.logins}"
        self.valid.add(token)
        data = {"access_token": token, "token_type": "bearer", "expires_in": 3600}
        return _json(200, {"success": True, "data": data})

    def on(self, path: str, reply: Reply | Callable[[Request], Reply]) -> None:
        def handler(request: Request) -> Response:
            assert request.headers.get("X-Project") == PROJECT
            assert request.headers.get("Content-Type", "").startswith("application/json")
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            self.calls.append((request.path, request.get_json(), token))
            if token not in self.valid:
                return _json(401, {"success": False, "message": "Unauthenticated."})
            status, body, *headers = reply(request) if callable(reply) else reply
            return _json(status, body, *headers)

        self.server.expect_request(f"/api/app/projects/{PROJECT}{path}", method="POST").respond_with_handler(handler)

    def on_user(self, channel: str, reply: Reply) -> None:
        self.on(f"/channels/{UUIDS[channel]}/users", reply)

    def on_send(self, channel: str, user_id: str, reply: Reply | Callable[[Request], Reply]) -> None:
        self.on(f"/channels/{UUIDS[channel]}/send_message/{user_id}", reply)

    def paths(self) -> list[str]:
        return [path.removeprefix(f"/api/app/projects/{PROJECT}/channels/") for path, _, _ in self.calls]


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                    content_type="application/json")


@pytest.fixture
def fake(httpserver):
    yield FakeWahelp(httpserver)
    httpserver.check()  # handler assertions and unexpected requests fail the test here


def channel_for(httpserver, **overrides) -> WahelpChannel:
    config = {"base_url": httpserver.url_for("/api"), **LOGIN, "project_id": PROJECT, "channels": UUIDS,
              "callback_secret": SECRET, "timeout": 2, **overrides}
    return WahelpChannel(config)


def message(channel: str = "whatsapp") -> OutboundMessage:
    return OutboundMessage(message_id="job-1:step-1", tenant_id="demo", channel=channel,
                           recipient=Recipient(phone=PHONE), text=TEXT)


def callback(body: object, secret: str | None = SECRET) -> CallbackRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return CallbackRequest(method="POST", headers={"Content-Type": "application/json"},
                           query={} if secret is None else {"secret": secret}, body=raw)


def assert_no_patient_data(*texts: str | None) -> None:
    for text in texts:
        assert "9161234567" not in (text or "") and "Иван" not in (text or "")


# ---- the delivered path ----

def test_send_then_delivered_callback(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101, "phone": "79161234567"}}))
    fake.on_send("whatsapp", "101", (200, {"success": True, "data": {"id": "m-555", "status": "sent"}}))
    wahelp = channel_for(httpserver)

    result = wahelp.send(message())

    assert (result.status, result.provider_message_id, result.error) == (AttemptStatus.SENT, "m-555", None)
    assert fake.paths() == ["uuid-wa/users", "uuid-wa/send_message/101"]
    assert [body for _, body, _ in fake.calls] == [{"phone": "79161234567"}, {"text": TEXT}]
    assert fake.logins == 1

    answer = wahelp.parse_callback(callback({"event": "channel.message.updated",
                                             "data": {"id": "m-555", "status": "delivered",
                                                      "status_at": "2025-03-01T10:00:00+03:00"}}))

    assert answer.status_code == 200
    [report] = answer.reports
    assert (report.status, report.provider_message_id, report.raw_status) == (AttemptStatus.DELIVERED, "m-555",
                                                                              "delivered")
    assert report.at == datetime(2025, 3, 1, 7, 0, tzinfo=UTC)


def test_token_is_cached_across_sends_and_channels(httpserver, fake):
    for channel, user in (("telegram", 7), ("max", 8)):
        fake.on_user(channel, (200, {"success": True, "data": {"id": user}}))
        fake.on_send(channel, str(user), (200, {"success": True, "data": {"message": {"id": f"m-{user}",
                                                                                        "status": "sent"}}}))
    wahelp = channel_for(httpserver)

    results = [wahelp.send(message("telegram")), wahelp.send(message("max"))]

    assert [(r.status, r.provider_message_id) for r in results] == [(AttemptStatus.SENT, "m-7"),
                                                                   (AttemptStatus.SENT, "m-8")]
    assert fake.logins == 1
    assert {token for _, _, token in fake.calls} == {"token-1"}


@pytest.mark.parametrize("body", [
    {"success": True, "data": {"id": "m-9"}},
    {"success": True, "data": {"id": "m-9", "status": "queued"}},
    {"data": {"message_id": "m-9", "status": "pending"}},
])
def test_send_only_accepted_is_queued(httpserver, fake, body):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (200, body))

    result = channel_for(httpserver).send(message())

    assert (result.status, result.provider_message_id) == (AttemptStatus.QUEUED, "m-9")


def test_an_existing_user_named_in_a_validation_error_is_used(httpserver, fake):
    fake.on_user("whatsapp", (422, {"success": False, "message": "Пользователь уже существует", "data": {"id": 77}}))
    fake.on_send("whatsapp", "77", (200, {"success": True, "data": {"id": "m-1", "status": "sent"}}))

    result = channel_for(httpserver).send(message())

    assert (result.status, result.provider_message_id) == (AttemptStatus.SENT, "m-1")


# ---- not registered ----

@pytest.mark.parametrize("status, body", [
    (422, {"success": False, "message": "Номер 79161234567 не зарегистрирован в WhatsApp"}),
    (400, {"success": False, "errors": {"phone": ["Мессенджер не подключен у номера +7 916 123-45-67"]}}),
    (200, {"success": False, "message": "Номер не зарегистрирован"}),
])
def test_number_without_the_messenger_is_not_registered(httpserver, fake, status, body):
    fake.on_user("whatsapp", (status, body))

    result = channel_for(httpserver).send(message())

    assert result.status == AttemptStatus.NOT_REGISTERED
    assert result.error.startswith(f"wahelp users: HTTP {status}")
    assert_no_patient_data(result.error)
    assert fake.paths() == ["uuid-wa/users"]  # nothing sent


# ---- transient errors ----

def test_503_is_transient(httpserver, fake):
    fake.on_user("whatsapp", (503, {"message": "Service Unavailable"}))

    with pytest.raises(TransientError) as caught:
        channel_for(httpserver).send(message())

    assert caught.value.retry_after is None


def test_429_honours_retry_after(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (429, {"message": "Too Many Requests"}, {"Retry-After": "7"}))

    with pytest.raises(TransientError) as caught:
        channel_for(httpserver).send(message())

    assert caught.value.retry_after == 7


def test_rate_limit_phrase_is_transient(httpserver, fake):
    fake.on_user("telegram", (400, {"success": False, "message": "Слишком много попыток, попробуйте позже"}))

    with pytest.raises(TransientError):
        channel_for(httpserver).send(message("telegram"))


def test_login_5xx_is_transient(httpserver):
    httpserver.expect_request("/api/app/user/login").respond_with_data("bad gateway", status=502)

    with pytest.raises(TransientError):
        channel_for(httpserver).send(message())


def test_timeout_is_transient(httpserver, fake):
    def slow(request):
        time.sleep(0.6)
        return 200, {"success": True, "data": {"id": 101}}

    fake.on_user("whatsapp", slow)

    with pytest.raises(TransientError, match="timeout"):
        channel_for(httpserver, timeout=0.2).send(message())


def test_connection_refused_is_transient(httpserver):
    wahelp = channel_for(httpserver, base_url="http://127.0.0.1:9/api")

    with pytest.raises(TransientError):
        wahelp.send(message())


# ---- permanent errors ----

@pytest.mark.parametrize("status, body", [
    (402, {"success": False, "message": "Payment Required"}),
    (400, {"success": False, "message": "Недостаточно средств на балансе проекта"}),
    (403, {"success": False, "message": "Forbidden"}),
])
def test_account_and_balance_refusals_are_rejected(httpserver, fake, status, body):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (status, body))

    result = channel_for(httpserver).send(message())

    assert result.status == AttemptStatus.REJECTED
    assert result.error.startswith(f"wahelp send_message: HTTP {status}")


def test_refused_login_is_rejected(httpserver):
    httpserver.expect_request("/api/app/user/login").respond_with_json(
        {"success": False, "message": "Неверный логин или пароль"}, status=422)

    result = channel_for(httpserver).send(message())

    assert result.status == AttemptStatus.REJECTED
    assert result.error.startswith("wahelp login refused: HTTP 422")


def test_unknown_client_error_fails(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (400, {"success": False, "message": f"Bad text: {TEXT}"}))

    result = channel_for(httpserver).send(message())

    assert result.status == AttemptStatus.FAILED
    assert_no_patient_data(result.error)


def test_failed_status_in_the_send_answer_fails(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (200, {"success": True, "data": {"id": "m-2", "status": "error"}}))

    result = channel_for(httpserver).send(message())

    assert (result.status, result.provider_message_id) == (AttemptStatus.FAILED, "m-2")


def test_unconfigured_channel_is_rejected_without_a_call(httpserver, fake):
    wahelp = channel_for(httpserver, channels={"whatsapp": "uuid-wa"})

    result = wahelp.send(message("max"))

    assert (result.status, result.error) == (AttemptStatus.REJECTED, "no wahelp channel configured for max")
    assert fake.calls == [] and fake.logins == 0


# ---- token refresh ----

def test_expired_token_logs_in_again_once_and_retries(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (200, {"success": True, "data": {"id": "m-3", "status": "sent"}}))
    wahelp = channel_for(httpserver, token="expired-token")

    result = wahelp.send(message())

    assert (result.status, result.provider_message_id) == (AttemptStatus.SENT, "m-3")
    assert fake.logins == 1
    assert [(path, token) for path, _, token in fake.calls][-3:] == [
        (f"/api/app/projects/{PROJECT}/channels/uuid-wa/users", "expired-token"),
        (f"/api/app/projects/{PROJECT}/channels/uuid-wa/users", "token-1"),
        (f"/api/app/projects/{PROJECT}/channels/uuid-wa/send_message/101", "token-1"),
    ]


def test_token_revoked_between_sends(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    fake.on_send("whatsapp", "101", (200, {"success": True, "data": {"id": "m-4", "status": "sent"}}))
    wahelp = channel_for(httpserver)
    wahelp.send(message())
    fake.valid.clear()

    result = wahelp.send(message())

    assert result.status == AttemptStatus.SENT
    assert fake.logins == 2


def test_a_second_401_is_rejected_not_looped(httpserver, fake):
    fake.on_user("whatsapp", lambda request: (401, {"message": "Unauthenticated."}))

    result = channel_for(httpserver).send(message())

    assert result.status == AttemptStatus.REJECTED
    assert fake.logins == 2  # the lazy login, then exactly one re-login
    assert len(fake.calls) == 2


def test_static_token_without_credentials_is_rejected_on_401(httpserver, fake):
    fake.on_user("whatsapp", (200, {"success": True, "data": {"id": 101}}))
    wahelp = channel_for(httpserver, token="stale", login=None, password=None)

    result = wahelp.send(message())

    assert result.status == AttemptStatus.REJECTED
    assert fake.logins == 0


# ---- callbacks ----

@pytest.mark.parametrize("secret, configured", [("wrong", SECRET), (None, SECRET), ("", ""), (SECRET, None)])
def test_callback_without_the_right_secret_is_refused(httpserver, secret, configured):
    wahelp = channel_for(httpserver, callback_secret=configured)

    with pytest.raises(CallbackAuthError):
        wahelp.parse_callback(callback({"event": "channel.message.updated",
                                        "data": {"id": "m-1", "status": "read"}}, secret=secret))


UPDATED = "channel.message.updated"


@pytest.mark.parametrize("body, expected", [
    ({"event": UPDATED, "data": {"message": {"id": 12, "status": "read", "status_at": 1740812400}}},
     [(AttemptStatus.READ, "12", datetime(2025, 3, 1, 7, 0, tzinfo=UTC))]),
    ({"event": UPDATED, "data": {"message_id": "m-5", "state": "Sent"}},
     [(AttemptStatus.SENT, "m-5", None)]),
    ({"event": UPDATED, "data": [{"id": "a", "status": "delivered"}, {"id": "b", "status": "failed"}]},
     [(AttemptStatus.DELIVERED, "a", None), (AttemptStatus.FAILED, "b", None)]),
    ([{"event": UPDATED, "data": {"id": "c", "status": "error", "updated_at": "2025-03-01T10:00:00Z"}}],
     [(AttemptStatus.FAILED, "c", datetime(2025, 3, 1, 10, 0, tzinfo=UTC))]),
    ({"event": UPDATED, "data": {"id": "d", "status": "delivered", "status_at": "2025-03-01 10:00:00"}},
     [(AttemptStatus.DELIVERED, "d", None)]),  # a zoneless time is not guessed
])
def test_status_callback_shapes(httpserver, body, expected):
    answer = channel_for(httpserver).parse_callback(callback(body))

    assert [(r.status, r.provider_message_id, r.at) for r in answer.reports] == expected


def test_failed_callback_carries_the_error_without_patient_data(httpserver):
    body = {"event": "channel.message.updated",
            "data": {"id": "m-6", "status": "failed", "error": "Номер 79161234567 недоступен"}}

    [report] = channel_for(httpserver).parse_callback(callback(body)).reports

    assert report.status == AttemptStatus.FAILED and report.error
    assert_no_patient_data(report.error)


@pytest.mark.parametrize("body", [
    {"event": "channel.user.created", "data": {"id": 5, "phone": "79161234567"}},
    {"event": "channel.message.created", "data": {"id": "m-7", "status": "sent"}},
    {"event": "channel.message.updated", "data": {"id": "m-8", "status": "banana"}},
    {"event": "channel.message.updated", "data": {"id": "m-8", "status": {"code": 3}}},
    {"event": "channel.message.updated", "data": {"status": "delivered"}},
    {"event": "channel.message.updated", "data": "surprise"},
    {"event": "channel.message.updated", "data": {"id": "m-9", "status": "read", "direction": "incoming"}},
    {"hello": "world"},
    [1, "two", None],
    "just a string",
    42,
    None,
])
def test_unknown_callback_shapes_give_no_reports(httpserver, body):
    answer = channel_for(httpserver).parse_callback(callback(body))

    assert (answer.status_code, list(answer.reports)) == (200, [])


def test_malformed_callback_json_is_a_400(httpserver):
    answer = channel_for(httpserver).parse_callback(callback(b"{not json"))

    assert (answer.status_code, list(answer.reports)) == (400, [])


def test_no_patient_data_in_logs(httpserver, fake, caplog):
    fake.on_user("whatsapp", (422, {"success": False, "message": "Номер 79161234567 не зарегистрирован"}))
    wahelp = channel_for(httpserver, token="expired-token")
    caplog.set_level(logging.DEBUG, logger="connector")

    wahelp.send(message())
    wahelp.parse_callback(callback({"event": "channel.message.updated", "data": {"id": "m", "status": "odd"}}))

    assert caplog.records  # the re-login and the unmapped status are logged
    assert_no_patient_data(caplog.text)
