"""The write-back outbox on the real database, against stand-ins speaking YCLIENTS' record API and a clinic's
signed webhook listener: what the administrator reads on the booking, and that nothing is lost, doubled, or
reordered while a target is down."""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select
from werkzeug import Request, Response

from connector.core.notice_line import PREFIX, without_notice
from connector.entrypoints.worker import Worker
from connector.sources.signatures import check_standard_signature
from connector.sources.yclients_api import YclientsApi
from connector.store.models import AuditEvent, Booking, NotificationJob, Writeback
from connector.targets.generic import GenericTarget
from connector.targets.yclients import YclientsRecordTarget
from connector.tenants import demo_tenant
from connector.usecases.outbox import push_until_idle
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.intake import deliver
from tests.integration.test_delivery import EXPECTED, START, Clock, run
from tests.staff import csrf_token, sign_in

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SECRET = "whsec_" + base64.b64encode(b"a clinic's listener secret, 32b!").decode()
ADMIN_COMMENT = "За 4 часа до приёма не есть и не пить. Взять результаты ЭКГ."
REQUIRED = ("staff_id", "services", "client", "datetime", "seance_length")
HOOK = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"


class FakeYclients:
    """YCLIENTS' record endpoints: keeps each record, answers 422 unless the whole record comes back with
    send_sms false and save_if_busy true, and answers 503 while `down`."""

    def __init__(self, server: HTTPServer):
        self.records: dict[int, dict] = {}
        self.puts: list[dict] = []
        self.refused: list[dict] = []
        self.down = False
        path = re.compile(r"^/api/v1/record/512345/[0-9]+$")
        server.expect_request(path, method="GET").respond_with_handler(self.get)
        server.expect_request(path, method="PUT").respond_with_handler(self.put)

    def get(self, request: Request) -> Response:
        if self.down:
            return Response("busy", status=503)
        record = self.records[int(request.path.rsplit("/", 1)[1])]
        return _json({"success": True, "data": record, "meta": []})

    def put(self, request: Request) -> Response:
        if self.down:
            return Response("busy", status=503)
        body = request.get_json()
        if any(body.get(key) in (None, "", [], {}) for key in REQUIRED) or body.get("send_sms") is not False \
                or body.get("save_if_busy") is not True:
            self.refused.append(body)
            return _json({"success": False, "meta": {"message": "Не переданы обязательные поля"}}, 422)
        record = self.records[int(request.path.rsplit("/", 1)[1])]
        record.update(comment=body["comment"], custom_fields=body["custom_fields"],
                      last_change_date=f"2026-11-27T12:{len(self.puts):02d}:00+0300")
        self.puts.append(body)
        return _json({"success": True, "data": record, "meta": []}, 201)


class FakeListener:
    """A clinic's webhook listener: keeps what it took; answers 503 while `down`."""

    def __init__(self, server: HTTPServer):
        self.taken: list[tuple[dict, dict]] = []  # (headers, body) of every 2xx answered
        self.down = False
        server.expect_request("/hooks/notify", method="POST").respond_with_handler(self.post)

    def post(self, request: Request) -> Response:
        if self.down:
            return Response("down", status=503)
        check_standard_signature(SECRET, {k.lower(): v for k, v in request.headers.items()}, request.get_data(),
                                 datetime.now(UTC))
        self.taken.append(({k.lower(): v for k, v in request.headers.items()}, json.loads(request.get_data())))
        return Response("", status=204)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _targets():
    """As the registry, but the YCLIENTS client gets its own throttle on a clock that never waits."""
    return {
        "yclients": lambda tenant, rt: YclientsRecordTarget(
            YclientsApi(tenant.yclients.client_settings(), sleep=lambda _: None, clock=lambda: 0.0),
            tenant.writeback.yclients),
        "generic": lambda tenant, rt: GenericTarget(tenant.writeback.generic),
    }


def setup(database_url, httpserver, writeback):
    tenant = replace(demo_tenant(DEMO_TOKEN), writeback_block=writeback, sources={
        "yclients": {"partner_token": "partner", "user_token": "user", "base_url": httpserver.url_for("/api/v1")},
        "generic": {"mapping": "generic"}})
    runtime = make_runtime(database_url, [tenant])
    clock = Clock(START)
    runtime.clock = clock
    worker = Worker(runtime, concurrency=4, retry_base=0.01, name="outbox")
    worker.targets = _targets()
    return runtime, clock, create_app(runtime).test_client(), worker


def record_body(record_id: int, digit: int) -> dict:
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = f"+7916123456{digit}"
    return body


def book(client, runtime, yclients: FakeYclients | None, record_id: int, digit: int) -> None:
    body = record_body(record_id, digit)
    if yclients is not None:
        yclients.records[record_id] = copy.deepcopy(body["data"])
    assert deliver(client, runtime, HOOK, json=body)["outcome"] == "applied"


def rows(runtime) -> list[Writeback]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Writeback).order_by(Writeback.id)))


def _status(session, record_id: int) -> str:
    return session.scalar(select(NotificationJob.status).join(Booking, Booking.id == NotificationJob.booking_id)
                          .where(Booking.external_id == str(record_id), NotificationJob.kind == "confirmation"))


def test_the_record_shows_each_step_and_the_administrators_comment_survives(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "yclients": {"custom_field": "notify_status", "comment": True}, "report": ["final", "steps"]})
    yclients = FakeYclients(httpserver)
    book(client, runtime, yclients, 5002, 2)  # MAX: not registered; Telegram: delivered
    run(worker, clock, 30)

    record = yclients.records[5002]
    assert not yclients.refused  # the whole record went back every time
    assert len(yclients.puts) >= 3
    assert [put["custom_fields"]["notify_status"] for put in yclients.puts] == [
        row.text for row in rows(runtime) if row.status == "sent"]
    assert record["custom_fields"]["notify_status"].startswith("Подтверждение записи доставлено в Telegram 27.11 12:")
    # The administrator's text, byte for byte, and our one line under it, whatever number of writes.
    assert without_notice(record["comment"]) == ADMIN_COMMENT
    assert record["comment"].count(PREFIX) == 1
    assert record["comment"] == f"{ADMIN_COMMENT}\n{PREFIX} {record['custom_fields']['notify_status']}"
    assert all(put["send_sms"] is False and put["save_if_busy"] is True for put in yclients.puts)
    texts = [put["custom_fields"]["notify_status"] for put in yclients.puts]
    assert any(text.startswith("Подтверждение записи: пациента нет в MAX, отправляем в Telegram") for text in texts)
    runtime.engine.dispose()


def test_the_echo_of_our_own_write_plans_nothing(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {"yclients": {"comment": True}})
    yclients = FakeYclients(httpserver)
    book(client, runtime, yclients, 5000, 0)
    run(worker, clock, 15)
    assert len(yclients.puts) == 1
    with runtime.sessions() as session:
        jobs_before = session.scalar(select(func.count()).select_from(NotificationJob))
        trail_before = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.what.like("job.%")))

    echo = record_body(5000, 0)
    echo["status"] = "update"
    echo["data"] = copy.deepcopy(yclients.records[5000])  # as YCLIENTS sends it after our PUT
    assert PREFIX in echo["data"]["comment"]
    event = deliver(client, runtime, HOOK, json=echo)

    assert event["outcome"] == "duplicate", event
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(NotificationJob)) == jobs_before
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.what.like("job.%"))) == trail_before
    run(worker, clock, 5)
    assert len(yclients.puts) == 1  # and nothing new to report
    runtime.engine.dispose()


def test_a_target_down_for_a_while_gets_every_row_once_and_in_order(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "generic": {"url": httpserver.url_for("/hooks/notify"), "secret": SECRET}, "report": ["final", "steps"]})
    listener = FakeListener(httpserver)
    listener.down = True
    for digit in (0, 2, 7):
        book(client, runtime, None, 6000 + digit, digit)
    run(worker, clock, 25)  # the cascades go on while the listener is down
    down_rows = rows(runtime)
    assert not listener.taken
    assert {row.status for row in down_rows} <= {"pending", "replaced"}
    assert any(row.status == "replaced" for row in down_rows)  # a newer status replaced an older unsent one
    assert all(row.last_error == "generic: write-back: HTTP 503" for row in down_rows if row.tries)

    listener.down = False
    run(worker, clock, 200)  # past every backoff

    final = rows(runtime)
    assert {row.status for row in final} <= {"sent", "replaced"}
    ids = [headers["webhook-id"] for headers, _ in listener.taken]
    assert len(ids) == len(set(ids)) == sum(row.status == "sent" for row in final)  # each row once
    for record_id in (6000, 6002, 6007):
        taken = [body for _, body in listener.taken if body["booking"]["external_id"] == str(record_id)]
        sent = [row.text for row in final if row.status == "sent" and row.details["job_id"] is not None
                and row.booking_id == _booking_id(runtime, record_id)]
        assert [body["text"] for body in taken] == sent  # in the order they happened
    # The booking's field never went backwards: the last word of each is its job's outcome.
    last = {body["booking"]["external_id"]: body["status"] for _, body in listener.taken}
    assert last == {"6000": "delivered", "6002": "delivered", "6007": "failed"}
    # Deliveries were never held back by the outage.
    for digit in (0, 2, 7):
        assert _status_of(runtime, 6000 + digit) == EXPECTED[digit][0]
    runtime.engine.dispose()


def _booking_id(runtime, record_id: int) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(Booking.id).where(Booking.external_id == str(record_id)))


def _status_of(runtime, record_id: int) -> str:
    with runtime.sessions() as session:
        return _status(session, record_id)


def test_the_generic_report_is_signed_as_standard_webhooks_says(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "generic": {"url": httpserver.url_for("/hooks/notify"), "secret": SECRET}})
    listener = FakeListener(httpserver)  # it checks every signature with check_standard_signature
    book(client, runtime, None, 7001, 1)
    run(worker, clock, 15)

    assert [body["status"] for _, body in listener.taken] == ["delivered", "read"]
    headers, body = listener.taken[-1]
    assert body["text"] == "Подтверждение записи прочитано в MAX 27.11 12:00"
    assert body["booking"] == {"source": "yclients", "external_id": "7001", "branch_id": "512345"}
    assert body["details"]["kind"] == "confirmation" and body["details"]["channel"] == "max"
    assert "+7916" not in json.dumps(body, ensure_ascii=False)  # no phone goes out
    assert [h["webhook-id"] for h, _ in listener.taken] == [f"wb_demo_{row.id}" for row in rows(runtime)]
    runtime.engine.dispose()


def test_a_refusal_fails_the_row_with_its_error_and_the_api_lists_it(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {"yclients": {"custom_field": "notify"}})
    httpserver.expect_request(re.compile(r"^/api/v1/record/.*"), method="GET").respond_with_json(
        {"success": False, "meta": {"message": "Недостаточно прав"}}, status=403)
    book(client, runtime, None, 8000, 0)
    run(worker, clock, 15)

    [row] = rows(runtime)
    assert (row.status, row.tries) == ("failed", 1)
    assert row.last_error == "yclients: record: HTTP 403 «Недостаточно прав»"
    listed = client.get("/api/v1/demo/writebacks?status=failed", headers=AUTH).get_json()["writebacks"]
    assert [(w["target"], w["status"], w["tries"], w["last_error"], w["text"]) for w in listed] == [
        ("yclients", "failed", 1, row.last_error, "Подтверждение записи доставлено в MAX 27.11 12:00")]
    assert client.get("/api/v1/demo/writebacks?status=sent", headers=AUTH).get_json()["writebacks"] == []
    booking = client.get("/api/v1/demo/bookings/yclients/8000", headers=AUTH).get_json()
    assert [(w["status"], w["last_error"]) for w in booking["writebacks"]] == [("failed", row.last_error)]
    assert client.get("/api/v1/demo/writebacks?status=nope", headers=AUTH).status_code == 400
    metrics = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert 'connector_writebacks{status="failed",target="yclients",tenant="demo"} 1.0' in metrics
    sign_in(client)
    booking_page = f"/status/demo/bookings/{row.booking_id}"
    page = client.get(booking_page)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Отчёты в CRM (1)" in html and "Недостаточно прав" in html and "не записано в CRM" in html
    assert "Не записано</dt><dd class=\"err\">1<" in client.get("/status/demo").get_data(as_text=True)
    # support fixes the CRM user's rights, then pushes the report again from the booking's page
    retry = f"{booking_page}/writebacks/{row.id}/retry"
    asked = client.post(retry, data={"csrf_token": csrf_token(client, booking_page)})
    assert "Да, повторить" in asked.get_data(as_text=True)
    done = client.post(retry, data={"csrf_token": csrf_token(client, booking_page), "confirmed": "1"})
    assert done.status_code == 303
    with runtime.sessions() as session:
        again = session.get(Writeback, row.id)
        assert (again.status, again.tries) == ("pending", 0)
        line = session.scalars(select(AuditEvent).where(AuditEvent.what == "staff.retry_writeback")).one()
        assert (line.detail, line.booking_id) == ("Администратор: yclients", row.booking_id)
    assert "уйдёт ещё раз" in client.get(booking_page).get_data(as_text=True)
    runtime.engine.dispose()


def test_a_transient_failure_is_tried_again_later_and_then_gives_up(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "generic": {"url": httpserver.url_for("/hooks/notify"), "secret": SECRET}})
    listener = FakeListener(httpserver)
    listener.down = True
    book(client, runtime, None, 9000, 0)
    run(worker, clock, 10)
    [row] = rows(runtime)
    assert (row.status, row.tries) == ("pending", 1)
    assert (row.next_try_at - START).total_seconds() > 30  # backed off, not hammered
    for _ in range(12):
        clock.now = rows(runtime)[0].next_try_at
        push_until_idle(runtime, targets=_targets())
    [row] = rows(runtime)
    assert (row.status, row.tries, row.last_error) == ("failed", 8, "generic: write-back: HTTP 503")
    assert not listener.taken
    runtime.engine.dispose()


def test_a_tenant_without_a_writeback_block_gets_no_rows(database_url, httpserver):
    runtime, clock, client, worker = setup(database_url, httpserver, None)
    book(client, runtime, None, 9100, 2)
    run(worker, clock, 30)
    assert rows(runtime) == []
    assert _status_of(runtime, 9100) == "delivered"
    runtime.engine.dispose()


@pytest.mark.parametrize("status", ["sent", "pending"])
def test_the_api_pages_rows(database_url, httpserver, status):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "generic": {"url": httpserver.url_for("/hooks/notify"), "secret": SECRET}})
    listener = FakeListener(httpserver)
    listener.down = status == "pending"
    for record_id in (9200, 9201, 9202):
        book(client, runtime, None, record_id, 0)
    run(worker, clock, 10)
    first = client.get(f"/api/v1/demo/writebacks?status={status}&limit=2", headers=AUTH).get_json()
    assert len(first["writebacks"]) == 2
    rest = client.get(f"/api/v1/demo/writebacks?status={status}&limit=2&before={first['next_before']}",
                      headers=AUTH).get_json()
    assert len(rest["writebacks"]) == 1 and rest["next_before"] is None
    runtime.engine.dispose()


def test_a_listener_that_refuses_connections_is_tried_again_and_the_delivery_goes_on(database_url, httpserver,
                                                                                      closed_port):
    runtime, clock, client, worker = setup(database_url, httpserver, {
        "generic": {"url": f"{closed_port}/hooks/notify", "secret": SECRET}})
    book(client, runtime, None, 9300, 2)
    run(worker, clock, 30)
    [row] = rows(runtime)
    assert (row.status, row.tries) == ("pending", 1)
    assert row.last_error == "generic: write-back could not connect, not sent (ConnectionError: NewConnectionError)"
    assert "127.0.0.1" not in row.last_error and "hooks" not in row.last_error  # no URL in the error
    assert _status_of(runtime, 9300) == "delivered"
    runtime.engine.dispose()
