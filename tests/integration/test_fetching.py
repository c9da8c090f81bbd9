"""The fetch step and reconciliation, on the real ledger (SQLite and PostgreSQL), with a CRM that answers as
scripted: the adapters' own wire tests (test_amocrm_*, test_bitrix24_*) speak HTTP; this is what the worker does
with their answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connector.core.model import BookingFacts, BookingState, EventAction, Patient, SourceEvent
from connector.sources.crm import CrmError, Hint
from connector.store.fetches import hint_rows
from connector.store.inbound import store_many
from connector.store.models import Booking, InboundEvent, NotificationJob, SyncState
from connector.tenants import demo_tenant
from connector.usecases import fetching
from connector.usecases.fetching import fetch_batch
from connector.usecases.intake import drain
from connector.usecases.reconcile import reconcile_tenant
from connector.usecases.replay import replay
from tests.conftest import DEMO_TOKEN, make_runtime

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
VISIT = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


class ScriptedCrm:
    """A Fetcher whose answers a test writes: per entity, a queue of results (an event, None, or an error)."""

    def __init__(self):
        self.answers: dict[str, list] = {}
        self.asked: list[str] = []
        self.listing: list[tuple[str, datetime]] = []
        self.listing_error: CrmError | None = None
        self.contacts: list[tuple[str, datetime]] = []  # what changed contacts stand for
        self.contacts_error: CrmError | None = None
        self.windows: list[tuple[datetime, datetime]] = []

    def fetch(self, hint: Hint):
        self.asked.append(hint.external_id)
        queue = self.answers[hint.external_id]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def related(self, hint: Hint):
        return None

    def changed(self, since, until):
        self.windows.append((since, until))
        if self.listing_error:
            raise self.listing_error
        yield from self.listing

    def changed_contacts(self, since, until):
        if self.contacts_error:
            raise self.contacts_error
        yield from self.contacts


def lead(external_id: str, *, version: datetime, starts_at: datetime = VISIT,
         state: BookingState = BookingState.ACTIVE) -> SourceEvent:
    facts = BookingFacts(external_id=external_id, starts_at=starts_at, state=state, timezone=None, duration=None,
                         patient=Patient(phone="+79161234562", first_name="Иван", last_name="Смирнов"),
                         doctor_name="Иванов С. П.", services=("Приём кардиолога",))
    return SourceEvent(EventAction.UPSERT, external_id, version, facts)


@pytest.fixture
def setup(database_url):
    crm = ScriptedCrm()
    clock = {"now": NOW}
    runtime = make_runtime(database_url, [replace(demo_tenant(DEMO_TOKEN), sources={})])
    runtime = replace(runtime, clock=lambda: clock["now"])
    factories = {"amocrm": lambda tenant, rt: crm}
    yield runtime, crm, clock, factories
    runtime.engine.dispose()


def hinted(runtime, *ids: str, deleted: bool = False) -> list[int]:
    with runtime.sessions.begin() as session:
        return store_many(session, hint_rows(tenant_id="demo", source="amocrm", body="leads[update][0][id]=1",
                                             headers={}, now=runtime.clock(),
                                             hints=[Hint(i, deleted=deleted) for i in ids]))


def event(runtime, event_id: int) -> InboundEvent:
    with runtime.sessions() as session:
        row = session.get(InboundEvent, event_id)
        session.expunge_all()
        return row


def test_an_entity_waits_for_its_fetch_then_the_intake_applies_it(setup):
    runtime, crm, clock, factories = setup
    [event_id] = hinted(runtime, "24681357")
    drain(runtime)
    assert event(runtime, event_id).outcome == "pending", "applied before the entity was read"

    crm.answers["24681357"] = [lead("24681357", version=NOW - timedelta(minutes=5))]
    assert fetch_batch(runtime, fetchers=factories) == {"fetched": 1}
    drain(runtime)
    row = event(runtime, event_id)
    assert (row.outcome, row.fetch_due) == ("applied", None)
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "24681357")).one()
        assert booking.source == "amocrm" and booking.source_version == NOW - timedelta(minutes=5)
        assert session.scalars(select(NotificationJob.kind).where(NotificationJob.booking_id == booking.id)).all()


def test_the_entitys_own_change_time_orders_it_not_the_arrival(setup):
    runtime, crm, clock, factories = setup
    newer = lead("7", version=NOW, starts_at=VISIT + timedelta(hours=2))
    older = lead("7", version=NOW - timedelta(hours=1))
    [first] = hinted(runtime, "7")
    crm.answers["7"] = [newer]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    [late] = hinted(runtime, "7")  # a slow replica answers with what the lead was an hour ago
    crm.answers["7"] = [older]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    assert (event(runtime, first).outcome, event(runtime, late).outcome) == ("applied", "stale")
    with runtime.sessions() as session:
        assert session.scalars(select(Booking.starts_at)).one() == VISIT + timedelta(hours=2)


def test_a_crm_down_is_retried_with_growing_pauses_then_rejected_and_replayable(setup):
    runtime, crm, clock, factories = setup
    [event_id] = hinted(runtime, "5")
    crm.answers["5"] = [CrmError("amocrm: GET lead: HTTP 503", transient=True)]
    dues = []
    for _ in range(fetching.MAX_TRIES - 1):
        assert fetch_batch(runtime, fetchers=factories) == {"retry": 1}
        row = event(runtime, event_id)
        assert row.outcome == "pending" and "HTTP 503" in row.error
        dues.append(row.fetch_due - clock["now"])
        assert fetch_batch(runtime, fetchers=factories) == {}, "fetched again before its pause was over"
        clock["now"] = row.fetch_due
    assert dues == sorted(dues) and dues[0] == timedelta(seconds=fetching.BACKOFF_BASE)
    assert max(dues) == timedelta(seconds=fetching.BACKOFF_CAP)
    assert fetch_batch(runtime, fetchers=factories) == {"rejected": 1}
    row = event(runtime, event_id)
    assert (row.outcome, row.reason, row.fetch_tries) == ("rejected", "fetch_failed", fetching.MAX_TRIES)
    assert f"gave up after {fetching.MAX_TRIES} tries" in row.error

    crm.answers["5"] = [lead("5", version=NOW)]  # the CRM is back: support replays the event

    def settle(runtime, _ids) -> None:  # as replay.settle, with this test's CRM instead of the registry's
        while fetch_batch(runtime, fetchers=factories):
            pass
        drain(runtime)

    [result] = replay(runtime, [event_id], apply=settle)
    assert result.outcome == "applied", result.detail


def test_a_server_asking_to_wait_is_believed(setup):
    runtime, crm, clock, factories = setup
    [event_id] = hinted(runtime, "5")
    crm.answers["5"] = [CrmError("bitrix24: crm.item.get: HTTP 429", transient=True, retry_after=90)]
    fetch_batch(runtime, fetchers=factories)
    assert event(runtime, event_id).fetch_due == NOW + timedelta(seconds=90)


def test_a_refusal_rejects_at_once_and_an_unknown_pipeline_is_ignored(setup):
    runtime, crm, clock, factories = setup
    refused, other = hinted(runtime, "1", "2")
    crm.answers["1"] = [CrmError("amocrm: GET lead: HTTP 401 (token revoked)", transient=False, status_code=401)]
    crm.answers["2"] = [None]
    assert fetch_batch(runtime, fetchers=factories) == {"rejected": 1, "ignored": 1}
    assert (event(runtime, refused).outcome, event(runtime, refused).error) == (
        "rejected", "amocrm: GET lead: HTTP 401 (token revoked)")
    assert event(runtime, other).outcome == "ignored"


def test_a_tenant_without_the_source_rejects_its_events_saying_why(setup):
    runtime, crm, clock, factories = setup
    [event_id] = hinted(runtime, "1")
    assert fetch_batch(runtime, fetchers={"amocrm": lambda tenant, rt: None}) == {"rejected": 1}
    assert "sources.amocrm is not configured" in event(runtime, event_id).error


def test_a_deleted_lead_cancels_its_booking(setup):
    runtime, crm, clock, factories = setup
    hinted(runtime, "9")
    crm.answers["9"] = [lead("9", version=NOW - timedelta(hours=1))]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    hinted(runtime, "9", deleted=True)
    crm.answers["9"] = [SourceEvent(EventAction.DELETE, "9", None, None)]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    with runtime.sessions() as session:
        assert session.scalars(select(Booking.state)).one() == "cancelled"


def test_a_claim_is_leased_so_two_workers_do_not_fetch_one_entity(setup):
    runtime, crm, clock, factories = setup
    hinted(runtime, "1")
    from connector.store.fetches import claim_fetches

    with runtime.sessions.begin() as session:
        assert len(claim_fetches(session, now=NOW, limit=10, lease=fetching.LEASE)) == 1
    with runtime.sessions.begin() as session:
        assert claim_fetches(session, now=NOW, limit=10, lease=fetching.LEASE) == []
    with runtime.sessions.begin() as session:  # the first worker died: its claim runs out
        assert len(claim_fetches(session, now=NOW + fetching.LEASE, limit=10, lease=fetching.LEASE)) == 1


def hold_a_lead(runtime, crm, factories) -> None:
    """Lead `held`, changed two hours ago, fetched and applied: a booking the ledger holds."""
    hinted(runtime, "held")
    crm.answers["held"] = [lead("held", version=NOW - timedelta(hours=2))]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)


def test_reconciliation_fetches_what_changed_after_what_we_hold(setup):
    runtime, crm, clock, factories = setup
    tenant = runtime.tenants["demo"]
    hold_a_lead(runtime, crm, factories)

    crm.listing = [("held", NOW - timedelta(hours=2)), ("missed", NOW - timedelta(minutes=30)),
                   ("missed", NOW - timedelta(minutes=20))]
    result = reconcile_tenant(runtime, tenant, "amocrm", "w1", factories=factories)
    assert (result.read, result.stored, result.error) == (3, 1, None)
    crm.answers["missed"] = [lead("missed", version=NOW - timedelta(minutes=20))]
    crm.asked.clear()
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    assert crm.asked == ["missed"]
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "missed")).one()
        kinds = session.scalars(select(NotificationJob.kind).where(NotificationJob.booking_id == booking.id)).all()
        assert "confirmation" not in kinds, "the first pass found a booking made before we listened"
        assert session.get(SyncState, ("demo", "amocrm")).cursor == NOW

    clock["now"] = NOW + timedelta(minutes=10)  # the next pass re-reads a little of the last window
    crm.listing = [("late", NOW + timedelta(minutes=5))]
    reconcile_tenant(runtime, tenant, "amocrm", "w1", factories=factories)
    assert crm.windows[-1] == (NOW - timedelta(minutes=15), NOW + timedelta(minutes=10))
    crm.answers["late"] = [lead("late", version=NOW + timedelta(minutes=5))]
    fetch_batch(runtime, fetchers=factories)
    drain(runtime)
    with runtime.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.external_id == "late")).one()
        kinds = session.scalars(select(NotificationJob.kind).where(NotificationJob.booking_id == booking.id)).all()
        assert "confirmation" in kinds, "a booking whose webhook was lost minutes ago gets its confirmation"


def test_reconciliation_reads_again_what_a_changed_contact_stands_for(setup):
    runtime, crm, clock, factories = setup
    tenant = runtime.tenants["demo"]
    hold_a_lead(runtime, crm, factories)
    # the lead did not change, its contact did (a new phone): the lead is read again all the same
    crm.contacts = [("held", NOW - timedelta(minutes=5))]
    result = reconcile_tenant(runtime, tenant, "amocrm", "w1", factories=factories)
    assert (result.read, result.stored, result.error) == (1, 1, None)


def test_a_refused_contacts_listing_costs_only_that_part_of_the_pass(setup):
    runtime, crm, clock, factories = setup
    crm.listing = [("missed", NOW - timedelta(minutes=30))]
    crm.contacts_error = CrmError("amocrm: contacts list: HTTP 400 «Bad filter»", transient=False)
    result = reconcile_tenant(runtime, runtime.tenants["demo"], "amocrm", "w1", factories=factories)
    assert (result.read, result.stored, result.error) == (1, 1, None)
    with runtime.sessions() as session:
        assert session.get(SyncState, ("demo", "amocrm")).cursor == NOW  # the watermark moves on

    clock["now"] = NOW + timedelta(minutes=10)
    crm.contacts_error = CrmError("amocrm: contacts list: HTTP 503", transient=True)  # down: read it all again
    result = reconcile_tenant(runtime, runtime.tenants["demo"], "amocrm", "w1", factories=factories)
    assert result.error == "amocrm: contacts list: HTTP 503"
    with runtime.sessions() as session:
        assert session.get(SyncState, ("demo", "amocrm")).cursor == NOW


def test_a_failed_listing_keeps_the_watermark(setup):
    runtime, crm, clock, factories = setup
    crm.listing_error = CrmError("bitrix24: crm.item.list: HTTP 503", transient=True)
    result = reconcile_tenant(runtime, runtime.tenants["demo"], "amocrm", "w1", factories=factories)
    assert result.error == "bitrix24: crm.item.list: HTTP 503"
    with runtime.sessions() as session:
        state = session.get(SyncState, ("demo", "amocrm"))
        assert state.cursor < NOW and state.last_error == result.error and state.lease_owner is None
