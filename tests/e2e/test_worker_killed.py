"""A worker killed (SIGKILL) in the middle of a batch, on PostgreSQL with real processes and a slow SMS.ru stand-in:
only the calls that were in flight are unknown (and go by the next channel, never SMS twice); every attempt whose
call had not started is withdrawn and sent once by the next worker, as if nothing happened."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import truncate_all
from tests.e2e.conftest import ROOT, start_service, stop
from tests.e2e.fakes import FakeSmsRu
from tests.fixtures import sample

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

JOBS, CONCURRENCY, ANSWER_AFTER = 24, 4, 1.5
TENANTS = """
tenants:
  - id: clinic
    name: Клиника «Здоровье»
    timezone: Europe/Moscow
    webhook_token: ${{CLINIC_TOKEN}}
    quiet_hours: null
    cascade:
      - {{channel: sms, provider: smsru, timeout: PT1M}}
      - {{channel: max, provider: sandbox, timeout: PT1M}}
    providers:
      smsru:
        base_url: {smsru}
        api_id: ${{SMSRU_API_ID}}
        callback_secret: ${{SMSRU_CALLBACK_SECRET}}
        timeout: 10
      sandbox: {{delay: 0.5}}
    sources:
      generic: {{mapping: generic}}
"""
ENV = {"CLINIC_TOKEN": "clinic-token-0123456789", "SMSRU_API_ID": "api-0123", "SMSRU_CALLBACK_SECRET": "sms-0123",
       "WORKER_CONCURRENCY": str(CONCURRENCY)}


class SlowSmsRu(FakeSmsRu):
    """SMS.ru answering each send after `ANSWER_AFTER` seconds, so calls are in flight when the worker dies."""

    def route(self, method, path, headers, body):
        if path == "/sms/send":
            time.sleep(ANSWER_AFTER)
        return super().route(method, path, headers, body)

    def calls(self) -> dict[str, int]:
        per_phone: dict[str, int] = {}
        for _, path, _, body in list(self.requests):
            if path.startswith("/sms/send"):
                phone = parse_qs(body.decode())["to"][0]
                per_phone[phone] = per_phone.get(phone, 0) + 1
        return per_phone


def book(service, n: int) -> None:
    body = json.loads(sample("generic", "booking_created.json").read_text(encoding="utf-8"))
    body["booking"]["id"] = f"K-{n}"
    body["booking"]["start"] = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    body["booking"]["updated_at"] = datetime.now(UTC).isoformat()
    body["patient"]["phone"] = f"+79161{n:05d}0"  # last digit 0: the sandbox's MAX delivers
    response = requests.post(f"{service.base_url}/webhooks/generic/clinic",
                             headers={"X-Connector-Token": ENV["CLINIC_TOKEN"]}, json=body, timeout=10)
    assert response.status_code == 200, response.text


def wait_for(predicate, within: float, what: str, service) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {within} s\n{service.tail()}")


def test_a_worker_killed_mid_batch_leaves_only_a_window_unknown(tmp_path, postgres_database):
    truncate_all(postgres_database)
    smsru = SlowSmsRu(ENV["SMSRU_API_ID"], ENV["SMSRU_CALLBACK_SECRET"])
    config = tmp_path / "tenants.yaml"
    config.write_text(TENANTS.format(smsru=smsru.url), encoding="utf-8")
    service, processes = start_service(tmp_path, {"CONNECTOR_CONFIG": str(config), "DATABASE_URL": postgres_database,
                                                  **ENV})
    ledger = create_engine(postgres_database)
    try:
        smsru.callback_url = f"{service.base_url}/callbacks/smsru/clinic"
        processes[1].kill()  # no worker while the batch is booked: one batch of JOBS confirmations
        processes[1].wait()
        for n in range(JOBS):
            book(service, n)
        worker = subprocess.Popen(processes[1].args, cwd=ROOT, env=service.env,
                                  stdout=open(service.logs / "worker.killed.log", "w"), stderr=subprocess.STDOUT)
        processes.append(worker)
        wait_for(lambda: len(smsru.requests) >= CONCURRENCY + 2, 60, "the second group of sends", service)
        worker.kill()  # SIGKILL, mid-batch: some calls in flight, most not started
        worker.wait()
        with ledger.begin() as db:
            left = db.execute(text("SELECT count(*) FILTER (WHERE started_at IS NOT NULL), "
                                   "count(*) FILTER (WHERE started_at IS NULL) FROM delivery_attempt "
                                   "WHERE status = 'queued' AND provider_message_id IS NULL")).one()
            # the dead worker's leases run out (two minutes, taken here at once)
            db.execute(text("UPDATE notification_job SET lease_until = now() - interval '1 second' "
                            "WHERE status = 'sending'"))
        in_flight, never_started = left
        # at most the calls in flight, a quarter window marked ready, and a window of answers not yet written (it
        # used to be every claimed attempt: the whole batch)
        assert in_flight <= 2 * CONCURRENCY + max(1, CONCURRENCY // 4)
        assert never_started >= JOBS - 2 * CONCURRENCY - 2
        successor = subprocess.Popen(processes[1].args, cwd=ROOT, env=service.env,
                                     stdout=open(service.logs / "worker.next.log", "w"), stderr=subprocess.STDOUT)
        processes.append(successor)

        def settled() -> bool:
            with ledger.connect() as db:
                statuses = db.execute(text("SELECT status, count(*) FROM notification_job "
                                           "WHERE kind = 'confirmation' GROUP BY status")).all()
            return dict(statuses).get("delivered") == JOBS
        wait_for(settled, 90, "every confirmation delivered", service)
        with ledger.connect() as db:
            paths = db.execute(text(
                "SELECT j.id, string_agg(a.channel || ':' || a.status, ',' ORDER BY a.id) FROM notification_job j "
                "JOIN delivery_attempt a ON a.job_id = j.id WHERE j.kind = 'confirmation' GROUP BY j.id")).all()
            unknown_lines = db.execute(text("SELECT count(*) FROM audit_event WHERE what = 'attempt.unknown'")
                                       ).scalar_one()
        calls = smsru.calls()
        outcomes: dict[str, int] = {}
        for _, path in paths:
            outcomes[path] = outcomes.get(path, 0) + 1
        print(f"\nkill run: {JOBS} jobs, {sum(calls.values())} SMS calls to {len(calls)} phones, "
              f"{sum(n - 1 for n in calls.values())} duplicates; at the kill {in_flight} started and unanswered, "
              f"{never_started} never started; paths: {outcomes}")
        assert max(calls.values()) == 1  # nobody got the SMS twice
        assert unknown_lines == in_flight  # the unknown ones are exactly those in flight
        assert outcomes.get("sms:failed,max:delivered", 0) == in_flight  # ... and went by the next channel
        # every one never started went by SMS once, as if nothing happened
        assert outcomes.get("sms:withdrawn,sms:queued", 0) + outcomes.get("sms:withdrawn,sms:delivered", 0) \
            == never_started
    finally:
        stop(processes)
        smsru.close()
        ledger.dispose()
