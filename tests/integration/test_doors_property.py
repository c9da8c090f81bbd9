"""Property: whatever reaches a door (any bytes, JSON with wrong types, surrogates, NULs, huge numbers, dates at
the calendar's edge; any headers), the answer is never a 5xx and the body is stored byte for byte (of bodies
nobody vouched for, the first few kB). Both webhook doors and the callback doors, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from connector.store.ledger import received_bytes
from connector.store.models import InboundEvent
from connector.tenants import demo_tenant
from connector.usecases.refusals import KEEP_BYTES, UNAUTHENTICATED
from connector.web import create_app
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.fixtures import sample

# Per webhook door and database (callback doors get half): each example is about three commits, so 80 keep
# the suite within a couple of minutes; DOOR_EXAMPLES=300 for a deeper run before a release.
EXAMPLES = int(os.environ.get("DOOR_EXAMPLES", "80"))
NOW = datetime(2026, 11, 29, 17, 15, 40, tzinfo=UTC)
SECRET = "cb-secret-0123456789"
TENANT = replace(demo_tenant(DEMO_TOKEN), providers={
    **demo_tenant(DEMO_TOKEN).providers,
    "smsru": {"api_id": "k", "callback_secret": SECRET},
    "smsc": {"login": "l", "password": "p", "callback_secret": SECRET},
    "wahelp": {"login": "l", "password": "p", "project_id": 1, "callback_secret": SECRET},
    "max_bot": {"token": "t", "webhook_secret": SECRET},
    "telegram_bot": {"token": "t", "webhook_secret": SECRET},
})

# (door, its URL, headers that prove who is calling)
DOORS = [
    ("yclients", f"/webhooks/yclients/demo?token={DEMO_TOKEN}", {}),
    ("yclients, no token", "/webhooks/yclients/demo", {}),
    ("generic", "/webhooks/generic/demo", {"X-Connector-Token": DEMO_TOKEN}),
    ("generic, wrong token", "/webhooks/generic/demo", {"X-Connector-Token": "nope"}),
    ("sandbox", "/callbacks/sandbox/demo", {}),
    ("smsru", f"/callbacks/smsru/demo?secret={SECRET}", {}),
    ("smsc", f"/callbacks/smsc/demo?secret={SECRET}", {}),
    ("wahelp", f"/callbacks/wahelp/demo?secret={SECRET}", {}),
    ("wahelp, wrong secret", "/callbacks/wahelp/demo?secret=nope", {}),
    ("max_bot", "/callbacks/max_bot/demo", {"X-Max-Bot-Api-Secret": SECRET}),
    ("telegram_bot", "/callbacks/telegram_bot/demo", {"X-Telegram-Bot-Api-Secret-Token": SECRET}),
    ("telegram_bot, no secret", "/callbacks/telegram_bot/demo", {}),
]

ODD_TEXTS = ["\ud800", "\udfff", "a\x00b", "\x00", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
             "2026-12-03T10:00:00+03:00", "Europe/" + "x" * 300, "Europe/Moscow", "delete", "create", "record",
             "+79161234567", "delivered", "Ф" * 300, "9" * 200, "", " ", "NaN"]
KEYS = ["resource", "status", "data", "id", "resource_id", "company_id", "datetime", "date", "client", "phone",
        "name", "surname", "staff", "services", "seance_length", "last_change_date", "deleted", "attendance",
        "event", "booking", "start", "timezone", "updated_at", "patient", "message", "update_id", "callback",
        "user", "chat", "text", "payload", "sms_id", "status_id", "data[0]", "timestamp", "update_type"]
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.just(10 ** 4000), st.just(10 ** 20), st.floats(), st.text(max_size=30), st.sampled_from(ODD_TEXTS),
)
json_values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=25)


def _sample(*parts: str) -> dict:
    return json.loads(sample(*parts).read_text(encoding="utf-8"))


SAMPLES = [_sample("yclients", "record_create.json"), _sample("yclients", "record_delete.json"),
           _sample("generic", "booking_created.json")]


@st.composite
def mutated_samples(draw) -> object:
    """A real payload with one value somewhere replaced: reaches deep into the parsers."""
    body = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    node = body
    while isinstance(node, dict) and node:
        key = draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict) or draw(st.booleans()):
            node[key] = draw(json_values)
            break
        node = node[key]
    return body


def encoded(value: object, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")


bodies = st.one_of(
    st.binary(max_size=600),
    st.builds(encoded, json_values, st.booleans()),
    st.builds(encoded, mutated_samples(), st.booleans()),
    st.sampled_from([b"[" * 5000 + b"]" * 5000, b"1" * 5000, b'"\\ud800"', b'{"a": "\\u0000"}', b"\x00" * 10,
                     "{}".encode("utf-16"), b"\xff\xfe{", b'{"id": 1e999}']),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40) | st.sampled_from(
    ["9" * 400, "1" * 5000, "-1", "１２３", "application/json", "text/plain; charset=utf-16", ""])
headers = st.dictionaries(
    st.sampled_from(["Content-Type", "X-Connector-Token", "webhook-id", "webhook-timestamp", "webhook-signature",
                     "User-Agent", "X-Hook-Id", "X-Forwarded-For", "Content-Encoding"]),
    header_text, max_size=4)


@pytest.fixture
def door_client(database_url):
    runtime = make_runtime(database_url, [TENANT])
    runtime.clock = lambda: NOW
    yield runtime, create_app(runtime).test_client()
    runtime.engine.dispose()


@pytest.mark.parametrize(("door", "url", "proof"), DOORS, ids=[door[0] for door in DOORS])
def test_any_body_gets_a_2xx_or_4xx_and_is_kept(door_client, door, url, proof):
    runtime, client = door_client
    examples = EXAMPLES if url.startswith("/webhooks") else max(EXAMPLES // 2, 1)

    @settings(max_examples=examples, deadline=None, suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(body=bodies, extra=headers)
    def check(body: bytes, extra: dict[str, str]) -> None:
        with runtime.sessions() as session:
            before = session.scalar(select(func.count()).select_from(InboundEvent))
        response = client.post(url, data=body, headers={**extra, **proof})
        assert response.status_code < 500, (response.status_code, response.get_data(as_text=True))
        with runtime.sessions() as session:
            assert session.scalar(select(func.count()).select_from(InboundEvent)) == before + 1
            event = session.scalars(select(InboundEvent).order_by(InboundEvent.id.desc()).limit(1)).one()
        if event.reason in UNAUTHENTICATED:
            assert received_bytes(event) == body[:KEEP_BYTES]
            assert event.body_truncated == (len(body) > KEEP_BYTES)
        else:
            assert received_bytes(event) == body

    check()
