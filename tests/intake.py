"""Webhooks as a source sends them, then the worker's intake, as the worker runs it: what a test needs to see
a webhook's final outcome (the web process only answers `accepted`)."""

from __future__ import annotations

from connector.usecases.intake import drain
from connector.web.context import RUNTIME_KEY

API_TOKEN = "api-token-0123456789abcdef"  # tests.conftest.API_TOKEN (imported there from here would cycle)


def deliver(client, runtime, url: str, **request) -> dict:
    """POST a webhook, let the intake apply it, and return the inbound event as the API shows it then."""
    response = client.post(url, **request)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert answer["outcome"] == "accepted", answer
    drain(runtime)
    return event_of(client, url, answer["inbound_event_id"])


def event_of(client, url: str, event_id: int) -> dict:
    tenant = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    response = client.get(f"/api/v1/{tenant}/inbound-events/{event_id}",
                          headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def accept(client, url: str, **request) -> int:
    """POST a webhook and check the web process stored it (`accepted`); its inbound event id. Nothing is applied
    yet: a test that means to show events waiting together drains them itself."""
    response = client.post(url, **request)
    answer = response.get_json()
    assert response.status_code == 200, answer
    assert answer["outcome"] == "accepted", answer
    return answer["inbound_event_id"]


def post_all(client, runtime, url: str, bodies: list, **request) -> list[dict]:
    """POST several JSON bodies (all pending at once), run the intake once, and return their events as the API
    shows them then, in the order posted."""
    ids = [accept(client, url, json=body, **request) for body in bodies]
    drain(runtime)
    return [event_of(client, url, event_id) for event_id in ids]


def runtime_of(client):
    """The Runtime a test client's app was built with: a helper that takes only a client (`book`) can still
    run the intake."""
    return client.application.extensions[RUNTIME_KEY]
