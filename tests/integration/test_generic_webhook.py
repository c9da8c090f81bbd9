"""The generic JSON door: a mapping file, the tenant's token, or a Standard Webhooks signature; what it accepts,
the worker's intake applies (tests.intake.deliver)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connector.sources.signatures import sign_standard
from connector.tenants import demo_tenant
from connector.usecases.intake import drain
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample as sample_path
from tests.intake import accept, deliver, event_of

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SECRET = "whsec_" + base64.b64encode(b"a-very-secret-key-of-32-bytes!!!").decode()
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def sample() -> dict:
    return json.loads(sample_path("generic", "booking_created.json").read_text(encoding="utf-8"))


URL = "/webhooks/generic/demo"
TOKEN = {"X-Connector-Token": DEMO_TOKEN}


@pytest.fixture
def signed_runtime(database_url):
    runtime = make_runtime(database_url, [replace(demo_tenant(DEMO_TOKEN), webhook_secret=SECRET)])
    runtime.clock = lambda: NOW
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def signed_client(signed_runtime):
    return create_app(signed_runtime).test_client()


def signed_headers(body: bytes, msg_id: str = "msg_2Kx1", at: float | None = None) -> dict[str, str]:
    timestamp = int(at if at is not None else NOW.timestamp())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_standard(SECRET, msg_id, timestamp, body), "Content-Type": "application/json"}


def test_the_sample_maps_to_a_booking(client, runtime):
    runtime.clock = lambda: NOW
    event = deliver(client, runtime, URL, json=sample(), headers=TOKEN)
    assert event["outcome"] == "applied", event["error"]
    view = client.get("/api/v1/demo/bookings/generic/B-1001", headers=AUTH).get_json()
    assert event["booking_id"] == view["id"] and event["external_id"] == "B-1001"
    assert view["starts_at"] == "2026-12-03T10:00:00+03:00"
    assert view["doctor"] == "Иванов Сергей Петрович" and view["patient"]["phone"] == "+7 916 ***-**-66"
    assert sorted(job["kind"] for job in view["jobs"]) == ["confirmation", "reminder", "reminder"]


def test_cancellation_event(client, runtime):
    runtime.clock = lambda: NOW
    deliver(client, runtime, URL, json=sample(), headers=TOKEN)
    cancelled = sample()
    cancelled["event"] = "booking.cancelled"
    cancelled["booking"]["updated_at"] = "2026-11-27T12:30:00+03:00"
    assert deliver(client, runtime, URL, json=cancelled, headers=TOKEN)["outcome"] == "applied"
    view = client.get("/api/v1/demo/bookings/generic/B-1001", headers=AUTH).get_json()
    assert view["state"] == "cancelled"
    assert [job["status"] for job in view["jobs"] if job["kind"] == "cancellation"] == ["scheduled"]


def test_missing_start_names_the_field(client, runtime):
    body = sample()
    del body["booking"]["start"]
    response = client.post("/webhooks/generic/demo", json=body, headers={"X-Connector-Token": DEMO_TOKEN})
    assert response.status_code == 422
    assert response.get_json()["field"] == "starts_at"


def test_a_signed_delivery_is_accepted(signed_client, signed_runtime):
    body = json.dumps(sample()).encode()
    assert deliver(signed_client, signed_runtime, URL, data=body, headers=signed_headers(body))["outcome"] == "applied"


def test_the_same_webhook_id_again_is_a_duplicate(signed_client, signed_runtime):
    first = json.dumps(sample()).encode()
    event = deliver(signed_client, signed_runtime, URL, data=first, headers=signed_headers(first))
    assert event["outcome"] == "applied"
    changed = sample()
    changed["doctor"]["name"] = "Петрова Анна Сергеевна"
    again = json.dumps(changed).encode()  # a retry of the same message id is the same message
    event = deliver(signed_client, signed_runtime, URL, data=again, headers=signed_headers(again))
    assert event["outcome"] == "duplicate"
    view = signed_client.get("/api/v1/demo/bookings/generic/B-1001", headers=AUTH).get_json()
    assert view["doctor"] == "Иванов Сергей Петрович"


def test_a_retry_waiting_beside_its_first_delivery_is_a_duplicate(signed_client, signed_runtime):
    """Both deliveries of one message id are pending when the intake runs: the first applies, the retry not."""
    first = json.dumps(sample()).encode()
    changed = sample()
    changed["doctor"]["name"] = "Петрова Анна Сергеевна"
    again = json.dumps(changed).encode()
    ids = [accept(signed_client, URL, data=body, headers=signed_headers(body)) for body in (first, again)]
    drain(signed_runtime)
    events = [event_of(signed_client, URL, event_id) for event_id in ids]
    assert [event["outcome"] for event in events] == ["applied", "duplicate"]
    view = signed_client.get("/api/v1/demo/bookings/generic/B-1001", headers=AUTH).get_json()
    assert view["doctor"] == "Иванов Сергей Петрович"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b), "does not match"),
        (lambda h, b: (h, b + b" "), "does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b), "missing Standard Webhooks"),
        (lambda h, b: (signed_headers(b, at=NOW.timestamp() - 3600), b), "too far"),
        (lambda h, b: ({"X-Connector-Token": DEMO_TOKEN, "Content-Type": "application/json"}, b), "missing"),
    ],
)
def test_a_bad_signature_is_refused_and_kept(signed_client, tamper, message):
    body = json.dumps(sample()).encode()
    headers, body = tamper(signed_headers(body), body)
    response = signed_client.post("/webhooks/generic/demo", data=body, headers=headers)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    events = signed_client.get("/api/v1/demo/inbound-events?outcome=rejected", headers=AUTH).get_json()["events"]
    assert len(events) == 1 and events[0]["body"] == body.decode()


def test_sign_and_verify_agree_with_the_standard_example():
    """The Standard Webhooks spec's own test vector."""
    from connector.sources.signatures import check_standard_signature

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    at = datetime.fromtimestamp(1614265330, UTC)
    assert check_standard_signature(secret, headers, body, at) == "msg_p5jXN8AQM9LWM0D4loKWxJek"


def test_a_branch_in_another_zone_keeps_its_own_quiet_hours(client, runtime):
    """The tenant is in Moscow; this booking says Yekaterinburg: 08:00 there is inside its quiet hours."""
    runtime.clock = lambda: NOW
    body = sample()
    body["booking"]["start"] = "2026-12-03T10:00:00"  # no offset: read in the booking's own zone
    body["booking"]["timezone"] = "Asia/Yekaterinburg"
    assert deliver(client, runtime, URL, json=body, headers=TOKEN)["outcome"] == "applied"
    view = client.get("/api/v1/demo/bookings/generic/B-1001", headers=AUTH).get_json()
    assert view["starts_at"] == "2026-12-03T10:00:00+05:00"
    dues = sorted(job["due_at"] for job in view["jobs"] if job["kind"] == "reminder")
    # 2 h before is 08:00 local, moved to 09:00 local (04:00Z); in Moscow's zone 03:00Z would be 06:00 there.
    assert dues == ["2026-12-02T05:00:00Z", "2026-12-03T04:00:00Z"]
