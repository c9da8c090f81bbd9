"""gunicorn's access log, as the Procfile runs it, keeps no patient's phone in clear."""

from __future__ import annotations

import time

import requests

from tests.e2e.conftest import API_TOKEN, start_service, stop

PHONE = "79164827310"


def test_phone_shaped_path_segments_are_masked_in_the_access_log(tmp_path):
    service, processes = start_service(tmp_path, workers=0)
    try:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        for path in (f"/api/v1/demo/patients/{PHONE}/invitations", "/api/v1/demo/patients/%2B7%20916%20482-73-10/"
                     "invitations", f"/api/v1/demo/patients/8{PHONE[1:]}/opt-outs"):
            requests.get(service.base_url + path, headers=auth, timeout=10)
        requests.get(service.base_url + "/api/v1/demo/bookings/yclients/987654321", headers=auth, timeout=10)
        deadline = time.monotonic() + 10
        log = ""
        while time.monotonic() < deadline and "987654321" not in log:
            time.sleep(0.2)
            log = (service.logs / "web.0.log").read_text()
    finally:
        stop(processes)
    assert "/api/v1/demo/patients/***10/invitations" in log, service.tail()
    assert "/api/v1/demo/patients/***10/opt-outs" in log, service.tail()
    assert "/api/v1/demo/bookings/yclients/987654321" in log  # an id is no phone
    for clear in (PHONE, "4827310", "482-73-10", "916 482"):
        assert clear not in log, service.tail()
