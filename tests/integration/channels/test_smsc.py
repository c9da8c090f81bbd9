"""SmscChannel against a local HTTP server that speaks SMSC's wire format (providers.md §5.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from werkzeug import Request, Response

from connector.channels.base import (
    CallbackAuthError,
    CallbackRequest,
    ChannelError,
    OutboundMessage,
    Recipient,
    TransientError,
)
from connector.channels.smsc import MAX_CLIENT_ID, SmscChannel, client_id
from connector.core.model import AttemptStatus as S

PHONE = "+79161234567"
DIGITS = "79161234567"
SECRET = "cb-secret-456"
PROVIDER_ID = f"12345:{DIGITS}"


def channel(httpserver, **config) -> SmscChannel:
    base = {"base_url": httpserver.url_for("/sys"), "login": "clinic", "password": "pw", "callback_secret": SECRET}
    return SmscChannel({**base, **config})


def message(message_id: str = "m-1", phone: str = PHONE) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, tenant_id="demo", channel="sms", recipient=Recipient(phone),
                           text="Напоминаем о приёме завтра в 10:00")


def answer(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def callback(fields: dict, secret: str | None = SECRET) -> CallbackRequest:
    query = {"secret": secret} if secret is not None else {}
    return CallbackRequest("POST", {"Content-Type": "application/x-www-form-urlencoded"}, query,
                           urlencode(fields).encode())


def assert_no_phone(text: str | None) -> None:
    assert text is None or "9161234567" not in text


def test_delivered_path_send_poll_and_callback(httpserver):
    seen: list[dict] = []

    def send(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer({"id": 12345, "cnt": 1})

    def status(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer({"status": 1, "last_date": "14.11.2023 22:13:20", "last_timestamp": 1700000000,
                       "flag": 0, "err": 0})

    httpserver.expect_request("/sys/send.php", method="POST").respond_with_handler(send)
    httpserver.expect_request("/sys/status.php", method="POST").respond_with_handler(status)
    smsc = channel(httpserver, sender="CLINIC")

    result = smsc.send(message())
    assert result.status is S.QUEUED  # accepted by the gateway, not yet with the operator (§6.1)
    assert result.provider_message_id == PROVIDER_ID  # status.php needs the phone: see the module docstring
    assert seen[0] == {"login": "clinic", "psw": "pw", "phones": PHONE, "mes": message().text, "fmt": "3",
                       "charset": "utf-8", "sender": "CLINIC", "id": client_id("m-1")}  # derived: not a number

    [report] = smsc.poll([result.provider_message_id])
    assert (report.status, report.provider_message_id, report.raw_status) == (S.DELIVERED, PROVIDER_ID, "1")
    assert report.at == datetime.fromtimestamp(1700000000, UTC)
    assert seen[1] == {"login": "clinic", "psw": "pw", "phone": DIGITS, "id": "12345", "fmt": "3"}

    result = smsc.parse_callback(callback({"id": "12345", "phone": DIGITS, "status": "1", "err": "0"}))
    assert [(r.status, r.provider_message_id) for r in result.reports] == [(S.DELIVERED, PROVIDER_ID)]
    assert (result.status_code, result.body, result.content_type) == (200, "OK", "text/plain")


def test_apikey_and_numeric_client_id(httpserver):
    seen: list[dict] = []

    def send(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer({"id": int(request.form["id"]), "cnt": 1})

    httpserver.expect_request("/sys/send.php", method="POST").respond_with_handler(send)
    result = channel(httpserver, login=None, password=None, apikey="KEY").send(message("4242"))
    assert result.provider_message_id == f"4242:{DIGITS}"
    assert seen[0]["apikey"] == "KEY" and "login" not in seen[0] and "psw" not in seen[0]
    assert seen[0]["id"] == "4242"


def test_missing_credentials_raise(httpserver):
    with pytest.raises(ChannelError):
        channel(httpserver, login=None, password=None).send(message())


@pytest.mark.parametrize(("code", "with_id"), [(7, False), (8, True)])
def test_invalid_or_undeliverable_number_is_not_registered(httpserver, code, with_id):
    body = {"error": f"bad number {DIGITS}", "error_code": code} | ({"id": 777} if with_id else {})
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_json(body)
    result = channel(httpserver).send(message())
    assert result.status is S.NOT_REGISTERED
    assert result.provider_message_id == (f"777:{DIGITS}" if with_id else None)
    assert_no_phone(result.error)


@pytest.mark.parametrize("code", [22, 25])
def test_receipt_for_an_invalid_number(httpserver, code):
    httpserver.expect_request("/sys/status.php", method="POST").respond_with_json(
        {"status": code, "last_date": "14.11.2023 22:13:20", "last_timestamp": 1700000000, "flag": 0, "err": 1})
    [report] = channel(httpserver).poll([PROVIDER_ID])
    assert report.status is S.NOT_REGISTERED
    assert_no_phone(report.error)


def test_503_is_transient(httpserver):
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_data("busy", status=503)
    with pytest.raises(TransientError):
        channel(httpserver).send(message())


def test_429_carries_retry_after(httpserver):
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "12"})
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(message())
    assert caught.value.retry_after == 12.0


def test_ip_temporarily_blocked_is_transient(httpserver):
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_json(
        {"error": "ip is temporarily blocked", "error_code": 4})
    with pytest.raises(TransientError):
        channel(httpserver).send(message())


def test_connection_refused_is_transient():
    smsc = SmscChannel({"base_url": "http://127.0.0.1:9/sys", "apikey": "KEY", "timeout": [0.5, 0.5]})
    with pytest.raises(TransientError):
        smsc.send(message())


@pytest.mark.parametrize(("body", "label"), [
    ({"error": "no money", "error_code": 3, "id": 55}, "insufficient funds"),
    ({"error": "authorise error", "error_code": 2}, "wrong login or password"),
    ({"error": "message is denied", "error_code": 6, "id": 56}, "message forbidden"),
])
def test_permanent_errors_are_rejected(httpserver, body, label):
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_json(body)
    result = channel(httpserver).send(message())
    assert result.status is S.REJECTED
    assert f"error_code {body['error_code']}" in result.error and label in result.error


def test_duplicate_request_is_failed_not_retried(httpserver):
    httpserver.expect_request("/sys/send.php", method="POST").respond_with_json(
        {"error": "duplicate request, wait a minute", "error_code": 9})
    assert channel(httpserver).send(message()).status is S.FAILED


@pytest.mark.parametrize("secret", ["wrong", "", None])
def test_callback_with_wrong_or_missing_secret(httpserver, secret):
    with pytest.raises(CallbackAuthError):
        channel(httpserver).parse_callback(callback({"id": "12345", "phone": DIGITS, "status": "1"}, secret))


def test_callback_for_an_incoming_sms_has_no_reports(httpserver):
    result = channel(httpserver).parse_callback(callback({"phone": DIGITS, "mes": "да", "to": "79990000000"}))
    assert result.reports == [] and result.body == "OK"


def test_callback_failure_carries_codes_only(httpserver):
    result = channel(httpserver).parse_callback(
        callback({"id": "12345", "phone": DIGITS, "status": "20", "err": "255", "ts": "1700000000"}))
    [report] = result.reports
    assert (report.status, report.error) == (S.FAILED, "smsc status 20 (cannot be delivered), err 255")
    assert report.at == datetime.fromtimestamp(1700000000, UTC)


def test_poll_several_ids_one_request_each(httpserver):
    statuses = {"1": -1, "2": 0, "3": 3, "4": -3}
    seen: list[tuple[str, str]] = []

    def status(request: Request) -> Response:
        seen.append((request.form["id"], request.form["phone"]))
        return answer({"status": statuses[request.form["id"]], "last_date": "14.11.2023 22:13:20",
                       "last_timestamp": 1700000000, "flag": 0, "err": 0})

    httpserver.expect_request("/sys/status.php", method="POST").respond_with_handler(status)
    ids = [f"{n}:{DIGITS}" for n in ("1", "2", "3", "4")] + ["not-ours"]
    reports = channel(httpserver).poll(ids)
    assert seen == [(n, DIGITS) for n in ("1", "2", "3", "4")]
    assert [(r.provider_message_id, r.status) for r in reports] == [
        (f"1:{DIGITS}", S.QUEUED), (f"2:{DIGITS}", S.SENT), (f"3:{DIGITS}", S.EXPIRED)]


def test_poll_too_many_requests_is_transient(httpserver):
    httpserver.expect_request("/sys/status.php", method="POST").respond_with_json(
        {"error": "too many requests", "error_code": 9})
    with pytest.raises(TransientError) as caught:
        channel(httpserver).poll([PROVIDER_ID])
    assert caught.value.retry_after == 60.0


def test_poll_with_bad_login_raises(httpserver):
    httpserver.expect_request("/sys/status.php", method="POST").respond_with_json(
        {"error": "authorise error", "error_code": 2})
    with pytest.raises(ChannelError) as caught:
        channel(httpserver).poll([PROVIDER_ID])
    assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize(("message_id", "expected"), [("4242", "4242"), ("2147483647", "2147483647")])
def test_a_message_id_that_is_a_client_id_is_sent_as_it_is(message_id, expected):
    assert client_id(message_id) == expected


@pytest.mark.parametrize("message_id", ["m-1", "0", "2147483648", "9f86d081884c7d659a2feaa0c55ad015", "١٢"])
def test_any_other_message_id_gets_a_stable_client_id_in_smscs_range(message_id):
    derived = client_id(message_id)
    assert derived == client_id(message_id) and 1 <= int(derived) <= MAX_CLIENT_ID
    assert client_id(message_id + "x") != derived


LOOKUPS = [
    # (id, status.php's answer, what lookup says: None = not found, else (status, error part))
    ("queued", {"status": -1, "last_timestamp": 0}, (S.QUEUED, None)),
    ("delivered", {"status": 1, "last_timestamp": 1700000000}, (S.DELIVERED, None)),
    ("not deliverable", {"status": 20, "err": 255}, (S.FAILED, "smsc status 20")),
    ("a status we do not know: SMSC has it all the same", {"status": 77}, (S.QUEUED, None)),
    ("not found (status -3)", {"status": -3}, None),
    ("not found (error_code 3)", {"error": "message not found", "error_code": 3}, None),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in LOOKUPS], ids=[c[0] for c in LOOKUPS])
def test_lookup_asks_status_by_phone_and_our_client_id(httpserver, body, expected):
    seen: list[dict] = []

    def status(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer(body)

    httpserver.expect_request("/sys/status.php", method="POST").respond_with_handler(status)
    result = channel(httpserver).lookup(message("f00d"))
    assert seen == [{"login": "clinic", "psw": "pw", "phone": DIGITS, "id": client_id("f00d"), "fmt": "3"}]
    if expected is None:
        assert result is None
    else:
        assert result is not None and result.status is expected[0]
        assert result.provider_message_id == f"{client_id('f00d')}:{DIGITS}"
        assert (result.error is None) if expected[1] is None else (expected[1] in (result.error or ""))


@pytest.mark.parametrize(("code", "error"), [(9, TransientError), (4, TransientError), (2, ChannelError)])
def test_lookup_that_cannot_be_answered_raises(httpserver, code, error):
    httpserver.expect_request("/sys/status.php", method="POST").respond_with_json(
        {"error": "no", "error_code": code})
    with pytest.raises(error):
        channel(httpserver).lookup(message("f00d"))
