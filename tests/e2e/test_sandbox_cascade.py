"""End to end with the embedded default: ten bookings, one per last digit, through the real processes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.conftest import DEMO_TOKEN
from tests.fixtures import sample

pytestmark = pytest.mark.e2e

EXPECTED = {
    0: ("delivered", ["max"]),
    1: ("read", ["max"]),
    2: ("delivered", ["max", "telegram"]),
    3: ("delivered", ["max", "telegram", "whatsapp"]),
    4: ("delivered", ["max", "telegram", "whatsapp"]),
    5: ("delivered", ["max", "telegram", "whatsapp", "sms"]),
    6: ("delivered", ["max", "telegram", "whatsapp", "sms"]),
    7: ("failed", ["max", "telegram", "whatsapp", "sms"]),
    8: ("delivered", ["max"]),
    9: ("delivered", ["max", "telegram"]),
}
FINAL = {"delivered", "read", "unconfirmed", "failed"}


def test_every_last_digit_ends_as_the_table_says(service):
    visit = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    template = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    for digit in EXPECTED:
        body = json.loads(json.dumps(template))
        body["resource_id"] = body["data"]["id"] = 7000 + digit
        body["data"]["client"]["phone"] = f"+7 916 123-45-6{digit}"
        body["data"]["datetime"] = visit.isoformat()
        body["data"]["last_change_date"] = datetime.now(UTC).isoformat()
        response = requests.post(f"{service.base_url}/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body,
                                 timeout=10)
        service.applied("demo", response)

    # Digit 9's late receipt arrives 1.5 step lengths after MAX's send: wait for it too.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        jobs = {digit: _confirmation(service, 7000 + digit) for digit in EXPECTED}
        late = jobs[9]["attempts"][0]["status"] if jobs[9]["attempts"] else None
        if all(job["status"] in FINAL for job in jobs.values()) and late == "delivered":
            break
        time.sleep(0.5)
    for digit, (status, channels) in EXPECTED.items():
        job = jobs[digit]
        assert (digit, job["status"]) == (digit, status), service.tail()
        assert [a["channel"] for a in job["attempts"]] == channels, digit
    assert jobs[9]["attempts"][0]["status"] == "delivered"  # recorded on MAX's attempt, after the fallback
    assert jobs[3]["attempts"][0]["status"] == "expired"  # MAX stayed "sent" past its step
    logs = "".join(f.read_text() for f in service.logs.iterdir())
    assert DEMO_TOKEN not in logs and "916123456" not in logs and "Смирнов" not in logs


def _confirmation(service, record_id: int) -> dict:
    view = service.api(f"/api/v1/demo/bookings/yclients/{record_id}")
    return next(job for job in view["jobs"] if job["kind"] == "confirmation")


def test_the_demo_command_shows_every_path(service):
    import subprocess
    import sys

    from tests.e2e.conftest import ROOT

    result = subprocess.run([sys.executable, "-m", "connector", "demo", "--url", service.base_url], cwd=ROOT,
                            env=service.env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().split("\n\n")[-1].splitlines()
    table = {int(line.split()[0]): line.split()[1] for line in last if line.strip()[:1].isdigit()}
    assert table == {0: "delivered", 1: "read", 2: "delivered", 3: "delivered", 4: "delivered", 5: "delivered",
                     6: "delivered", 7: "failed", 8: "delivered", 9: "delivered"}
