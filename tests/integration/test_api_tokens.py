"""The JSON API's per-tenant tokens and their scopes, through the Flask client on SQLite and PostgreSQL; the old
CONNECTOR_API_TOKEN still opens every tenant, and /metrics takes only it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from connector.tenants import ApiToken, demo_tenant
from connector.web import create_app
from tests.conftest import API_TOKEN, DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.intake import deliver

OTHER_TOKEN = "other-token-0123456789abcdef"
READ = "demo-read-token-0123456789"
READ_NEXT = "demo-read-token-rotated-0123"  # the rotation's new token, beside the old one
SEND = "demo-send-token-0123456789"
ADMIN = "demo-admin-token-0123456789"
THEIRS = "other-admin-token-0123456789"
PHONE = "79161234560"  # the sample's patient


@pytest.fixture
def client(database_url):
    demo = replace(demo_tenant(DEMO_TOKEN), api_tokens=(
        ApiToken("crm", READ, frozenset({"read"})), ApiToken("crm-2026", READ_NEXT, frozenset({"read"})),
        ApiToken("bot", SEND, frozenset({"send"})), ApiToken("ops", ADMIN, frozenset({"admin"}))))
    other = replace(demo_tenant(OTHER_TOKEN), id="other", api_tokens=(ApiToken("ops", THEIRS, frozenset({"admin"})),))
    runtime = make_runtime(database_url, [demo, other])
    client = create_app(runtime).test_client()
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    deliver(client, runtime, f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body)
    yield client
    runtime.engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read(client, token: str, tenant: str = "demo"):
    return client.get(f"/api/v1/{tenant}/inbound-events", headers=bearer(token))


def opt_out(client, token: str, tenant: str = "demo"):
    return client.put(f"/api/v1/{tenant}/patients/{PHONE}/opt-outs", headers=bearer(token),
                      json={"channels": ["sms"]})


def test_each_of_a_tenants_read_tokens_reads_so_one_can_be_rotated(client):
    for token in (READ, READ_NEXT, SEND, ADMIN, API_TOKEN):
        answer = read(client, token)
        assert answer.status_code == 200, token
        assert len(answer.get_json()["events"]) == 1


def test_changing_needs_send_or_admin(client):
    for token in (READ, READ_NEXT):
        refused = opt_out(client, token)
        assert refused.status_code == 403
        assert "'read'" not in refused.get_json()["message"] and "send" in refused.get_json()["message"]
    for token in (SEND, ADMIN, API_TOKEN):
        answer = opt_out(client, token)
        assert answer.status_code == 200, (token, answer.get_json())
        assert answer.get_json()["opted_out"] == ["sms"]


def test_a_token_of_one_tenant_finds_nothing_at_another(client):
    # 404, as for a tenant that does not exist: a token does not tell which other clinics are kept here
    unknown = read(client, THEIRS, tenant="nowhere")
    for answer in (read(client, THEIRS), opt_out(client, THEIRS), read(client, ADMIN, tenant="other"), unknown):
        assert answer.status_code == 404
    assert read(client, THEIRS).get_json()["message"] == "no tenant 'demo' is configured"
    assert read(client, THEIRS, tenant="other").status_code == 200
    assert read(client, API_TOKEN, tenant="other").status_code == 200  # the old token opens every tenant


def test_a_wrong_or_missing_token_is_401(client):
    for headers in ({}, bearer("no-such-token-0123456789"), {"Authorization": f"Basic {READ}"},
                    {"Authorization": "Bearer "}, bearer(READ[:-1])):
        answer = client.get("/api/v1/demo/inbound-events", headers=headers)
        assert answer.status_code == 401, headers


def test_metrics_and_health_details_take_only_the_global_token(client):
    assert client.get("/metrics", headers=bearer(API_TOKEN)).status_code == 200
    for token in (ADMIN, READ):
        assert client.get("/metrics", headers=bearer(token)).status_code == 401
    assert "tenants" in client.get("/healthz", headers=bearer(API_TOKEN)).get_json()
    assert "tenants" not in client.get("/healthz", headers=bearer(ADMIN)).get_json()  # the public answer only
