"""End to end with real adapters: a tenant whose cascade is Wahelp (MAX, Telegram, WhatsApp) then SMS.ru,
a booking from the generic JSON door, walked to `delivered` through two local fake services."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.conftest import start_service, stop
from tests.e2e.fakes import FakeSmsRu, FakeWahelp
from tests.fixtures import sample

pytestmark = pytest.mark.e2e

UUIDS = {"max": "c-max", "telegram": "c-tg", "whatsapp": "c-wa"}
TENANTS = """
tenants:
  - id: clinic
    name: Клиника «Здоровье»
    timezone: Europe/Moscow
    address: ул. Лесная, д. 5
    webhook_token: ${{CLINIC_TOKEN}}
    quiet_hours: null
    cascade:
      - {{channel: max, provider: wahelp, timeout: PT3S}}
      - {{channel: telegram, provider: wahelp, timeout: PT3S}}
      - {{channel: whatsapp, provider: wahelp, timeout: PT30S}}
      - {{channel: sms, provider: smsru, timeout: PT1M}}
    providers:
      wahelp:
        base_url: {wahelp}/api
        login: ${{WAHELP_LOGIN}}
        password: ${{WAHELP_PASSWORD}}
        project_id: "77"
        channels: {{max: c-max, telegram: c-tg, whatsapp: c-wa}}
        callback_secret: ${{WAHELP_CALLBACK_SECRET}}
      smsru:
        base_url: {smsru}
        api_id: ${{SMSRU_API_ID}}
        sender: Zdorovie
        callback_secret: ${{SMSRU_CALLBACK_SECRET}}
    sources:
      generic: {{mapping: generic}}
"""
ENV = {"CLINIC_TOKEN": "clinic-token-0123456789", "WAHELP_LOGIN": "clinic@example.ru", "WAHELP_PASSWORD": "pw",
       "WAHELP_CALLBACK_SECRET": "wh-secret-0123", "SMSRU_API_ID": "api-0123", "SMSRU_CALLBACK_SECRET": "sms-0123"}


def test_wahelp_then_smsru_walks_a_booking_to_delivered(tmp_path):
    wahelp = FakeWahelp("77", UUIDS, ENV["WAHELP_CALLBACK_SECRET"])
    smsru = FakeSmsRu(ENV["SMSRU_API_ID"], ENV["SMSRU_CALLBACK_SECRET"])
    config = tmp_path / "tenants.yaml"
    config.write_text(TENANTS.format(wahelp=wahelp.url, smsru=smsru.url), encoding="utf-8")
    service, processes = start_service(tmp_path, {"CONNECTOR_CONFIG": str(config), **ENV})
    try:
        wahelp.callback_url = f"{service.base_url}/callbacks/wahelp/clinic"
        smsru.callback_url = f"{service.base_url}/callbacks/smsru/clinic"
        body = json.loads(sample("generic", "booking_created.json").read_text(encoding="utf-8"))
        body["booking"]["start"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()
        body["booking"]["updated_at"] = datetime.now(UTC).isoformat()
        response = requests.post(f"{service.base_url}/webhooks/generic/clinic",
                                 headers={"X-Connector-Token": ENV["CLINIC_TOKEN"]}, json=body, timeout=10)
        service.applied("clinic", response)

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = service.api("/api/v1/clinic/bookings/generic/B-1001")
            job = next(j for j in view["jobs"] if j["kind"] == "confirmation")
            if job["status"] in ("delivered", "unconfirmed", "failed"):
                break
            time.sleep(0.5)
        assert job["status"] == "delivered", service.tail()
        assert [(a["channel"], a["provider"], a["status"]) for a in job["attempts"]] == [
            ("max", "wahelp", "not_registered"),
            ("telegram", "wahelp", "expired"),  # accepted, never delivered: the step timed out
            ("whatsapp", "wahelp", "failed"),  # Wahelp's status webhook said failed
            ("sms", "smsru", "delivered"),  # SMS.ru's callback said 103
        ]
        [sms] = smsru.sent
        assert sms["from"] == "Zdorovie" and sms["to"] == "79161234566"
        assert "Уважаемый Иван Петрович" in sms["msg"]
        assert wahelp.logins == 1  # the token is kept and reused
        logs = "".join(f.read_text() for f in service.logs.iterdir())
        assert "79161234566" not in logs and "Смирнов" not in logs
    finally:
        stop(processes)
        wahelp.close()
        smsru.close()
