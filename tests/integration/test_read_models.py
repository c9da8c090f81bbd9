"""The read models the API and the status page share (connector.store.views), read directly: what the pages
cannot show on their own — another tenant's rows, and the overdue threshold as a setting."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from connector.store import views
from tests.intake import deliver
from tests.integration.test_status_page import START, WEBHOOK, Clock, load

MOSCOW = ZoneInfo("Europe/Moscow")


def booked(client, runtime) -> dict:
    """The fixture's booking, applied by the intake at START; its inbound event as the API shows it."""
    runtime.clock = Clock(START)
    event = deliver(client, runtime, WEBHOOK, json=load("record_create"))
    assert event["outcome"] == "applied" and event["booking_id"] is not None, event
    return event


def test_a_booking_or_event_of_another_tenant_is_not_found(client, runtime):
    event = booked(client, runtime)
    with runtime.sessions() as session:
        mine = views.booking_trail_by_id(session, tenant_id="demo", booking_id=event["booking_id"])
        assert mine is not None and mine.jobs and mine.audit and mine.inbound
        assert views.booking_trail(session, tenant_id="demo", source="yclients",
                                   external_id=mine.booking.external_id) is not None
        assert views.booking_trail_by_id(session, tenant_id="other", booking_id=event["booking_id"]) is None
        assert views.booking_trail(session, tenant_id="other", source="yclients",
                                   external_id=mine.booking.external_id) is None
        assert views.event_trail(session, tenant_id="demo", event_id=event["id"]) is not None
        assert views.event_trail(session, tenant_id="other", event_id=event["id"]) is None
        assert views.inbound_events(session, tenant_id="other", outcome=None, limit=50) == []
        assert views.overview(session, tenant_id="other", now=START, zone=MOSCOW,
                              late_after=timedelta(minutes=5)).bookings == []


def test_a_scheduled_job_is_overdue_only_past_the_configured_lateness(client, runtime):
    booked(client, runtime)  # its confirmation is due at START; no worker runs
    later = START + timedelta(minutes=10)
    with runtime.sessions() as session:
        late = views.overview(session, tenant_id="demo", now=later, zone=MOSCOW, late_after=timedelta(minutes=5))
        patient = views.overview(session, tenant_id="demo", now=later, zone=MOSCOW, late_after=timedelta(minutes=15))
    assert late.overdue_count == 1 and [job.kind for job in late.overdue] == ["confirmation"]
    assert patient.overdue_count == 0 and list(patient.overdue) == []
    assert late.search is None and len(late.bookings) == 1 and late.bookings[0].phone == "+79161234560"
