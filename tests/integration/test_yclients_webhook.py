"""The YCLIENTS door end to end through Flask and the worker's intake, on a real SQLite file and a real
PostgreSQL database: the webhook answers `accepted`, the intake settles each event (tests.intake.deliver)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from connector.store.inbound import NOT_A_BOOKING
from connector.usecases.intake import drain
from tests.conftest import API_TOKEN, DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import accept, deliver, event_of, post_all

URL = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
FIXTURES = ["record_create", "record_update_time_moved", "record_update_confirmed", "record_delete"]


def load(name: str) -> dict:
    return json.loads(sample("yclients", f"{name}.json").read_text(encoding="utf-8"))


def at_source_time(runtime, body: dict) -> None:
    """Run the clock as YCLIENTS would deliver: about five seconds after the change."""
    changed = datetime.fromisoformat(body["data"]["last_change_date"])
    runtime.clock = lambda: changed.astimezone(UTC) + timedelta(seconds=5)


def post(client, runtime, body: dict, url: str = URL) -> dict:
    """Deliver at the source's time; the inbound event once the intake has settled it."""
    at_source_time(runtime, body)
    return deliver(client, runtime, url, json=body)


def booking(client, external_id="987654321"):
    response = client.get(f"/api/v1/demo/bookings/yclients/{external_id}", headers=AUTH)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def jobs_by_status(view: dict) -> list[tuple[str, str, str]]:
    return sorted((job["kind"], job["due_at"], job["status"]) for job in view["jobs"])


def test_create_plans_confirmation_and_two_reminders(client, runtime):
    event = post(client, runtime, load("record_create"))
    assert event["outcome"] == "applied" and event["error"] is None
    view = booking(client)
    assert event["booking_id"] == view["id"] and event["external_id"] == "987654321"
    assert view["starts_at"] == "2026-12-03T10:00:00+03:00"
    assert view["state"] == "active"
    assert view["patient"]["phone"] == "+7 916 ***-**-60"
    assert jobs_by_status(view) == [
        ("confirmation", "2026-11-27T08:02:46Z", "scheduled"),
        # 08:00 Moscow is inside the quiet hours (21:00-09:00): moved to 09:00, still before the visit.
        ("reminder", "2026-12-02T07:00:00Z", "scheduled"),
        ("reminder", "2026-12-03T06:00:00Z", "scheduled"),
    ]


def test_fixtures_in_order_give_exactly_the_expected_jobs(client, runtime):
    for name in FIXTURES:
        assert post(client, runtime, load(name))["outcome"] == "applied", name
    view = booking(client)
    assert view["state"] == "cancelled"
    # Nothing ran a worker here, so every notice was still pending when the record was deleted.
    assert jobs_by_status(view) == sorted([
        ("confirmation", "2026-11-27T08:02:46Z", "cancelled"),
        # the 10:00 reminders, cancelled when the visit moved to 15:00
        ("reminder", "2026-12-02T07:00:00Z", "cancelled"),
        ("reminder", "2026-12-03T06:00:00Z", "cancelled"),
        # the 15:00 reminders and notice: the record in the "confirmed" sample is at 10:00 again
        ("reminder", "2026-12-02T12:00:00Z", "cancelled"),
        ("reminder", "2026-12-03T10:00:00Z", "cancelled"),
        ("reschedule", "2026-11-28T06:47:10Z", "cancelled"),
        # back at 10:00: its reminders again and a second reschedule notice, withdrawn by the delete
        ("reminder", "2026-12-02T07:00:00Z", "cancelled"),
        ("reminder", "2026-12-03T06:00:00Z", "cancelled"),
        ("reschedule", "2026-11-28T07:05:05Z", "cancelled"),
        # deleted: the patient is told
        ("cancellation", "2026-11-29T17:15:38Z", "scheduled"),
    ])
    statuses = {(job["kind"], job["key"]): job["status"] for job in view["jobs"]}
    assert statuses[("cancellation", "cancellation@2026-12-03T07:00:00Z")] == "scheduled"
    assert all(job["status"] == "cancelled" for job in view["jobs"] if job["kind"] == "reminder")
    whats = [event["what"] for event in view["events"]]
    assert whats[:1] == ["booking.created"] and "booking.time_moved" in whats and "booking.cancelled" in whats


def test_replaying_everything_twice_changes_nothing(client, runtime):
    for name in FIXTURES:
        post(client, runtime, load(name))
    before = booking(client)
    outcomes = [post(client, runtime, load(name))["outcome"] for name in FIXTURES]
    assert outcomes == ["stale", "stale", "stale", "duplicate"]
    after = booking(client)
    assert after["jobs"] == before["jobs"]
    assert after["state"] == before["state"] == "cancelled"


def test_yclients_repeats_one_update_four_times(client, runtime):
    post(client, runtime, load("record_create"))
    moved = load("record_update_time_moved")
    outcomes = [post(client, runtime, moved)["outcome"] for _ in range(4)]
    assert outcomes == ["applied", "duplicate", "duplicate", "duplicate"]
    kinds = [job["kind"] for job in booking(client)["jobs"] if job["status"] == "scheduled"]
    assert sorted(kinds) == ["confirmation", "reminder", "reminder", "reschedule"]


def test_repeats_waiting_in_one_pass_apply_once(client, runtime):
    moved = load("record_update_time_moved")
    at_source_time(runtime, moved)
    events = post_all(client, runtime, URL, [load("record_create")] + [moved] * 4)
    assert [event["outcome"] for event in events] == ["applied", "applied"] + ["duplicate"] * 3
    kinds = [job["kind"] for job in booking(client)["jobs"] if job["status"] == "scheduled"]
    assert sorted(kinds) == ["confirmation", "reminder", "reminder", "reschedule"]


def test_an_older_update_arriving_late_is_stale(client, runtime):
    post(client, runtime, load("record_create"))
    post(client, runtime, load("record_update_confirmed"))
    late = load("record_update_time_moved")  # changed at 09:47, before the 10:05 confirmation
    assert post(client, runtime, late)["outcome"] == "stale"
    assert booking(client)["starts_at"] == "2026-12-03T10:00:00+03:00"


def test_one_pass_applies_a_bookings_waiting_events_in_the_sources_order(client, runtime):
    """Waiting together, an older update that came last is applied in its place, before the newer one: the
    booking ends as the source left it, as if each had been applied the moment it was made."""
    bodies = [load("record_create"), load("record_update_confirmed"), load("record_update_time_moved")]
    at_source_time(runtime, bodies[1])
    events = post_all(client, runtime, URL, bodies)
    assert [event["outcome"] for event in events] == ["applied", "applied", "applied"]
    view = booking(client)
    assert view["starts_at"] == "2026-12-03T10:00:00+03:00"  # the 10:05 confirmation's time, not 09:47's
    assert [event["what"] for event in view["events"] if event["what"].startswith("booking.")] == [
        "booking.created", "booking.time_moved", "booking.time_moved"]
    scheduled = sorted((job["kind"], job["due_at"]) for job in view["jobs"] if job["status"] == "scheduled")
    assert scheduled == [("confirmation", "2026-11-28T07:05:05Z"), ("reminder", "2026-12-02T07:00:00Z"),
                         ("reminder", "2026-12-03T06:00:00Z"), ("reschedule", "2026-11-28T07:05:05Z")]


def test_comment_change_replans_without_duplicates(client, runtime):
    post(client, runtime, load("record_create"))
    changed = load("record_create")
    changed["status"] = "update"
    changed["data"]["comment"] = "Пациент просил позвонить заранее."
    changed["data"]["staff"]["name"] = "Петрова Анна Сергеевна"
    changed["data"]["last_change_date"] = "2026-11-27T12:00:00+0300"
    assert post(client, runtime, changed)["outcome"] == "applied"
    view = booking(client)
    assert view["doctor"] == "Петрова Анна Сергеевна"
    assert len(view["jobs"]) == 3 and {job["status"] for job in view["jobs"]} == {"scheduled"}


def test_no_show_cancels_reminders_without_a_notice(client, runtime):
    post(client, runtime, load("record_create"))
    body = load("record_update_confirmed")
    body["data"]["attendance"] = -1
    post(client, runtime, body)
    view = booking(client)
    assert view["state"] == "no_show"
    assert not [job for job in view["jobs"] if job["kind"] == "cancellation"]
    assert all(job["status"] == "cancelled" for job in view["jobs"] if job["kind"] == "reminder")


def test_attended_visit(client, runtime):
    post(client, runtime, load("record_create"))
    body = load("record_update_confirmed")
    body["data"]["attendance"] = 1
    post(client, runtime, body)
    assert booking(client)["state"] == "attended"


def test_booking_three_hours_ahead_gets_only_the_two_hour_reminder(client, runtime):
    body = load("record_create")
    body["data"]["datetime"] = "2026-11-27T14:02:41+03:00"  # created 11:02:41 Moscow
    assert post(client, runtime, body)["outcome"] == "applied"
    reminders = [job for job in booking(client)["jobs"] if job["kind"] == "reminder"]
    assert [(job["due_at"], job["status"]) for job in reminders] == [("2026-11-27T09:02:41Z", "scheduled")]


def test_yekaterinburg_clinic(database_url):
    """Quiet hours and the shown time follow the clinic's zone, +05:00, not Moscow's."""
    from dataclasses import replace

    from connector.core.model import Policy
    from connector.tenants import demo_tenant
    from connector.web import create_app
    from tests.conftest import make_runtime

    tenant = replace(demo_tenant(DEMO_TOKEN), timezone="Asia/Yekaterinburg",
                     policy=Policy(timezone="Asia/Yekaterinburg"))
    runtime = make_runtime(database_url, [tenant])
    client = create_app(runtime).test_client()
    body = load("record_create")
    body["data"]["datetime"] = "2026-12-03T10:00:00+05:00"
    assert post(client, runtime, body)["outcome"] == "applied"
    view = booking(client)
    assert view["starts_at"] == "2026-12-03T10:00:00+05:00"
    dues = sorted(job["due_at"] for job in view["jobs"] if job["kind"] == "reminder")
    # 24 h before: 10:00 local the day before (05:00Z). 2 h before: 08:00 local is inside the quiet hours,
    # moved to 09:00 local (04:00Z), still before the visit. In Moscow's zone it would have stayed at 06:00.
    assert dues == ["2026-12-02T05:00:00Z", "2026-12-03T04:00:00Z"]
    runtime.engine.dispose()


def test_delete_with_only_an_id_cancels_what_we_hold(client, runtime):
    post(client, runtime, load("record_create"))
    runtime.clock = lambda: datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    body = {"company_id": 512345, "resource": "record", "resource_id": 987654321, "status": "delete",
            "data": {"id": 987654321}}
    assert deliver(client, runtime, URL, json=body)["outcome"] == "applied"
    view = booking(client)
    assert view["state"] == "cancelled"
    assert [job["status"] for job in view["jobs"] if job["kind"] == "cancellation"] == ["scheduled"]
    assert view["starts_at"] == "2026-12-03T10:00:00+03:00"  # the partial body did not erase what we held


def test_cancelled_after_the_visit_sends_no_notice(client, runtime):
    post(client, runtime, load("record_create"))
    runtime.clock = lambda: datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    body = load("record_delete")
    assert deliver(client, runtime, URL, json=body)["outcome"] == "applied"
    assert not [job for job in booking(client)["jobs"] if job["kind"] == "cancellation"]


def test_other_resources_are_recorded_as_ignored(client, runtime):
    body = {"company_id": 512345, "resource": "good", "resource_id": 5, "status": "create", "data": {"id": 5}}
    response = client.post(URL, json=body)
    answer = response.get_json()
    # Stored `ignored` at once (nothing to apply), yet answered like every stored event, saying why.
    assert response.status_code == 200 and answer["outcome"] == "accepted" and answer["detail"] == NOT_A_BOOKING
    assert event_of(client, URL, answer["inbound_event_id"])["outcome"] == "ignored"
    drain(runtime)
    event = event_of(client, URL, answer["inbound_event_id"])
    assert event["outcome"] == "ignored" and event["error"] == NOT_A_BOOKING and event["booking_id"] is None
    events = client.get("/api/v1/demo/inbound-events?outcome=ignored", headers=AUTH).get_json()["events"]
    assert len(events) == 1 and json.loads(events[0]["body"]) == body


@pytest.mark.parametrize(
    ("url", "headers", "body", "status", "error"),
    [
        ("/webhooks/yclients/demo", {}, b"{}", 401, "unauthorized"),
        ("/webhooks/yclients/demo?token=wrong-token-000000", {}, b"{}", 401, "unauthorized"),
        ("/webhooks/yclients/nowhere?token=x", {}, b"{}", 404, "unknown_tenant"),
        (URL, {}, b"{not json", 400, "malformed_json"),
        (URL, {}, json.dumps({"resource": "record", "status": "create", "company_id": 512345,
                              "data": {"id": 1, "client": None}}).encode(), 422, "invalid_payload"),
        (URL, {}, b"[1, 2]", 422, "invalid_payload"),
        (URL, {}, b'{"pad": "' + b"x" * 70_000 + b'"}', 413, "body_too_large"),
    ],
)
def test_bad_input_gets_a_clear_answer_and_is_kept(client, runtime, url, headers, body, status, error):
    response = client.post(url, data=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status
    answer = response.get_json()
    assert answer["error"] == error and answer["message"]
    from sqlalchemy import select

    from connector.store.models import InboundEvent
    from connector.usecases.refusals import KEEP_BYTES, UNAUTHENTICATED

    with runtime.sessions() as session:
        stored = session.scalars(select(InboundEvent)).one()
        assert stored.outcome == "rejected" and error in stored.error and stored.reason == error
    if error in UNAUTHENTICATED:
        # Nobody vouched for it: the first few kB are evidence enough, and a stranger gets no id back.
        assert "inbound_event_id" not in answer
        assert stored.body == body[:KEEP_BYTES].decode() and stored.body_truncated == (len(body) > KEEP_BYTES)
    else:
        assert answer["inbound_event_id"] == stored.id and stored.body == body.decode()


def test_missing_start_time_names_the_field(client, runtime):
    body = load("record_create")
    del body["data"]["datetime"], body["data"]["date"]
    answer = client.post(URL, json=body).get_json()
    assert answer["error"] == "invalid_payload" and "datetime" in answer["message"]


def test_token_in_header_is_accepted(client, runtime):
    body = load("record_create")
    at_source_time(runtime, body)
    event = deliver(client, runtime, "/webhooks/yclients/demo", json=body, headers={"X-Connector-Token": DEMO_TOKEN})
    assert event["outcome"] == "applied"


def test_api_requires_the_bearer_token(client):
    assert client.get("/api/v1/demo/bookings/yclients/1").status_code == 401
    assert client.get("/api/v1/demo/bookings/yclients/1", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/demo/bookings/yclients/1", headers=AUTH).status_code == 404


def test_database_down_answers_503_never_200():
    from connector.web import create_app
    from tests.conftest import make_runtime

    runtime = make_runtime("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    client = create_app(runtime).test_client()
    response = client.post(URL, json=load("record_create"))
    assert response.status_code == 503
    assert response.get_json()["error"] == "database_unavailable"
    bad = client.post(URL, data=b"{oops", headers={"Content-Type": "application/json"})
    assert bad.status_code == 503
    assert client.get("/healthz").status_code == 503


def test_simultaneous_repeats_of_a_new_booking_apply_once(client, runtime):
    """YCLIENTS fires its repeats within moments of each other: each is stored, and the intake applies one.

    On PostgreSQL every sender's moment also runs a worker's intake, so several race to insert the booking; a
    pass that finds the booking another's leaves its event pending for the next pass (the final drain). On
    SQLite one worker runs (connector.entrypoints.worker.hold_sqlite_lock): the posts race, one intake follows.
    """
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    body = load("record_create")
    at_source_time(runtime, body)
    app = client.application
    barrier = Barrier(6)
    racing_workers = runtime.engine.dialect.name == "postgresql"

    def send(_) -> int:
        with app.test_client() as own:
            barrier.wait()
            event_id = accept(own, URL, json=body)
            if racing_workers:
                drain(runtime)
            return event_id

    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(send, range(6)))
    drain(runtime)  # the next tick takes what a racing pass left to another
    events = [event_of(client, URL, event_id) for event_id in ids]
    assert sorted(event["outcome"] for event in events) == ["applied"] + ["duplicate"] * 5
    view = booking(client)
    assert {event["booking_id"] for event in events} == {view["id"]}
    assert len(view["jobs"]) == 3
    assert [event["what"] for event in view["events"]].count("booking.created") == 1
