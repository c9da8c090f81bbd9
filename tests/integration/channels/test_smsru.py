"""SmsRuChannel against a local HTTP server that speaks SMS.ru's wire format (providers.md §5.1)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from werkzeug import Request, Response

from connector.channels.base import CallbackAuthError, CallbackRequest, OutboundMessage, Recipient, TransientError
from connector.channels.smsru import SmsRuChannel
from connector.core.model import AttemptStatus as S

PHONE = "+79161234567"
DIGITS = "79161234567"
SMS_ID = "000000-10000001"
SECRET = "cb-secret-123"


def channel(httpserver, **config) -> SmsRuChannel:
    base = {"base_url": httpserver.url_for("/"), "api_id": "API-KEY", "callback_secret": SECRET}
    return SmsRuChannel({**base, **config})


def message(text: str = "Напоминаем о приёме завтра в 10:00") -> OutboundMessage:
    return OutboundMessage(message_id="m-1", tenant_id="demo", channel="sms", recipient=Recipient(PHONE), text=text)


def answer(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def sent_ok(sms_id: str = SMS_ID) -> dict:
    return {"status": "OK", "status_code": 100,
            "sms": {DIGITS: {"status": "OK", "status_code": 100, "sms_id": sms_id}}, "balance": 4122.56}


def sent_error(code: int, text: str = "…") -> dict:
    return {"status": "OK", "status_code": 100,
            "sms": {DIGITS: {"status": "ERROR", "status_code": code, "status_text": text}}, "balance": 4122.56}


def callback(*records: str, secret: str | None = SECRET, key: str = "data[]") -> CallbackRequest:
    query = {"secret": secret} if secret is not None else {}
    body = urlencode([(key if key == "data[]" else f"data[{i}]", r) for i, r in enumerate(records)]).encode()
    return CallbackRequest("POST", {"Content-Type": "application/x-www-form-urlencoded"}, query, body)


def test_delivered_path_send_poll_and_callback(httpserver):
    seen: list[dict] = []

    def send(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer(sent_ok())

    def status(request: Request) -> Response:
        seen.append(request.form.to_dict())
        return answer({"status": "OK", "status_code": 100, "balance": 4122.56,
                       "sms": {SMS_ID: {"status": "OK", "status_code": 103, "status_text": "Сообщение доставлено"}}})

    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(send)
    httpserver.expect_request("/sms/status", method="POST").respond_with_handler(status)
    smsru = channel(httpserver, sender="CLINIC", test=True)

    result = smsru.send(message())
    assert result.status is S.QUEUED  # SMS.ru's 100 is "queued" in the mapping table (§6.2)
    assert result.provider_message_id == SMS_ID
    assert seen[0] == {"api_id": "API-KEY", "to": DIGITS, "msg": message().text, "json": "1",
                       "from": "CLINIC", "test": "1"}

    [report] = smsru.poll([SMS_ID])
    assert (report.status, report.provider_message_id, report.raw_status) == (S.DELIVERED, SMS_ID, "103")
    assert seen[1] == {"api_id": "API-KEY", "sms_id": SMS_ID, "json": "1"}

    result = smsru.parse_callback(callback(f"sms_status\n{SMS_ID}\n103\n1700000000"))
    assert [(r.status, r.provider_message_id) for r in result.reports] == [(S.DELIVERED, SMS_ID)]
    assert result.reports[0].at == datetime.fromtimestamp(1700000000, UTC)
    assert (result.status_code, result.body, result.content_type) == (200, "100", "text/plain")


def test_no_sender_no_test_flag(httpserver):
    seen: list[dict] = []
    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(
        lambda request: seen.append(request.form.to_dict()) or answer(sent_ok()))
    assert channel(httpserver).send(message()).status is S.QUEUED
    assert "from" not in seen[0] and "test" not in seen[0]


@pytest.mark.parametrize("code", [202, 207, 209])
def test_invalid_or_unroutable_number_is_not_registered(httpserver, code):
    httpserver.expect_request("/sms/send", method="POST").respond_with_json(sent_error(code, f"номер {DIGITS}"))
    result = channel(httpserver).send(message())
    assert result.status is S.NOT_REGISTERED
    assert result.provider_message_id is None
    assert str(code) in result.error and DIGITS not in result.error and "9161234567" not in result.error


def test_receipts_for_undeliverable_numbers(httpserver):
    httpserver.expect_request("/sms/status", method="POST").respond_with_json(
        {"status": "OK", "status_code": 100,
         "sms": {"a": {"status": "OK", "status_code": 150}, "b": {"status": "OK", "status_code": 104}}})
    reports = {r.provider_message_id: r for r in channel(httpserver).poll(["a", "b"])}
    assert reports["a"].status is S.NOT_REGISTERED and reports["b"].status is S.EXPIRED
    assert reports["a"].error == "smsru status 150"


def test_503_is_transient(httpserver):
    httpserver.expect_request("/sms/send", method="POST").respond_with_data("busy", status=503)
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(message())
    assert caught.value.retry_after is None


def test_429_carries_retry_after(httpserver):
    httpserver.expect_request("/sms/send", method="POST").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "30"})
    with pytest.raises(TransientError) as caught:
        channel(httpserver).send(message())
    assert caught.value.retry_after == 30.0


def test_timeout_is_transient(httpserver):
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return answer(sent_ok())

    httpserver.expect_request("/sms/send", method="POST").respond_with_handler(slow)
    with pytest.raises(TransientError, match="timed out"):
        channel(httpserver, timeout=0.2).send(message())


def test_poll_5xx_is_transient(httpserver):
    httpserver.expect_request("/sms/status", method="POST").respond_with_data("oops", status=502)
    with pytest.raises(TransientError):
        channel(httpserver).poll([SMS_ID])


def test_wrong_api_id_is_rejected(httpserver):
    httpserver.expect_request("/sms/send", method="POST").respond_with_json(
        {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})
    result = channel(httpserver).send(message())
    assert (result.status, result.error) == (S.REJECTED, "smsru 200: wrong api_id")


@pytest.mark.parametrize("code", [201, 204])
def test_no_funds_or_unapproved_sender_is_rejected(httpserver, code):
    httpserver.expect_request("/sms/send", method="POST").respond_with_json(sent_error(code))
    assert channel(httpserver).send(message()).status is S.REJECTED


def test_unknown_send_error_is_failed(httpserver):
    httpserver.expect_request("/sms/send", method="POST").respond_with_json(sent_error(299))
    assert channel(httpserver).send(message()).status is S.FAILED


@pytest.mark.parametrize("secret", ["wrong", "", None])
def test_callback_with_wrong_or_missing_secret(httpserver, secret):
    with pytest.raises(CallbackAuthError):
        channel(httpserver).parse_callback(callback(f"sms_status\n{SMS_ID}\n103", secret=secret))


def test_callback_refused_when_no_secret_is_configured(httpserver):
    with pytest.raises(CallbackAuthError):
        channel(httpserver, callback_secret=None).parse_callback(callback(f"sms_status\n{SMS_ID}\n103"))


def test_callback_with_several_records_and_indexed_keys(httpserver):
    request = callback("sms_status\nid-1\n102\n1700000000", "callcheck_status\nx\n401", "sms_status\nid-2\n108",
                       "sms_status\nid-3\n-1", key="data[0]")
    result = channel(httpserver).parse_callback(request)
    assert [(r.provider_message_id, r.status) for r in result.reports] == [("id-1", S.SENT), ("id-2", S.REJECTED)]
    assert result.body == "100"


def test_poll_several_ids_in_one_request(httpserver):
    seen: list[str] = []

    def status(request: Request) -> Response:
        seen.append(request.form["sms_id"])
        return answer({"status": "OK", "status_code": 100, "sms": {
            "id-1": {"status": "OK", "status_code": 103},
            "id-2": {"status": "OK", "status_code": 102},
            "id-3": {"status": "ERROR", "status_code": -1, "status_text": "Сообщение не найдено"},
            "id-4": {"status": "OK", "status_code": 110},
        }})

    httpserver.expect_request("/sms/status", method="POST").respond_with_handler(status)
    reports = channel(httpserver).poll(["id-1", "id-2", "id-3", "id-4"])
    assert seen == ["id-1,id-2,id-3,id-4"]
    assert [(r.provider_message_id, r.status) for r in reports] == [
        ("id-1", S.DELIVERED), ("id-2", S.SENT), ("id-4", S.READ)]


def test_poll_batches_of_one_hundred(httpserver):
    batches: list[int] = []

    def status(request: Request) -> Response:
        ids = request.form["sms_id"].split(",")
        batches.append(len(ids))
        return answer({"status": "OK", "status_code": 100,
                       "sms": {i: {"status": "OK", "status_code": 103} for i in ids}})

    httpserver.expect_request("/sms/status", method="POST").respond_with_handler(status)
    reports = channel(httpserver).poll([f"id-{n}" for n in range(150)])
    assert batches == [100, 50] and len(reports) == 150


def test_poll_with_wrong_api_id_raises(httpserver):
    from connector.channels.base import ChannelError

    httpserver.expect_request("/sms/status", method="POST").respond_with_json(
        {"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"})
    with pytest.raises(ChannelError) as caught:
        channel(httpserver).poll([SMS_ID])
    assert not isinstance(caught.value, TransientError)
