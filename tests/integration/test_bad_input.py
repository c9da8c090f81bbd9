"""Bad input through the doors: a clear 4xx naming the field, the body kept byte for byte, never a 5xx.

Each case reproduces a class of body that once came out as 500 or 503 and was lost (SQLite and PostgreSQL). A
body that passes the door is answered `accepted` and stored pending; the worker's intake then applies it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from connector.store.ledger import received_bytes
from connector.store.models import Booking, InboundEvent
from connector.usecases.intake import drain
from tests.conftest import API_TOKEN, DEMO_TOKEN
from tests.fixtures import sample
from tests.intake import deliver

URL = f"/webhooks/yclients/demo?token={DEMO_TOKEN}"
GENERIC = "/webhooks/generic/demo"
TOKEN = {"X-Connector-Token": DEMO_TOKEN, "Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NOW = datetime(2026, 11, 29, 17, 15, 40, tzinfo=UTC)


def yclients(**data_changes) -> dict:
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["data"].update(data_changes)
    return body


def generic(**booking_changes) -> dict:
    body = json.loads(sample("generic", "booking_created.json").read_text(encoding="utf-8"))
    body["booking"].update(booking_changes)
    return body


def stored(runtime, event_id: int | None = None) -> InboundEvent:
    with runtime.sessions() as session:
        query = select(InboundEvent).order_by(InboundEvent.id.desc()).limit(1)
        if event_id is not None:
            query = select(InboundEvent).where(InboundEvent.id == event_id)
        return session.scalars(query).one()


def raw(body) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


def big_client(**client) -> dict:
    body = yclients()
    body["data"]["client"].update(client)
    return body


# (what, door, body bytes, status, field)
CASES = [
    ("status of the wrong type", URL, raw({**yclients(), "status": [1]}), 422, "status"),
    ("resource an object", URL, raw({**yclients(), "resource": {"a": 1}}), 422, "resource"),
    ("client a string", URL, raw(yclients(client="Иван")), 422, "client"),
    ("staff a list", URL, raw(yclients(staff=[1, 2])), 422, "staff"),
    ("company_id an object", URL, raw({**yclients(), "company_id": {"x": 1}}), 200, None),
    ("a lone surrogate in a name", URL, raw(big_client(name="\ud800")).replace(b"\xed\xa0\x80", b"\\ud800"),
     200, None),
    ("a lone surrogate in the id", URL, raw(yclients(id="12\ud800")).replace(b"\xed\xa0\x80", b"\\ud800"),
     422, "id"),
    ("nesting 1000 deep", URL, b"[" * 1000 + b"]" * 1000, 400, None),
    ("nesting 30000 deep", URL, b"[" * 30000 + b"]" * 30000, 400, None),
    ("an integer of 5000 digits", URL, b'{"resource": "record", "status": "create", "data": ' + b"1" * 5000 + b"}",
     400, None),
    ("seance_length of 10^20", URL, raw(yclients(seance_length=10**20)), 422, "seance_length"),
    ("the calendar's last moment", URL, raw(yclients(datetime="9999-12-31T23:59:59-12:00")), 422, "datetime"),
    ("the calendar's first moment", URL, raw(yclients(datetime="0001-01-01T00:00:00+14:00")), 422, "datetime"),
    ("a change time at the edge", URL, raw(yclients(last_change_date="0001-01-01T00:00:00+14:00")), 422,
     "last_change_date"),
    ("a NUL in a kept string", URL, raw(yclients(comment="a\u0000b")), 200, None),
    ("a raw NUL byte", URL, b'{"resource": "record",\x00 "status": "create"}', 400, None),
    # JSON read as UTF-16 is still JSON (json.loads detects it); its NUL bytes once broke PostgreSQL.
    ("a UTF-16 body", URL, raw(yclients()).decode().encode("utf-16"), 200, None),
    ("a surname over 120 characters", URL, raw(big_client(surname="Ф" * 300)), 200, None),
    ("a record id over 128 characters", URL, raw(yclients(id="9" * 200)), 422, "id"),
    ("a doctor's name over 200", URL, raw(yclients(staff={"name": "Д" * 500})), 200, None),
    ("generic: a time zone of 300 characters", GENERIC, raw(generic(timezone="Europe/" + "x" * 293)), 422,
     "timezone"),
    ("generic: a zone with a NUL", GENERIC, raw(generic(timezone="Europe/Mos\u0000cow")), 422, "timezone"),
    ("generic: start at the calendar's edge", GENERIC, raw(generic(start="9999-12-31T23:59:59-12:00")), 422,
     "starts_at"),
    ("generic: the action a list", GENERIC, raw({**generic(), "event": ["booking.created"]}), 422, "action"),
    ("generic: the id an object", GENERIC, raw(generic(id={"a": 1})), 422, "external_id"),
    ("generic: an id over 128", GENERIC, raw(generic(id="B" * 129)), 422, "external_id"),
    ("generic: NaN minutes", GENERIC, raw(generic()).replace(b'"id": "B-1001"', b'"id": "B-1001", "d": NaN'),
     200, None),
]


@pytest.mark.parametrize(("what", "url", "body", "status", "field"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_gets_a_4xx_and_is_kept_byte_for_byte(client, runtime, what, url, body, status, field):
    runtime.clock = lambda: NOW
    headers = TOKEN if url == GENERIC else {"Content-Type": "application/json"}
    response = client.post(url, data=body, headers=headers)
    answer = response.get_json()
    assert response.status_code == status, answer
    if field is not None:
        assert answer["field"] == field, answer
    if status < 400:
        assert answer["outcome"] == "accepted", answer
        assert stored(runtime, answer["inbound_event_id"]).outcome == "pending"
        drain(runtime)
    event = stored(runtime, answer["inbound_event_id"])
    assert received_bytes(event) == body
    assert event.outcome == ("rejected" if status >= 400 else "applied"), event.error


def test_free_texts_too_long_for_their_columns_are_cut_and_kept_readable(client, runtime):
    runtime.clock = lambda: NOW
    event = deliver(client, runtime, URL, data=raw(big_client(surname="Ф" * 300, name="И\u0000ван")),
                    headers={"Content-Type": "application/json"})
    assert event["outcome"] == "applied", event["error"]
    with runtime.sessions() as session:
        from connector.store.models import Patient

        patient = session.scalars(select(Patient)).one()
    assert patient.last_name == "Ф" * 120 and patient.first_name == "И\ufffdван"


def test_a_delete_of_a_record_we_never_held_is_kept_cancelled(client, runtime):
    """A real clinic's cancellation: the record was made before we listened, its delete carries the client."""
    runtime.clock = lambda: NOW
    delete = json.loads(sample("yclients", "record_delete.json").read_text(encoding="utf-8"))
    event = deliver(client, runtime, URL, json=delete)
    assert event["outcome"] == "applied", event["error"]
    view = client.get("/api/v1/demo/bookings/yclients/987654321", headers=AUTH).get_json()
    assert view["state"] == "cancelled" and view["patient"]["phone"] == "+7 916 ***-**-60"
    assert event["booking_id"] == view["id"]
    # The late create finds it cancelled: no reminders for a visit that was called off.
    late = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    assert deliver(client, runtime, URL, json=late)["outcome"] == "stale"
    with runtime.sessions() as session:
        assert session.scalars(select(Booking.state)).all() == ["cancelled"]


@pytest.mark.parametrize("timestamp", ["9" * 400, "1" * 5000, "１２３", "-1", "1e9", ""])
def test_an_odd_webhook_timestamp_is_a_401_naming_the_header(database_url, timestamp):
    from dataclasses import replace

    from connector.tenants import demo_tenant
    from connector.web import create_app
    from tests.conftest import make_runtime

    rt = make_runtime(database_url, [replace(demo_tenant(DEMO_TOKEN), webhook_secret="whsec_c2VjcmV0")])
    rt.clock = lambda: NOW
    try:
        response = create_app(rt).test_client().post(GENERIC, data=b"{}", headers={
            "webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,AAAA"})
        assert response.status_code == 401
        assert "webhook-timestamp" in response.get_json()["message"] or not timestamp
        assert "inbound_event_id" not in response.get_json()
    finally:
        rt.engine.dispose()


@pytest.mark.parametrize("limit", ["abc", "1e3", "", "-1", "0", "9" * 400])
def test_an_odd_limit_is_a_400_naming_it(client, limit):
    response = client.get(f"/api/v1/demo/inbound-events?limit={limit}", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["field"] == "limit"


def test_a_good_limit_still_works(client, runtime):
    runtime.clock = lambda: NOW
    for _ in range(3):
        client.post(URL, data=b"{oops", headers={"Content-Type": "application/json"})
    events = client.get("/api/v1/demo/inbound-events?limit=2", headers=AUTH).get_json()["events"]
    assert len(events) == 2 and events[0]["body"] == "{oops"
