"""The support console in a real browser (Debian's chromium, headless, driven by Selenium through the system
chromedriver) against the real web process: an administrator signs in, finds a patient by a phone typed the way
people type it, reads the cascade's attempts in Russian, sends a failed confirmation again and sees the new
attempts. The worker's passes run here, in the test, so each step happens when the test says.

Screenshots are kept under test-artifacts/ at the repository root (git-ignored; the test prints the folder):
console-overview.png and console-booking.png. Locally, without chromium and chromedriver, the test skips; with
CI=true it fails instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from connector.entrypoints.worker import Worker
from connector.store.models import DeliveryAttempt, NotificationJob
from connector.tenants import demo_tenant
from tests.conftest import make_runtime
from tests.e2e.conftest import DEMO_TOKEN, STATUS_PASSWORD, start_service, stop
from tests.e2e.test_status_page_browser import ARTIFACTS, _screenshot, chrome  # noqa: F401  (the browser fixture)
from tests.fixtures import sample

pytestmark = pytest.mark.e2e

TYPED = "8 (916) 123-45-67"  # the sandbox fails every channel for a phone ending in 7
RUSSIAN = {"MAX", "Telegram", "WhatsApp", "SMS"}


@pytest.fixture
def console(tmp_path) -> Iterator:
    """The web process alone (the test is the worker), two bookings applied: one failing everywhere, one delivered."""
    service, processes = start_service(tmp_path, workers=0)
    runtime = make_runtime(service.env["DATABASE_URL"], [demo_tenant(DEMO_TOKEN, step_seconds=3, quiet_hours=None)])
    worker = Worker(runtime, concurrency=2, name="browser-test")
    try:
        for record_id, phone in ((8207, "+7 916 123-45-67"), (8200, "+7 916 123-45-60")):
            _post_booking(service.base_url, record_id, phone)
        _passes(worker, until=lambda: (_confirmation_status(runtime, "8207"), _confirmation_status(runtime, "8200"))
                == ("failed", "delivered"))
        worker.heartbeat()
        yield service, runtime, worker
    finally:
        worker.close()
        stop(processes)
        runtime.engine.dispose()


def _post_booking(base_url: str, record_id: int, phone: str) -> None:
    visit = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = record_id
    body["data"]["client"]["phone"] = phone
    body["data"]["datetime"] = visit.isoformat()
    response = requests.post(f"{base_url}/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body, timeout=10)
    assert response.status_code == 200 and response.json()["outcome"] == "accepted", response.text


def _passes(worker: Worker, *, until, within: float = 30) -> None:
    """The worker's passes until `until()` holds (the sandbox answers at once; its reports come within a second)."""
    deadline = time.monotonic() + within
    while not until():
        assert time.monotonic() < deadline, "the worker's passes did not get there"
        worker.tick()
        time.sleep(0.2)


def _confirmation(runtime, external_id: str):
    from connector.store.models import Booking

    with runtime.sessions() as session:
        return session.scalars(select(NotificationJob).join(Booking, Booking.id == NotificationJob.booking_id)
                               .where(Booking.external_id == external_id,
                                      NotificationJob.kind == "confirmation")).one_or_none()


def _confirmation_status(runtime, external_id: str) -> str | None:
    job = _confirmation(runtime, external_id)
    return job.status if job is not None else None


def _attempts(runtime, job_id: int) -> int:
    with runtime.sessions() as session:
        return len(session.scalars(select(DeliveryAttempt.id).where(DeliveryAttempt.job_id == job_id)).all())


def test_an_admin_finds_a_patient_by_phone_and_sends_a_failed_confirmation_again(chrome, console):  # noqa: F811
    from selenium.webdriver.common.by import By

    service, runtime, worker = console
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    chrome.delete_all_cookies()
    chrome.get(f"{service.base_url}/status/demo")
    assert "/status/sign-in" in chrome.current_url, chrome.current_url
    chrome.find_element(By.NAME, "login").send_keys("admin")
    chrome.find_element(By.NAME, "password").send_keys(STATUS_PASSWORD)
    chrome.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    _wait(chrome, "//h2[normalize-space(.)='Доставка по каналам']", By.XPATH)  # the POST and its redirect landed
    assert chrome.current_url == f"{service.base_url}/status/demo", chrome.current_url
    _screenshot(chrome, ARTIFACTS / "console-overview.png")
    overview = chrome.find_element(By.TAG_NAME, "body").text
    assert "Доставка по каналам" in overview and "Администратор" in overview
    assert chrome.find_elements(By.CSS_SELECTOR, "svg.chart rect"), "the chart has no bars"

    # the search: a phone as people type it; POSTed, so it is in no URL
    chrome.find_element(By.NAME, "q").send_keys(TYPED)
    chrome.find_element(By.CSS_SELECTOR, "form.search button[type=submit]").click()
    results = _wait(chrome, "//h2[starts-with(., 'Поиск по телефону')]", By.XPATH)
    assert "123-45-67" not in chrome.current_url and "9161234567" not in chrome.current_url
    assert results.text == "Поиск по телефону +7 916 ***-**-67: 1", results.text
    results.find_element(By.XPATH, "following-sibling::table[1]").find_element(
        By.PARTIAL_LINK_TEXT, "yclients / 8207").click()
    _wait(chrome, "div.job[data-kind='confirmation']")
    assert re.search(r"/status/demo/bookings/\d+$", chrome.current_url), chrome.current_url

    # the cascade in Russian: every channel tried, each «не доставлено»
    card = chrome.find_element(By.CSS_SELECTOR, "div.job[data-kind='confirmation']")
    assert "Подтверждение записи" in card.find_element(By.TAG_NAME, "h3").text
    assert "не доставлено" in card.find_element(By.TAG_NAME, "h3").text
    rows = _rows(card)
    assert [(cells[1], cells[3]) for cells in rows] == [
        ("MAX", "не доставлено"), ("Telegram", "не доставлено"), ("WhatsApp", "не доставлено"),
        ("SMS", "не доставлено")], rows
    assert "+7 916 ***-**-67" in chrome.find_element(By.TAG_NAME, "body").text

    # send it again, from the first step, after confirming
    card.find_element(By.XPATH, ".//button[normalize-space(.)='Отправить ещё раз']").click()
    assert _wait(chrome, "section.confirm") and chrome.find_element(By.TAG_NAME, "h1").text == "Отправить ещё раз"
    chrome.find_element(By.XPATH, "//button[normalize-space(.)='Да, отправить ещё раз']").click()
    flash = _wait(chrome, "p.flash-ok").text
    assert "уйдёт ещё раз с шага 1 (MAX)" in flash, flash
    job = _confirmation(runtime, "8207")
    _passes(worker, until=lambda: _attempts(runtime, job.id) == 8 and _confirmation_status(runtime, "8207") == "failed")
    chrome.refresh()
    card = _wait(chrome, "div.job[data-kind='confirmation']")
    card = chrome.find_element(By.CSS_SELECTOR, "div.job[data-kind='confirmation']")
    rows = _rows(card)
    assert len(rows) == 8 and {cells[1] for cells in rows[4:]} == RUSSIAN, rows  # the new sequence, the old kept
    again = card.find_element(By.CSS_SELECTOR, "tr.again").text
    assert again == "отправлено ещё раз: Администратор: с шага 1 (MAX)", again
    timeline = chrome.find_element(By.CSS_SELECTOR, "table.timeline").text
    assert "отправлено ещё раз по просьбе сотрудника: Администратор: с шага 1 (MAX)" in timeline, timeline
    assert "+00:00" not in timeline and "T0" not in timeline
    _screenshot(chrome, ARTIFACTS / "console-booking.png")


def _wait(browser, selector: str, by: str = "css selector"):
    """The element once the page that has it has loaded (a form's POST and its redirect take a moment)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((by, selector)))


def _rows(card) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in card.find_elements(By.XPATH, ".//table[contains(@class, 'attempts')]//tr[count(td) > 1]")]
