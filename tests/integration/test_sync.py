"""The safety-net sync: what a lost webhook missed is read back from the YCLIENTS REST API."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug import Response

from connector.sources.yclients_api import YclientsApi
from connector.tenants import demo_tenant
from connector.usecases.sync import sync_tenant
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeYclients:
    """GET /records/{company}: whatever `records` holds, in pages, as YCLIENTS' envelope has it."""

    def __init__(self, httpserver):
        self.records: list[dict] = []
        self.requests: list[dict] = []
        self.fail_with: int | None = None
        self.cap = 10_000  # most records a page, whatever `count` asks (YCLIENTS' own maximum is unconfirmed)
        self.ignore_page = False
        self.too_many: list[str] = []  # Retry-After values of the 429s to answer first, one per request
        httpserver.expect_request("/api/v1/records/512345", method="GET").respond_with_handler(self._records)

    def _records(self, request):
        assert request.headers["Authorization"] == "Bearer partner-token, User user-token"
        self.requests.append(dict(request.args))
        if self.fail_with:
            return Response(json.dumps({"success": False, "data": None, "meta": {"message": "Ошибка"}}),
                            status=self.fail_with, content_type="application/json")
        if self.too_many:
            return Response("", status=429, headers={"Retry-After": self.too_many.pop(0)})
        page = 1 if self.ignore_page else int(request.args.get("page", 1))
        count = min(int(request.args.get("count", 200)), self.cap)
        items = self.records[(page - 1) * count: page * count]
        body = {"success": True, "data": items, "meta": {"page": page, "total_count": len(self.records)}}
        return Response(json.dumps(body, ensure_ascii=False), content_type="application/json")


def record(**changes) -> dict:
    data = json.loads(sample("yclients", "records_list_page1.json").read_text(encoding="utf-8"))["data"][0]
    return {**data, **changes}


@pytest.fixture
def setup(database_url, httpserver):
    fake = FakeYclients(httpserver)
    tenant = replace(demo_tenant(DEMO_TOKEN), sources={"yclients": {
        "company_id": 512345, "partner_token": "partner-token", "user_token": "user-token",
        "base_url": httpserver.url_for("/api/v1"), "backfill": "P2D"}})
    runtime = make_runtime(database_url, [tenant])
    clock = {"now": NOW}
    runtime.clock = lambda: clock["now"]
    client = create_app(runtime).test_client()
    yield runtime, tenant, fake, client, clock
    runtime.engine.dispose()


def view(client, external_id="987654321"):
    return client.get(f"/api/v1/demo/bookings/yclients/{external_id}", headers=AUTH)


def test_a_booking_whose_webhook_was_lost_is_found(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records = [record(create_date="2026-11-27T11:02:41+0300")]
    result = sync_tenant(runtime, tenant, "w1")
    assert result.read == 1 and result.outcomes == {"applied": 1}
    booking = view(client).get_json()
    # made within the window: the patient was never told, so the confirmation goes too
    assert sorted(job["kind"] for job in booking["jobs"]) == ["confirmation", "reminder", "reminder"]
    events = client.get("/api/v1/demo/inbound-events", headers=AUTH).get_json()["events"]
    assert events[0]["source"] == "yclients"


def test_an_old_booking_gets_reminders_but_no_confirmation(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records = [record(create_date="2026-10-01T10:00:00+0300")]
    sync_tenant(runtime, tenant, "w1")
    assert sorted(job["kind"] for job in view(client).get_json()["jobs"]) == ["reminder", "reminder"]


def test_what_a_webhook_already_brought_is_a_duplicate(setup):
    runtime, tenant, fake, client, clock = setup
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    fake.records = [body["data"]]
    assert sync_tenant(runtime, tenant, "w1").outcomes == {"duplicate": 1}
    assert len(view(client).get_json()["jobs"]) == 3


def test_a_deleted_record_cancels_the_booking(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records = [record(create_date="2026-11-27T11:02:41+0300")]
    sync_tenant(runtime, tenant, "w1")
    clock["now"] = NOW + timedelta(minutes=10)
    fake.records = [record(deleted=True, last_change_date="2026-11-27T12:05:00+0300")]
    assert sync_tenant(runtime, tenant, "w1").outcomes == {"applied": 1}
    booking = view(client).get_json()
    assert booking["state"] == "cancelled"
    assert [job["status"] for job in booking["jobs"] if job["kind"] == "cancellation"] == ["scheduled"]


def test_the_window_moves_on_and_overlaps(setup):
    runtime, tenant, fake, client, clock = setup
    sync_tenant(runtime, tenant, "w1")
    clock["now"] = NOW + timedelta(minutes=10)
    sync_tenant(runtime, tenant, "w1")
    first, second = fake.requests
    after = datetime.fromisoformat(second["changed_after"])
    # the second pass starts an hour before the first one ended: a record at the seam is read twice, not lost
    assert after == NOW - timedelta(hours=1)
    assert datetime.fromisoformat(first["changed_after"]) == NOW - timedelta(days=2)
    assert first["with_deleted"] == "1"


def test_a_failed_pass_keeps_the_cursor_and_says_why(setup):
    runtime, tenant, fake, client, clock = setup
    fake.fail_with = 402
    result = sync_tenant(runtime, tenant, "w1")
    assert result.error and "402" in result.error
    fake.fail_with = None
    clock["now"] = NOW + timedelta(minutes=10)
    sync_tenant(runtime, tenant, "w1")
    assert datetime.fromisoformat(fake.requests[-1]["changed_after"]) == NOW - timedelta(days=2)


def test_one_worker_at_a_time(setup):
    runtime, tenant, fake, client, clock = setup
    from connector.store.queue import claim_sync

    with runtime.sessions.begin() as session:
        assert claim_sync(session, tenant_id=tenant.id, source="yclients", worker_id="w1", now=NOW,
                          first_cursor=NOW) is not None
    assert sync_tenant(runtime, tenant, "w2") is None  # w1 holds the lease
    clock["now"] = NOW + timedelta(minutes=11)  # w1 died; its lease ran out
    assert sync_tenant(runtime, tenant, "w2") is not None


def test_health_shows_how_far_the_sync_read_and_its_last_error(setup):
    runtime, tenant, fake, client, clock = setup
    fake.fail_with = 403
    sync_tenant(runtime, tenant, "w1")
    [state] = client.get("/healthz", headers=AUTH).get_json()["sync"]
    assert state["tenant"] == "demo" and "403" in state["last_error"]
    # nothing read yet: the cursor is where the first window starts (two days back), plus the overlap
    assert state["read_up_to"] == "2026-11-25T10:00:00Z"


def many(n: int) -> list[dict]:
    return [record(id=1000 + i, create_date="2026-11-27T11:02:41+0300") for i in range(n)]


def test_a_server_that_caps_page_size_still_gives_every_record(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records, fake.cap = many(120), 50
    result = sync_tenant(runtime, tenant, "w1")
    assert (result.read, result.outcomes, result.error) == (120, {"applied": 120}, None)
    assert view(client, "1119").status_code == 200  # the last record, on the third page of fifty
    clock["now"] = NOW + timedelta(minutes=10)
    sync_tenant(runtime, tenant, "w1")
    assert datetime.fromisoformat(fake.requests[-1]["changed_after"]) == NOW - timedelta(hours=1)


def test_a_pass_cut_short_applies_what_it_read_and_keeps_the_cursor(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records, fake.cap, fake.ignore_page = many(120), 50, True
    result = sync_tenant(runtime, tenant, "w1")
    assert "50 of 120" in result.error
    assert (result.read, result.outcomes) == (50, {"applied": 50})  # a lost booking need not wait for the rest
    assert view(client, "1049").status_code == 200 and view(client, "1050").status_code == 404
    fake.ignore_page = False
    clock["now"] = NOW + timedelta(minutes=10)
    result = sync_tenant(runtime, tenant, "w1")
    # the records never read are in the next window: the cursor did not move past them
    assert datetime.fromisoformat(fake.requests[-1]["changed_after"]) == NOW - timedelta(days=2)
    assert result.outcomes == {"duplicate": 50, "applied": 70}


def test_a_429_is_waited_out_within_the_pass(setup):
    runtime, tenant, fake, client, clock = setup
    fake.records, fake.too_many = many(1), ["2"]
    slept: list[float] = []
    ticks = iter(range(1000))

    def api(config):
        return YclientsApi(config, sleep=slept.append, clock=lambda: float(next(ticks)))

    result = sync_tenant(runtime, tenant, "w1", api_factory=api)
    assert (result.read, result.error) == (1, None)
    assert len(fake.requests) == 2 and slept and max(slept) >= 1.0
