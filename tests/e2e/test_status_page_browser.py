"""The status page in a real browser (Debian's chromium, headless, driven by Selenium through the system
chromedriver), against the real web and worker processes: what a support engineer sees after three bookings.

Full-page screenshots are kept under test-artifacts/ at the repository root (the test prints the folder):
look at them. Locally, without chromium and chromedriver, the test skips; with CI=true it fails instead.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import IN_CI
from tests.e2e.conftest import DEMO_TOKEN, ROOT, STATUS_PASSWORD, Service, start_service, stop
from tests.fixtures import sample

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"

# last digit of the phone → what the sandbox does with it (see test_sandbox_cascade.py)
DIGITS = {0: ("delivered", ["max"]), 2: ("delivered", ["max", "telegram"]),
          7: ("failed", ["max", "telegram", "whatsapp", "sms"])}
FINAL = {"delivered", "read", "unconfirmed", "failed"}
SAID = {"delivered": "доставлено", "failed": "не доставлено"}


def _record_id(digit: int) -> int:
    return 8100 + digit


def _phone(digit: int) -> str:
    return f"+7 916 123-45-6{digit}"


@pytest.fixture(scope="module")
def chrome() -> Iterator:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        message = f"the browser tests need {' and '.join(missing)} (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                     "--lang=ru-RU"):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager is skipped, so nothing is ever downloaded.
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def settled(tmp_path) -> Iterator[tuple[Service, dict[int, dict]]]:
    """The service with one YCLIENTS booking per digit of DIGITS, each confirmation at its final status."""
    service, processes = start_service(tmp_path, {"CONNECTOR_DEMO_STEP_SECONDS": "3",
                                                  "CONNECTOR_DEMO_QUIET_HOURS": "off"})
    try:
        for digit in DIGITS:
            _post_booking(service, digit)
        deadline = time.monotonic() + 90
        while True:
            views = {digit: service.api(f"/api/v1/demo/bookings/yclients/{_record_id(digit)}") for digit in DIGITS}
            done = all(_confirmation(view)["status"] in FINAL for view in views.values())
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for digit, (status, channels) in DIGITS.items():
            job = _confirmation(views[digit])
            assert (digit, job["status"], [a["channel"] for a in job["attempts"]]) == (digit, status, channels), \
                service.tail()
        yield service, views
    finally:
        stop(processes)


def _post_booking(service: Service, digit: int) -> None:
    visit = (datetime.now(UTC) + timedelta(days=3)).replace(hour=9, minute=0, second=0, microsecond=0)
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = _record_id(digit)
    body["data"]["client"]["phone"] = _phone(digit)
    body["data"]["datetime"] = visit.isoformat()
    body["data"]["last_change_date"] = datetime.now(UTC).isoformat()
    response = requests.post(f"{service.base_url}/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body, timeout=10)
    service.applied("demo", response)


def _confirmation(view: dict) -> dict:
    return next(job for job in view["jobs"] if job["kind"] == "confirmation")


def test_a_support_engineer_sees_the_bookings_their_messages_and_a_trail(chrome, settled):
    from selenium.webdriver.common.by import By

    service, views = settled
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    # Signed out, the page sends the browser to the sign-in form; the built-in admin signs in and comes back.
    chrome.get(f"{service.base_url}/status/demo")
    assert "/status/sign-in?next=" in chrome.current_url, chrome.current_url
    chrome.find_element(By.NAME, "login").send_keys("admin")
    chrome.find_element(By.NAME, "password").send_keys("not-the-password")
    _follow(chrome, chrome.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert "Неверный логин или пароль" in chrome.find_element(By.TAG_NAME, "body").text
    _screenshot(chrome, ARTIFACTS / "status-sign-in.png")
    chrome.find_element(By.NAME, "password").send_keys(STATUS_PASSWORD)
    _follow(chrome, chrome.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert chrome.current_url == f"{service.base_url}/status/demo", chrome.current_url
    _screenshot(chrome, ARTIFACTS / "status-page.png")
    text = chrome.find_element(By.TAG_NAME, "body").text
    assert chrome.title == "Демо-клиника «Здоровье» · connector"
    assert chrome.find_element(By.TAG_NAME, "h1").text == "Демо-клиника «Здоровье» (demo)"
    headings = [h.text for h in chrome.find_elements(By.TAG_NAME, "h2")]
    # the three webhooks, and the sandbox's delivery reports besides
    assert "Последние записи (3)" in headings, headings
    assert any(h.startswith("Последние входящие события (") for h in headings), headings
    events = chrome.find_element(By.XPATH, "//h2[starts-with(., 'Последние входящие')]/following-sibling::table[1]")
    assert {str(_record_id(digit)) for digit in DIGITS} <= set(events.text.split()), events.text
    _assert_masked(text)

    rows = {digit: _booking_row(chrome, digit) for digit in DIGITS}
    for digit, (status, _channels) in DIGITS.items():
        row = rows[digit].text
        assert f"+7 916 ***-**-6{digit}" in row, row
        assert SAID[status] in row, row  # the confirmation's final status, among the booking's job counts
        assert "Иванов Сергей Петрович" in row  # the doctor, as the source named him

    # the failed booking: every channel tried, each attempt failed, and the trail says so
    _follow(chrome, rows[7].find_element(By.PARTIAL_LINK_TEXT, f"yclients / {_record_id(7)}"))
    _screenshot(chrome, ARTIFACTS / "status-booking-failed.png")
    assert chrome.current_url.endswith(f"/status/demo/bookings/{views[7]['id']}"), chrome.current_url
    assert chrome.find_element(By.TAG_NAME, "h1").text.startswith(f"Запись yclients / {_record_id(7)}")
    text = chrome.find_element(By.TAG_NAME, "body").text
    _assert_masked(text, surname=False)  # the booking's own page names the patient to staff
    assert "+7 916 ***-**-67" in text and "Смирнов Иван Петрович" in text
    attempts = _attempt_rows(chrome, "confirmation")
    assert [(cells[1], cells[3]) for cells in attempts] == [
        ("MAX", "не доставлено"), ("Telegram", "не доставлено"), ("WhatsApp", "не доставлено"),
        ("SMS", "не доставлено")], attempts
    assert "не доставлено" in _job_heading(chrome, "confirmation")
    trail = _trail(chrome)
    assert len(trail) >= 5, trail  # the booking's arrival, the job, its attempts, its end
    assert {row[2] for row in trail} >= {"MAX", "Telegram", "WhatsApp", "SMS"}, trail

    # the Telegram booking, reached from the overview again: not on MAX, delivered by Telegram
    chrome.back()
    _follow(chrome, _booking_row(chrome, 2).find_element(By.PARTIAL_LINK_TEXT, f"yclients / {_record_id(2)}"))
    _screenshot(chrome, ARTIFACTS / "status-booking-telegram.png")
    _assert_masked(chrome.find_element(By.TAG_NAME, "body").text, surname=False)
    attempts = _attempt_rows(chrome, "confirmation")
    assert [(cells[1], cells[3]) for cells in attempts] == [("MAX", "нет в мессенджере"),
                                                            ("Telegram", "доставлено")], attempts
    assert "доставлено" in _job_heading(chrome, "confirmation")
    assert any(row[2] == "Telegram" for row in _trail(chrome))


def _assert_masked(text: str, *, surname: bool = True) -> None:
    """No phone of ours in clear in any spelling, nor (in lists) the patient's surname."""
    digits_only = re.sub(r"\D", "", text)
    for digit in DIGITS:
        assert f"916123456{digit}" not in digits_only, f"a full phone ending in {digit} is on the page"
        assert f"123-45-6{digit}" not in text
    assert not surname or "Смирнов" not in text


def _booking_row(chrome, digit: int):
    from selenium.webdriver.common.by import By

    link = f"yclients / {_record_id(digit)}"
    return chrome.find_element(By.XPATH, f"//h2[starts-with(., 'Последние записи')]/following-sibling::table[1]"
                                         f"//tr[.//a[normalize-space(.)='{link}']]")


def _job_card(chrome, kind: str):
    from selenium.webdriver.common.by import By

    return chrome.find_element(By.CSS_SELECTOR, f"div.job[data-kind='{kind}']")


def _job_heading(chrome, kind: str) -> str:
    from selenium.webdriver.common.by import By

    return _job_card(chrome, kind).find_element(By.TAG_NAME, "h3").text


def _attempt_rows(chrome, kind: str) -> list[list[str]]:
    """The attempts table of the job: step, channel, provider, status, error, times."""
    from selenium.webdriver.common.by import By

    rows = _job_card(chrome, kind).find_elements(By.XPATH, ".//table//tr[count(td) > 1]")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def _trail(chrome) -> list[list[str]]:
    """The timeline: time, job, channel, what happened, inbound event."""
    from selenium.webdriver.common.by import By

    rows = chrome.find_elements(By.XPATH, "//table[contains(@class, 'timeline')]//tr[td]")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def _follow(chrome, element) -> None:
    """Click a link or a form's button and wait until the page it leads to has replaced this one: a click returns
    before the browser has navigated, and reading the page at once may read the old one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    page = chrome.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(chrome, 15).until(expected_conditions.staleness_of(page))
    WebDriverWait(chrome, 15).until(lambda browser: browser.execute_script("return document.readyState") == "complete")


def _screenshot(chrome, path: Path) -> None:
    """The whole page, not just the window: Chrome's DevTools capture beyond the viewport."""
    metrics = chrome.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = chrome.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))
