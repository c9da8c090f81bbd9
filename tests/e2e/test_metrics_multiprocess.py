"""The Procfile's gunicorn, two web workers: /metrics adds up the webhook latency every worker counted, and a
restart starts the counts afresh (gunicorn.conf.py prepares prometheus-client's multiprocess directory)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families

from connector.config import INSTANCE
from tests.e2e.conftest import API_TOKEN, DEMO_TOKEN, ROOT, start_service, stop

BODY = (ROOT / "tests" / "samples" / "yclients" / "record_create.json").read_bytes()
COUNTS = INSTANCE / "prometheus"  # gunicorn.conf.py's directory when PROMETHEUS_MULTIPROC_DIR is unset


def post_webhooks(base_url: str, count: int) -> None:
    """`count` webhooks, eight at a time, each on its own connection: both sync workers take some."""
    def post(_: int) -> int:
        return requests.post(f"{base_url}/webhooks/yclients/demo?token={DEMO_TOKEN}", data=BODY, timeout=30,
                             headers={"Content-Type": "application/json", "Connection": "close"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, range(count))) == {200}


def answered(base_url: str) -> float:
    """The histogram's count of 2xx YCLIENTS webhook answers, as one scrape (served by one worker) sees it."""
    text = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "connector_webhook_request_seconds_count" and s.labels == {"source": "yclients",
                                                                                     "status": "2xx"})


def test_every_web_worker_s_answers_add_up_and_a_restart_starts_afresh(tmp_path, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    first = tmp_path / "first"
    first.mkdir()
    service, processes = start_service(first, workers=0)
    try:
        post_webhooks(service.base_url, 16)
        sent = 16
        # until both workers have answered some (each keeps its counts in its own file): then no one worker's
        # counts equal what was sent, only the sum over both does
        while len(list(COUNTS.glob("histogram_*.db"))) < 2 and sent < 400:
            post_webhooks(service.base_url, 16)
            sent += 16
        assert len(list(COUNTS.glob("histogram_*.db"))) == 2, service.tail()
        assert [answered(service.base_url) for _ in range(4)] == [sent] * 4  # whichever worker is asked
    finally:
        stop(processes)

    second = tmp_path / "second"
    second.mkdir()
    service, processes = start_service(second, workers=0)
    try:
        assert answered(service.base_url) == 0  # the last run's files were cleared at start
        post_webhooks(service.base_url, 5)
        assert answered(service.base_url) == 5
    finally:
        stop(processes)
