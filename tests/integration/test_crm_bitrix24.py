"""A Bitrix24 clinic end to end: the portal's outgoing webhook through the real door, the deal and its contact
read from a stand-in portal speaking the REST wire format, the booking and its jobs in the ledger; a wrong
application token refused and recorded; reconciliation finding a deal whose webhook never came."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from werkzeug import Request, Response

from connector.entrypoints.worker import Worker
from connector.store.models import Booking, InboundEvent, NotificationJob, Patient, Writeback
from connector.tenants import demo_tenant
from connector.usecases.fetching import fetch_batch
from connector.usecases.intake import drain
from connector.usecases.reconcile import reconcile_tenant
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.integration.test_delivery import START, Clock, run

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TOKEN = "app-token-from-the-handler-settings"
URL = "/webhooks/bitrix24/demo"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def answer(name: str) -> dict:
    return json.loads(sample("bitrix24", name).read_text(encoding="utf-8"))


class Portal:
    """crm.item.get / crm.contact.get / crm.item.list of one portal, from the samples, as the REST API answers."""

    def __init__(self, httpserver):
        self.deals = {4455: answer("crm_item_get_deal_4455.json")["result"]["item"]}
        self.contact = answer("crm_contact_get_6677.json")
        self.contact_changed: str | None = None  # the contact's updatedTime, once it changed
        self.comments: list[dict] = []  # the deals' timeline comments, as the portal keeps them
        self.lost_answers = 0  # how many comments to take and then answer 502, as a proxy losing the answer
        self.calls: list[tuple[str, dict]] = []
        for method in ("crm.item.get", "crm.contact.get", "crm.item.list", "crm.timeline.comment.add",
                       "crm.timeline.comment.list"):
            httpserver.expect_request(f"/rest/1/c0de/{method}.json", method="POST").respond_with_handler(
                lambda request, method=method: self._answer(method, request))

    def _answer(self, method: str, request: Request) -> Response:
        body = json.loads(request.get_data() or b"{}")
        self.calls.append((method, body))
        if method == "crm.item.get":
            deal = self.deals.get(int(body["id"]))
            if deal is None:
                return Response(json.dumps({"error": "NOT_FOUND", "error_description": "Not found"}), 400,
                                content_type="application/json")
            return Response(json.dumps({"result": {"item": deal}}), content_type="application/json")
        if method == "crm.timeline.comment.add":
            self.comments.append({"ID": str(len(self.comments) + 1), **body["fields"]})
            if self.lost_answers:
                self.lost_answers -= 1
                return Response("<html>502 Bad Gateway</html>", 502, content_type="text/html")
            return Response(json.dumps({"result": len(self.comments)}), content_type="application/json")
        if method == "crm.timeline.comment.list":
            found = [comment for comment in reversed(self.comments)
                     if comment["ENTITY_ID"] == body["filter"]["ENTITY_ID"] and comment["ENTITY_TYPE"] == "deal"]
            return Response(json.dumps({"result": found}), content_type="application/json")
        if method == "crm.contact.get":
            return Response(json.dumps(self.contact), content_type="application/json")
        if body.get("entityTypeId") == 3:  # contacts changed in the window
            items = [{"id": 6677, "updatedTime": self.contact_changed}] if self.contact_changed else []
            return Response(json.dumps({"result": {"items": items}, "total": len(items)}),
                            content_type="application/json")
        contact = body.get("filter", {}).get("=contactId")
        deals = [deal for deal in self.deals.values() if contact is None or deal.get("contactId") == contact]
        items = [{"id": deal["id"], "updatedTime": deal["updatedTime"]} for deal in deals]
        return Response(json.dumps({"result": {"items": items}, "total": len(items)}),
                        content_type="application/json")


@pytest.fixture
def clinic(database_url, httpserver):
    portal = Portal(httpserver)
    tenant = replace(demo_tenant(DEMO_TOKEN), sources={"bitrix24": {
        "webhook_url": httpserver.url_for("/rest/1/c0de/"), "application_token": TOKEN}})
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = lambda: NOW
    yield runtime, create_app(runtime).test_client(), portal
    runtime.engine.dispose()


def work(runtime) -> None:
    """What the worker does with a CRM's webhook: fetch the entity, then apply it."""
    while fetch_batch(runtime):
        pass
    drain(runtime)


def test_a_deal_update_becomes_a_booking_with_its_reminders(clinic):
    runtime, client, portal = clinic
    body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.get_json()["outcome"] == "accepted"
    assert portal.calls == [], "the portal is answered before anything is fetched"

    work(runtime)
    assert [method for method, _ in portal.calls] == ["crm.item.get", "crm.contact.get"]
    booking = client.get("/api/v1/demo/bookings/bitrix24/4455", headers=AUTH).get_json()
    assert booking["starts_at"] == "2026-12-03T10:00:00+03:00"
    assert booking["state"] == "active"
    with runtime.sessions() as session:
        kinds = sorted(session.scalars(select(NotificationJob.kind)).all())
    assert "reminder" in kinds and "confirmation" in kinds

    # The same webhook again (Bitrix24 sends one per save): the deal re-read is the same, nothing new is planned.
    again = client.post(URL, data=body, content_type="application/x-www-form-urlencoded").get_json()
    work(runtime)
    event = client.get(f"/api/v1/demo/inbound-events/{again['inbound_event_id']}", headers=AUTH).get_json()
    assert event["outcome"] == "duplicate"
    with runtime.sessions() as session:
        assert sorted(session.scalars(select(NotificationJob.kind)).all()) == kinds


def test_a_deal_moved_to_a_failed_stage_is_cancelled_with_its_notice(clinic):
    runtime, client, portal = clinic
    body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
    client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    work(runtime)
    portal.deals[4455] = {**portal.deals[4455], "stageId": "C1:LOSE", "stageSemanticId": "F",
                          "updatedTime": "2026-11-28T12:00:00+03:00"}
    client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    work(runtime)
    with runtime.sessions() as session:
        assert session.scalars(select(Booking.state)).one() == "cancelled"
        jobs = dict(session.execute(select(NotificationJob.kind, NotificationJob.status)).all())
    assert jobs["cancellation"] == "scheduled" and jobs["reminder"] == "cancelled"


def test_a_wrong_application_token_is_refused_and_recorded(clinic):
    runtime, client, portal = clinic
    body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip().replace(TOKEN.encode(), b"forged")
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    with runtime.sessions() as session:
        stored = session.scalars(select(InboundEvent)).one()
        assert (stored.outcome, stored.reason, stored.source) == ("rejected", "unauthorized", "bitrix24")
        assert stored.body.startswith("event=ONCRMDEALUPDATE")
    assert portal.calls == []


def test_a_tenant_without_bitrix24_answers_404(database_url):
    runtime = make_runtime(database_url)
    client = create_app(runtime).test_client()
    body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 404 and response.get_json()["error"] == "source_not_configured"
    runtime.engine.dispose()


def test_reconciliation_finds_a_deal_whose_webhook_never_came(clinic):
    runtime, client, portal = clinic
    result = reconcile_tenant(runtime, runtime.tenants["demo"], "bitrix24", "worker-1")
    assert (result.read, result.stored, result.error) == (1, 1, None)
    work(runtime)
    booking = client.get("/api/v1/demo/bookings/bitrix24/4455", headers=AUTH).get_json()
    assert booking["state"] == "active"
    listings = [body for method, body in portal.calls if method == "crm.item.list"]
    assert [listing["entityTypeId"] for listing in listings] == [2, 3]  # deals, then contacts

    calls = len(portal.calls)  # the next pass finds nothing newer than what we hold: nothing is fetched
    runtime.clock = lambda: NOW.replace(hour=10)
    assert reconcile_tenant(runtime, runtime.tenants["demo"], "bitrix24", "worker-1").stored == 0
    work(runtime)
    assert [method for method, _ in portal.calls[calls:]] == ["crm.item.list", "crm.item.list"]


def test_reconciliation_finds_a_contact_whose_webhook_never_came_and_reads_its_deals_again(clinic):
    runtime, client, portal = clinic
    body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
    client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    work(runtime)
    portal.contact["result"]["PHONE"][0]["VALUE"] = "+7 926 555-00-11"  # ONCRMCONTACTUPDATE was lost
    portal.contact_changed = "2026-12-01T11:50:00+03:00"
    result = reconcile_tenant(runtime, runtime.tenants["demo"], "bitrix24", "worker-1")
    assert result.error is None and result.stored == 1  # the contact; the deal itself is held as it is
    work(runtime)
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "4455")).one()
        assert session.get(Patient, booking.patient_id).phone == "+79265550011"


def test_a_patients_new_phone_in_the_contact_reaches_the_deals_booking(clinic):
    """Editing a contact changes no deal, so ONCRMCONTACTUPDATE is what tells us: the contact's deals are listed
    (crm.item.list by contactId), each read again as an event of its own, and the booking follows the new phone."""
    runtime, client, portal = clinic
    deal_hook = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
    client.post(URL, data=deal_hook, content_type="application/x-www-form-urlencoded")
    work(runtime)
    portal.contact["result"]["PHONE"][0]["VALUE"] = "8 (926) 555-00-11"
    contact_hook = (deal_hook.replace(b"ONCRMDEALUPDATE", b"ONCRMCONTACTUPDATE")
                    .replace(b"data%5BFIELDS%5D%5BID%5D=4455", b"data%5BFIELDS%5D%5BID%5D=6677"))
    answer = client.post(URL, data=contact_hook, content_type="application/x-www-form-urlencoded").get_json()
    assert answer["outcome"] == "accepted"
    portal.calls.clear()
    work(runtime)
    listing = [body for method, body in portal.calls if method == "crm.item.list"]
    assert listing and listing[0]["filter"] == {"=contactId": 6677}
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "4455")).one()
        assert session.get(Patient, booking.patient_id).phone == "+79265550011"
        waiting = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == booking.id,
                                                                NotificationJob.status == "scheduled")).all()
        assert waiting and {job.patient_id for job in waiting} == {booking.patient_id}
    contact_event = client.get(f"/api/v1/demo/inbound-events/{answer['inbound_event_id']}", headers=AUTH).get_json()
    assert contact_event["outcome"] == "ignored"
    assert "read again: 4455" in str(contact_event)


def test_the_deal_gets_one_timeline_comment_with_the_channel_and_local_time_though_an_answer_was_lost(
        database_url, httpserver):
    """The booking's outcome reaches the deal's timeline. The first comment's answer is lost after the portal kept
    it: the outbox tries again, reads the deal's comments first, and writes no second one."""
    portal = Portal(httpserver)
    portal.lost_answers = 1
    tenant = replace(demo_tenant(DEMO_TOKEN), writeback_block={"bitrix24": {"comment": True}}, sources={"bitrix24": {
        "webhook_url": httpserver.url_for("/rest/1/c0de/"), "application_token": TOKEN}})
    runtime = make_runtime(database_url, [tenant])
    clock = Clock(START)  # 12:00 in Moscow
    runtime.clock = clock
    worker = Worker(runtime, concurrency=4, retry_base=0.01, name="b24-writeback")
    try:
        body = sample("bitrix24", "deal_update_webhook.txt").read_bytes().strip()
        create_app(runtime).test_client().post(URL, data=body, content_type="application/x-www-form-urlencoded")
        run(worker, clock, 120)  # the contact's phone ends in 4: neither MAX nor Telegram, WhatsApp delivers
        texts = [comment["COMMENT"][:-2] for comment in portal.comments]
        assert texts == ["Подтверждение записи доставлено в WhatsApp 27.11 12:"]  # the minute is the delivery's
        assert all(comment["ENTITY_ID"] == 4455 for comment in portal.comments)
        assert [method for method, _ in portal.calls if "comment" in method][:2] == [
            "crm.timeline.comment.add", "crm.timeline.comment.list"]
        with runtime.sessions() as session:
            assert session.scalars(select(Writeback.status)).all() == ["sent"]
    finally:
        worker.close()
        runtime.engine.dispose()
