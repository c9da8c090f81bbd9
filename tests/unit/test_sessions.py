"""Our HTTP sessions take the environment's proxy and CA settings, read once per origin."""

from __future__ import annotations

import pytest

from connector.transport.sessions import environment, new_session


@pytest.fixture(autouse=True)
def fresh():
    environment.cache_clear()
    yield
    environment.cache_clear()


def test_a_clinic_behind_a_proxy_still_reaches_its_providers(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.clinic.local:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/clinic-ca.pem")
    proxies, verify = environment("https://api.wahelp.ru/")
    assert proxies.get("https") == "http://proxy.clinic.local:3128"
    assert verify == "/etc/ssl/clinic-ca.pem"
    assert environment("http://127.0.0.1:8080/")[0] == {}  # NO_PROXY honoured


def test_without_settings_nothing_is_proxied_and_certificates_are_checked(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert environment("https://sms.ru/") == ({}, True)
    assert new_session().trust_env is False  # the environment is not read again on every call
