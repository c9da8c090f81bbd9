"""Property: whatever reaches a door (any bytes, JSON with wrong types, surrogates, NULs, huge numbers, dates at
the calendar's edge; any headers), the answer is never a 5xx and the body is stored byte for byte (of bodies
nobody vouched for, the first few kB). Every webhook door (the CRMs' form doors too, with bracket forms built and
mutated from their samples) and the callback doors, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode

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
}, sources={**demo_tenant(DEMO_TOKEN).sources,
            "amocrm": {"subdomain": "clinic", "token": "long-lived-token"},
            "bitrix24": {"webhook_url": "https://clinic.bitrix24.ru/rest/1/c0de",
                         "application_token": "app-token-from-the-handler-settings"}})

# (door, its URL, headers that prove who is calling)
DOORS = [
    ("yclients", f"/webhooks/yclients/demo?token={DEMO_TOKEN}", {}),
    ("yclients, no token", "/webhooks/yclients/demo", {}),
    ("generic", "/webhooks/generic/demo", {"X-Connector-Token": DEMO_TOKEN}),
    ("generic, wrong token", "/webhooks/generic/demo", {"X-Connector-Token": "nope"}),
    ("amocrm", f"/webhooks/amocrm/demo?token={DEMO_TOKEN}", {}),
    ("amocrm, no token", "/webhooks/amocrm/demo", {}),
    ("bitrix24", "/webhooks/bitrix24/demo", {}),
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
FORM_SAMPLES = [parse_qsl(sample(*parts).read_text(encoding="utf-8").strip(), keep_blank_values=True)
                for parts in (("amocrm", "lead_status_webhook.txt"), ("bitrix24", "deal_update_webhook.txt"))]
FORM_KEYS = ["leads[status][0][id]", "leads[add][1][id]", "leads[delete][0][id]", "leads[update][0]",
             "leads[status][0][id][x]", "leads[]", "leads", "contacts[update][0][id]", "account[subdomain]",
             "account[_links][self]", "event", "data[FIELDS][ID]", "data[ID]", "auth[application_token]",
             "auth[domain]", "a" + "[b]" * 40, "leads[status][99999999999][id]", "[", "]", "a[b]c[d]"]
form_values = st.sampled_from(ODD_TEXTS + ["24681357", "clinic", "ONCRMDEALUPDATE", "ONCRMDEALDELETE",
                                           "ONBOOKINGADD", "app-token-from-the-handler-settings", "-1", "0"]) | st.text(
    max_size=20)


@st.composite
def mutated_forms(draw) -> bytes:
    """A CRM's real webhook with values replaced, keys added or dropped: reaches into the hints' readers."""
    pairs = list(draw(st.sampled_from(FORM_SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 2))
        if choice == 0 and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(form_values))
        elif choice == 1:
            pairs.append((draw(st.sampled_from(FORM_KEYS)), draw(form_values)))
        elif pairs:
            pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()


bodies = st.one_of(bodies, mutated_forms(), st.builds(
    lambda pairs: urlencode(pairs, errors="surrogatepass").encode(),
    st.lists(st.tuples(st.sampled_from(FORM_KEYS), form_values), max_size=8)))
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
            before_id = session.scalar(select(func.coalesce(func.max(InboundEvent.id), 0)))
        response = client.post(url, data=body, headers={**extra, **proof})
        assert response.status_code < 500, (response.status_code, response.get_data(as_text=True))
        with runtime.sessions() as session:
            stored = session.scalars(select(InboundEvent).where(InboundEvent.id > before_id)).all()
        # One event per body; a CRM's batched webhook, one per entity it names, each with the whole body.
        answer = response.get_json(silent=True) or {}
        assert len(stored) == len(answer.get("inbound_event_ids") or [None]), answer
        for event in stored:
            if event.reason in UNAUTHENTICATED:
                assert received_bytes(event) == body[:KEEP_BYTES]
                assert event.body_truncated == (len(body) > KEEP_BYTES)
            else:
                assert received_bytes(event) == body

    check()
