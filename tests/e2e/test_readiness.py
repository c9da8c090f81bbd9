"""The e2e readiness loop waits out a service that answers late, as a loaded machine's does."""

from __future__ import annotations

import time

from werkzeug import Request, Response

from tests.e2e.conftest import wait_until_healthy


def test_a_health_check_that_times_out_is_tried_again(httpserver):
    calls: list[float] = []

    def healthz(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(1.0)  # longer than the check waits: the client sees a read timeout
        return Response('{"status": "ok"}', content_type="application/json")

    httpserver.expect_request("/healthz").respond_with_handler(healthz)

    assert wait_until_healthy(httpserver.url_for("").rstrip("/"), [], within=10, request_timeout=0.3)
    assert len(calls) >= 2


def test_a_service_that_never_answers_is_given_up_on_at_the_deadline(httpserver):
    httpserver.expect_request("/healthz").respond_with_response(Response("", status=503))
    started = time.monotonic()

    assert not wait_until_healthy(httpserver.url_for("").rstrip("/"), [], within=1, request_timeout=0.3)
    assert time.monotonic() - started < 5
