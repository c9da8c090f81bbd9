"""`python -m connector demo`: post one booking per last digit 0-9 to a running service and watch each
confirmation walk the sandbox cascade (the table in the README), until every one has settled."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from connector.config import INSTANCE

FINAL = {"delivered", "read", "unconfirmed", "failed", "expired", "cancelled", "skipped"}


def _secret(env: str, name: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    path = INSTANCE / name
    if not path.exists():
        sys.exit(f"set {env} or start the service once (make run) so that {path} exists")
    return Path(path).read_text().strip()


def sample_record(record_id: int, phone: str, visit: datetime, changed: datetime) -> dict:
    """A YCLIENTS record webhook as YCLIENTS sends it (trimmed to the fields we read)."""
    return {
        "company_id": 512345, "resource": "record", "resource_id": record_id, "status": "create",
        "data": {
            "id": record_id, "company_id": 512345, "datetime": visit.isoformat(), "seance_length": 1800,
            "create_date": changed.isoformat(), "last_change_date": changed.isoformat(), "attendance": 0,
            "deleted": False, "comment": "", "custom_fields": [],
            "staff": {"id": 2001, "name": "Иванов Сергей Петрович", "specialization": "Кардиолог"},
            "services": [{"id": 6137968, "title": "Приём кардиолога первичный", "cost": 3500}],
            "client": {"id": 86694283 + record_id, "name": "Иван", "surname": "Демонстрационный",
                       "patronymic": "Петрович", "sex": 1, "phone": phone},
        },
    }


def run(base_url: str, timeout: float = 180) -> int:
    token, api = _secret("CONNECTOR_DEMO_TOKEN", "demo_token"), _secret("CONNECTOR_API_TOKEN", "api_token")
    now = datetime.now(UTC)
    visit = (now + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    run_id = int(now.timestamp()) % 100_000 * 10
    for digit in range(10):
        # new numbers each run: "not in MAX" is remembered for a patient, and would shorten the paths
        body = sample_record(run_id + digit, f"+7916{run_id // 10 % 1_000_000:06d}{digit}", visit, now)
        answer = requests.post(f"{base_url}/webhooks/yclients/demo", params={"token": token}, json=body, timeout=10)
        answer.raise_for_status()
    print(f"posted 10 bookings ({run_id}..{run_id + 9}); watching their confirmations (Ctrl+C to stop)\n")
    deadline = time.monotonic() + timeout
    late_wait_until = float("inf")
    while True:
        rows = []
        for digit in range(10):
            view = requests.get(f"{base_url}/api/v1/demo/bookings/yclients/{run_id + digit}",
                                headers={"Authorization": f"Bearer {api}"}, timeout=10).json()
            job = next(j for j in view["jobs"] if j["kind"] == "confirmation")
            path = " → ".join(f"{a['channel']}:{a['status']}" for a in job["attempts"]) or "—"
            rows.append((digit, job["status"], path, job.get("next_try_at") or job["due_at"]))
        print("\n".join(f"  {d}  {status:<18} {path}" for d, status, path, _ in rows), flush=True)
        settled = all(status in FINAL for _, status, _, _ in rows)
        # Digit 9's MAX receipt comes only after its step timed out: wait for it, to show it recorded.
        late_pending = rows[9][2].startswith("max:expired") and late_wait_until > time.monotonic()
        if settled and late_wait_until == float("inf"):
            late_wait_until = time.monotonic() + 30
        if (settled and not late_pending) or time.monotonic() > deadline:
            waiting = [due for _, status, _, due in rows if status == "scheduled"]
            if waiting:
                print(f"\nsome confirmations wait until {min(waiting)} (quiet hours?); "
                      "CONNECTOR_DEMO_QUIET_HOURS=off shows the cascade at any hour")
            return 0
        print()
        time.sleep(3)
