"""connector.transport.wire.request against real sockets: a local HTTP server for the answers, and the socket servers
of tests/sockets.py for the failures, so each of requests' exception shapes is produced, not imitated."""

from __future__ import annotations

import traceback
from datetime import UTC, datetime, timedelta

import pytest
import requests
from werkzeug import Request, Response

from connector.channels.base import OutcomeUnknownError, TransientError
from connector.transport.wire import request
from tests import sockets

TOKEN = "123456:AAH-secret-token"  # where Telegram puts it: in the path; and, for good measure, in the query


def call(base: str, timeout=(0.5, 0.3), **kwargs) -> requests.Response:
    return request(requests.Session(), "POST", f"{base}/bot{TOKEN}/sendMessage?key={TOKEN}", provider="tg",
                   what="sendMessage", timeout=timeout, json={"chat_id": 1, "text": "hi"}, **kwargs)


def _never_shows_the_url(error: BaseException) -> None:
    assert error.__cause__ is None and error.__context__ is None  # the library's error (with the URL) is dropped
    assert error.__suppress_context__  # and a handler further up that re-raises shows no URL either
    assert TOKEN not in "".join(traceback.format_exception(error))


# --- transport failures -------------------------------------------------------------------------------------


def test_connection_refused_is_transient_and_not_sent(closed_port):
    with pytest.raises(TransientError) as caught:
        call(closed_port)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert str(caught.value) == "tg: sendMessage could not connect, not sent (ConnectionError: NewConnectionError)"
    assert caught.value.retry_after is None
    _never_shows_the_url(caught.value)


def test_connect_timeout_is_transient_and_not_sent(full_backlog):
    with pytest.raises(TransientError) as caught:
        call(full_backlog, timeout=(0.2, 5))
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert str(caught.value) == "tg: sendMessage timed out connecting (connect timeout), not sent (ConnectTimeout)"
    _never_shows_the_url(caught.value)


@pytest.mark.parametrize(("behaviour", "words"), [
    (sockets.silent, "timed out waiting for the answer (read timeout), outcome unknown (ReadTimeout)"),
    (sockets.stall_body, "timed out waiting for the answer (read timeout), outcome unknown (ConnectionError: "
                  "ReadTimeoutError)"),
    (sockets.hang_up, "lost the connection after sending, outcome unknown (ConnectionError: RemoteDisconnected)"),
    (sockets.reset, "lost the connection after sending, outcome unknown (ConnectionError: ConnectionResetError)"),
    (sockets.cut_short, "answer was lost, outcome unknown (ChunkedEncodingError: IncompleteRead)"),
])
def test_a_request_that_went_out_and_lost_its_answer_is_outcome_unknown(misbehaving, behaviour, words):
    with pytest.raises(OutcomeUnknownError) as caught:
        call(misbehaving(behaviour))
    assert isinstance(caught.value, TransientError)  # callers that do not ask still retry it, as before
    assert str(caught.value) == f"tg: sendMessage {words}"
    _never_shows_the_url(caught.value)


def test_any_other_request_error_is_transient_and_names_only_its_type():
    with pytest.raises(TransientError) as caught:
        call("ftp://127.0.0.1:9")  # requests: "No connection adapters were found for 'ftp://…/bot<token>…'"
    assert not isinstance(caught.value, OutcomeUnknownError)  # refused before anything went out
    assert str(caught.value) == "tg: sendMessage failed (InvalidSchema)"
    _never_shows_the_url(caught.value)


# --- answers ------------------------------------------------------------------------------------------------


def test_the_call_goes_out_as_asked_and_any_other_answer_comes_back(httpserver):
    seen = {}

    def handler(req: Request) -> Response:
        seen.update(method=req.method, args=req.args.to_dict(), json=req.get_json(), path=req.path)
        return Response('{"ok": false}', 404, content_type="application/json")

    httpserver.expect_oneshot_request(f"/bot{TOKEN}/sendMessage").respond_with_handler(handler)
    response = call(httpserver.url_for("").rstrip("/"))
    assert response.status_code == 404  # what a 4xx means is the adapter's business
    assert seen == {"method": "POST", "args": {"key": TOKEN}, "json": {"chat_id": 1, "text": "hi"},
                    "path": f"/bot{TOKEN}/sendMessage"}


@pytest.mark.parametrize(("status", "headers", "retry_after"), [
    (429, {"Retry-After": "30"}, 30.0),
    (429, {}, None),
    (503, {"Retry-After": "5"}, 5.0),
    (500, {}, None),
    (502, {}, None),
])
def test_429_and_5xx_are_transient_with_retry_after(httpserver, status, headers, retry_after):
    httpserver.expect_oneshot_request(f"/bot{TOKEN}/sendMessage").respond_with_data("busy", status, headers)
    with pytest.raises(TransientError) as caught:
        call(httpserver.url_for("").rstrip("/"))
    assert not isinstance(caught.value, OutcomeUnknownError)  # the provider answered: it did not take it
    assert str(caught.value) == f"tg: sendMessage: HTTP {status}"
    assert caught.value.retry_after == retry_after


def test_429_retry_after_as_an_http_date(httpserver):
    later = datetime.now(UTC) + timedelta(seconds=120)
    httpserver.expect_oneshot_request(f"/bot{TOKEN}/sendMessage").respond_with_data(
        "", 429, {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    with pytest.raises(TransientError) as caught:
        call(httpserver.url_for("").rstrip("/"))
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120


@pytest.mark.parametrize(("in_body", "expected"), [(7, 7.0), (None, 30.0)])
def test_a_provider_reads_its_own_delay_and_the_header_is_the_fallback(httpserver, in_body, expected):
    httpserver.expect_oneshot_request(f"/bot{TOKEN}/sendMessage").respond_with_json(
        {"parameters": {"retry_after": in_body}}, 429, {"Retry-After": "30"})
    with pytest.raises(TransientError) as caught:
        call(httpserver.url_for("").rstrip("/"),
             retry_after=lambda response: response.json()["parameters"]["retry_after"])
    assert caught.value.retry_after == expected


@pytest.mark.parametrize("status", [429, 503])
def test_without_transient_statuses_the_caller_gets_every_answer(httpserver, status):
    httpserver.expect_oneshot_request(f"/bot{TOKEN}/sendMessage").respond_with_data("busy", status)
    assert call(httpserver.url_for("").rstrip("/"), transient_statuses=False).status_code == status
