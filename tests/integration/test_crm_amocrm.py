"""An amoCRM clinic end to end: a batched webhook through the real door, each lead and its contact read from a
stand-in account speaking amoCRM's REST wire format (hal+json; a 429 as an HTML page without Retry-After), the
bookings and their jobs in the ledger; a lead closed as lost (143) cancels its booking with a notice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import select
from werkzeug import Request, Response

from connector.entrypoints.worker import Worker
from connector.store.models import Booking, InboundEvent, NotificationJob, Patient, Writeback
from connector.tenants import demo_tenant
from connector.usecases.fetching import fetch_batch
from connector.usecases.intake import drain
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.integration.test_delivery import START, Clock, run

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
URL = f"/webhooks/amocrm/demo?token={DEMO_TOKEN}"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FORM = "application/x-www-form-urlencoded"


def load(name: str) -> dict:
    return json.loads(sample("amocrm", name).read_text(encoding="utf-8"))


def hook(*leads: tuple[str, str, str], subdomain: str = "clinic") -> bytes:
    """A webhook as amoCRM posts it: PHP bracket keys, v2 shape, several leads in one body."""
    pairs = []
    for index, (action, lead_id, status_id) in enumerate(leads):
        pairs += [(f"leads[{action}][{index}][id]", lead_id), (f"leads[{action}][{index}][status_id]", status_id),
                  (f"leads[{action}][{index}][pipeline_id]", "7001")]
    pairs += [("account[subdomain]", subdomain), ("account[id]", "31415926")]
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()


class Account:
    """GET /api/v4/leads/{id}?with=contacts and /api/v4/contacts/{id} of one account."""

    def __init__(self, httpserver):
        first = load("lead_24681357.json")
        self.leads = {"24681357": first, "24681358": {**first, "id": 24681358}}
        self.contacts = {"11223344": load("contact_11223344.json")}
        self.notes: dict[str, list[dict]] = {}  # lead id → its notes, as amoCRM keeps them
        self.lost_answers = 0  # how many note POSTs to take and then answer 502, as a proxy losing the answer
        self.too_many = 0  # how many requests to answer 429 first
        self.requests: list[str] = []
        httpserver.expect_request("").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        assert request.headers["Authorization"] == "Bearer long-lived-token"
        self.requests.append(request.path)
        if self.too_many:
            self.too_many -= 1
            return Response("<html><body><h1>429 Too Many Requests</h1></body></html>", 429,
                            content_type="text/html")
        kind, _, entity = request.path.removeprefix("/api/v4/").partition("/")
        if kind == "leads" and entity.endswith("/notes"):
            return self._notes(request, entity.removesuffix("/notes"))
        if kind == "leads" and entity in self.leads:
            assert request.args.get("with") == "contacts"
            return Response(json.dumps(self.leads[entity]), content_type="application/hal+json")
        if kind == "contacts" and entity in self.contacts:
            return Response(json.dumps(self.contacts[entity]), content_type="application/hal+json")
        return Response(status=204)


    def _notes(self, request: Request, lead_id: str) -> Response:
        kept = self.notes.setdefault(lead_id, [])
        if request.method == "GET":
            assert request.args.get("filter[note_type]") == "service_message"
            newest = sorted(kept, key=lambda note: -note["id"])
            return Response(json.dumps({"_embedded": {"notes": newest}}), content_type="application/hal+json")
        for note in json.loads(request.get_data()):
            kept.append({"id": 100 + len(kept), "entity_id": int(lead_id), **note})
        if self.lost_answers:
            self.lost_answers -= 1
            return Response("<html>502 Bad Gateway</html>", 502, content_type="text/html")
        return Response(json.dumps({"_embedded": {"notes": kept[-1:]}}), content_type="application/hal+json")


@pytest.fixture
def clinic(database_url, httpserver):
    account = Account(httpserver)
    tenant = replace(demo_tenant(DEMO_TOKEN), sources={"amocrm": {
        "subdomain": "clinic", "base_url": httpserver.url_for("").rstrip("/"), "token": "long-lived-token"}})
    runtime = make_runtime(database_url, [tenant])
    runtime.clock = lambda: NOW
    yield runtime, create_app(runtime).test_client(), account
    runtime.engine.dispose()


def work(runtime) -> None:
    while fetch_batch(runtime):
        pass
    drain(runtime)


def jobs_of(runtime, lead_id: str) -> dict[str, str]:
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == lead_id)).one()
        return dict(session.execute(select(NotificationJob.kind, NotificationJob.status)
                                    .where(NotificationJob.booking_id == booking.id)).all())


def test_a_batched_webhook_becomes_a_booking_per_lead(clinic):
    runtime, client, account = clinic
    response = client.post(URL, data=hook(("status", "24681357", "55501"), ("update", "24681358", "55501")),
                           content_type=FORM)
    answer = response.get_json()
    assert response.status_code == 200 and answer["outcome"] == "accepted"
    assert len(answer["inbound_event_ids"]) == 2 and account.requests == []

    work(runtime)
    assert sorted(account.requests) == ["/api/v4/contacts/11223344", "/api/v4/contacts/11223344",
                                        "/api/v4/leads/24681357", "/api/v4/leads/24681358"]
    booking = client.get("/api/v1/demo/bookings/amocrm/24681357", headers=AUTH).get_json()
    assert booking["starts_at"] == "2026-12-03T10:00:00+03:00"  # custom field 801234, Unix seconds
    assert (booking["doctor"], booking["specialty"]) == ("Иванов Сергей Петрович", "Кардиолог")
    assert {"confirmation", "reminder"} <= set(jobs_of(runtime, "24681357"))
    assert {"confirmation", "reminder"} <= set(jobs_of(runtime, "24681358"))
    for event_id in answer["inbound_event_ids"]:
        assert client.get(f"/api/v1/demo/inbound-events/{event_id}", headers=AUTH).get_json()["outcome"] == "applied"


def test_a_lead_closed_as_lost_is_cancelled_with_its_notice(clinic):
    runtime, client, account = clinic
    client.post(URL, data=hook(("add", "24681357", "55501")), content_type=FORM)
    work(runtime)
    account.leads["24681357"] = {**account.leads["24681357"], "status_id": 143, "updated_at": 1795770000}
    client.post(URL, data=hook(("status", "24681357", "143")), content_type=FORM)
    work(runtime)
    jobs = jobs_of(runtime, "24681357")
    assert jobs["cancellation"] == "scheduled" and jobs["reminder"] == "cancelled"


def test_a_lead_deleted_at_the_source_cancels_its_booking(clinic):
    runtime, client, account = clinic
    client.post(URL, data=hook(("add", "24681357", "55501")), content_type=FORM)
    work(runtime)
    del account.leads["24681357"]
    client.post(URL, data=hook(("delete", "24681357", "55501")), content_type=FORM)
    work(runtime)
    with runtime.sessions() as session:
        assert session.scalars(select(Booking.state)).one() == "cancelled"


def test_a_fetch_answered_429_then_200_is_applied_once(clinic):
    runtime, client, account = clinic
    account.too_many = 1
    event_id = client.post(URL, data=hook(("add", "24681357", "55501")), content_type=FORM).get_json()[
        "inbound_event_id"]
    work(runtime)
    assert account.requests[:2] == ["/api/v4/leads/24681357", "/api/v4/leads/24681357"]
    assert client.get(f"/api/v1/demo/inbound-events/{event_id}", headers=AUTH).get_json()["outcome"] == "applied"
    assert list(jobs_of(runtime, "24681357").values()).count("scheduled") == len(jobs_of(runtime, "24681357"))
    with runtime.sessions() as session:
        assert len(session.scalars(select(NotificationJob.id).where(NotificationJob.kind == "confirmation")).all()) == 1


def test_a_body_from_another_account_or_without_the_token_is_refused_and_kept(clinic):
    runtime, client, account = clinic
    foreign = client.post(URL, data=hook(("add", "1", "55501"), subdomain="other"), content_type=FORM)
    no_token = client.post("/webhooks/amocrm/demo", data=hook(("add", "1", "55501")), content_type=FORM)
    assert (foreign.status_code, no_token.status_code) == (401, 401)
    with runtime.sessions() as session:
        assert session.scalars(select(InboundEvent.reason)).all() == ["unauthorized", "unauthorized"]
    assert account.requests == []


def test_a_contacts_only_hook_is_answered_and_plans_nothing(clinic):
    runtime, client, account = clinic
    body = b"contacts%5Bupdate%5D%5B0%5D%5Bid%5D=11223344&account%5Bsubdomain%5D=clinic"
    answer = client.post(URL, data=body, content_type=FORM).get_json()
    assert answer["detail"] == "not a booking event; nothing to apply"
    work(runtime)
    assert account.requests == []


def test_a_patients_new_phone_in_the_contact_reaches_the_booking_before_its_reminder(clinic):
    """Editing the contact changes no lead, so amoCRM's contact hook (with the contact's linked leads) is what
    tells us: the lead is read again with its contact, and the booking's messages go to the new number."""
    runtime, client, account = clinic
    client.post(URL, data=hook(("add", "24681357", "55501")), content_type=FORM)
    work(runtime)
    contact = account.contacts["11223344"]
    contact["custom_fields_values"][0]["values"][0]["value"] = "8 (926) 555-00-11"
    contact["updated_at"] += 600
    pairs = [("contacts[update][0][id]", "11223344"), ("contacts[update][0][name]", contact["name"]),
             ("contacts[update][0][linked_leads_id][24681357][ID]", "24681357"), ("account[subdomain]", "clinic")]
    answer = client.post(URL, data="&".join(f"{quote(k)}={quote(v)}" for k, v in pairs), content_type=FORM)
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "accepted"
    work(runtime)
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "24681357")).one()
        assert session.get(Patient, booking.patient_id).phone == "+79265550011"
        waiting = session.scalars(select(NotificationJob).where(NotificationJob.booking_id == booking.id,
                                                                NotificationJob.status == "scheduled")).all()
        assert waiting and {job.patient_id for job in waiting} == {booking.patient_id}


def test_the_lead_gets_one_note_with_the_channel_and_local_time_though_an_answer_was_lost(database_url, httpserver):
    """The booking's outcome reaches the lead as a service note. The first POST's answer is lost after amoCRM kept
    the note: the outbox tries again, looks at the lead's notes first, and writes no second one."""
    account = Account(httpserver)
    account.lost_answers = 1
    tenant = replace(demo_tenant(DEMO_TOKEN), writeback_block={"amocrm": {"note": True}}, sources={"amocrm": {
        "subdomain": "clinic", "base_url": httpserver.url_for("").rstrip("/"), "token": "long-lived-token"}})
    runtime = make_runtime(database_url, [tenant])
    clock = Clock(START)  # 12:00 in Moscow
    runtime.clock = clock
    worker = Worker(runtime, concurrency=4, retry_base=0.01, name="amo-writeback")
    try:
        answer = create_app(runtime).test_client().post(URL, data=hook(("add", "24681357", "55501")),
                                                         content_type=FORM)
        assert answer.status_code == 200
        run(worker, clock, 120)  # the contact's phone ends in 2: MAX has no such user, Telegram delivers
        notes = account.notes["24681357"]
        texts = [note["params"]["text"][:-2] for note in notes]
        assert texts == ["Подтверждение записи доставлено в Telegram 27.11 12:"]  # the minute is the delivery's
        assert notes[0]["note_type"] == "service_message" and "+7" not in notes[0]["params"]["text"]
        methods = [path for path in account.requests if path.endswith("/notes")]
        assert len(methods) >= 2  # the lost POST, then the look before trying again
        with runtime.sessions() as session:
            assert session.scalars(select(Writeback.status)).all() == ["sent"]
    finally:
        worker.close()
        runtime.engine.dispose()
