"""The amoCRM client, fetcher and note target against a local stand-in speaking amoCRM's API v4 wire format
(hal+json answers, 204 for nothing, 429 as an HTML page without Retry-After, problem+json refusals)."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml
from werkzeug import Request, Response

from connector.core.model import BookingState, EventAction, SourceEvent
from connector.entrypoints.bootstrap import MAPPINGS_DIR
from connector.sources.amocrm_api import MIN_INTERVAL, AmocrmApi, StaticToken, refresh_grant
from connector.sources.amocrm_fetch import NOTE_SERVICE, AmocrmFetcher, AmocrmNoteTarget
from connector.sources.amocrm_mapping import AmocrmMapping, load_amocrm_mapping
from connector.sources.amocrm_settings import AmocrmSource, AmocrmWriteback
from connector.sources.crm import CrmError, Hint, Report
from tests.fixtures import sample

TOKEN = "long-lived-0123456789abcdef"
PATIENT_BITS = ("Смирнов", "79161234562", "916 123-45-62", "smirnov@example.com")
HTML_429 = "<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"


def shipped() -> AmocrmMapping:
    path = MAPPINGS_DIR / "amocrm.yaml"
    return load_amocrm_mapping(yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path), name="amocrm")


def load(name: str) -> dict:
    return json.loads(sample("amocrm", name).read_text(encoding="utf-8"))


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Amo:
    """The stand-in: answers queued per (method, path) in turn (the last one repeats); every request kept with
    the fake clock's time it arrived at."""

    def __init__(self, httpserver, fake_time: FakeTime):
        self.fake_time = fake_time
        self.answers: dict[tuple[str, str], list[Response]] = {}
        self.seen: list[tuple[float, Request, bytes]] = []
        httpserver.expect_request("").respond_with_handler(self.handle)  # every path

    def on(self, method: str, path: str, *answers: Response) -> None:
        self.answers[(method, path)] = list(answers)

    def handle(self, request: Request) -> Response:
        self.seen.append((self.fake_time.now, request, request.get_data()))
        queue = self.answers.get((request.method, request.path))
        if not queue:
            return Response("", status=404)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def paths(self) -> list[str]:
        return [f"{request.method} {request.full_path.rstrip('?')}" for _, request, _ in self.seen]


def hal(body, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/hal+json")


def problem(status: int, title: str, **extra) -> Response:
    return Response(json.dumps({"title": title, "status": status, **extra}, ensure_ascii=False), status=status,
                    content_type="application/problem+json")


def too_many() -> Response:
    return Response(HTML_429, status=429, content_type="text/html")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def amo(httpserver, fake_time) -> Amo:
    return Amo(httpserver, fake_time)


def settings(httpserver) -> AmocrmSource:
    return AmocrmSource(subdomain="clinic", token=TOKEN, base_url=httpserver.url_for("/"), timeout=3)


def api(httpserver, fake_time, tokens=None) -> AmocrmApi:
    return AmocrmApi(settings(httpserver).api_base, tokens or StaticToken(TOKEN), timeout=3,
                     sleep=fake_time.sleep, clock=fake_time.clock)


def fetcher(httpserver, fake_time) -> AmocrmFetcher:
    return AmocrmFetcher.build(settings(httpserver), shipped(), "Europe/Moscow", tokens=StaticToken(TOKEN),
                               sleep=fake_time.sleep, clock=fake_time.clock)


# --- fetch ------------------------------------------------------------------------------------------------------


def test_fetch_reads_the_lead_then_its_main_contact(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", hal(load("lead_24681357.json")))
    amo.on("GET", "/api/v4/contacts/11223344", hal(load("contact_11223344.json")))

    event = fetcher(httpserver, fake_time).fetch(Hint("24681357"))

    assert event is not None and event.action is EventAction.UPSERT and event.facts is not None
    assert event.version == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert event.facts.starts_at == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert event.facts.state is BookingState.ACTIVE and event.facts.patient.phone == "+79161234562"
    assert amo.paths() == ["GET /api/v4/leads/24681357?with=contacts", "GET /api/v4/contacts/11223344"]
    for _, request, _ in amo.seen:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_429_html_page_without_retry_after_is_waited_out(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", too_many(), hal(load("lead_24681357.json")))
    amo.on("GET", "/api/v4/contacts/11223344", hal(load("contact_11223344.json")))

    event = fetcher(httpserver, fake_time).fetch(Hint("24681357"))

    assert event is not None and event.facts is not None and event.facts.external_id == "24681357"
    lead_calls = [at for at, request, _ in amo.seen if request.path.startswith("/api/v4/leads/")]
    assert len(lead_calls) == 2 and lead_calls[1] - lead_calls[0] == pytest.approx(1.0)


def test_a_429_that_persists_becomes_a_transient_error(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", too_many())

    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("24681357"))

    assert caught.value.transient and caught.value.status_code == 429 and caught.value.retry_after
    times = [at for at, _, _ in amo.seen]
    assert len(times) == 3 and [b - a for a, b in zip(times, times[1:], strict=False)] == pytest.approx([1.0, 2.0])


@pytest.mark.parametrize("gone", [Response("", status=204), problem(404, "Not found")], ids=["204", "404"])
def test_a_lead_amocrm_no_longer_has_is_a_delete(httpserver, fake_time, amo, gone):
    amo.on("GET", "/api/v4/leads/24681357", gone)
    event = fetcher(httpserver, fake_time).fetch(Hint("24681357", deleted=True))
    assert event == SourceEvent(EventAction.DELETE, "24681357", None, None)


def test_a_lead_marked_deleted_is_a_delete_without_reading_its_contact(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", hal({**load("lead_24681357.json"), "is_deleted": True}))
    event = fetcher(httpserver, fake_time).fetch(Hint("24681357"))
    assert event is not None and event.action is EventAction.DELETE
    assert event.version == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert amo.paths() == ["GET /api/v4/leads/24681357?with=contacts"]


def test_a_lead_in_a_status_not_mapped_is_none_and_its_contact_is_not_read(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", hal({**load("lead_24681357.json"), "status_id": 55500}))
    assert fetcher(httpserver, fake_time).fetch(Hint("24681357")) is None
    assert len(amo.seen) == 1


def test_a_contact_gone_leaves_the_booking_without_a_patient(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", hal(load("lead_24681357.json")))
    amo.on("GET", "/api/v4/contacts/11223344", Response("", status=204))
    event = fetcher(httpserver, fake_time).fetch(Hint("24681357"))
    assert event is not None and event.facts is not None and event.facts.patient.phone is None


@pytest.mark.parametrize(("answer", "transient"), [
    (problem(403, "Forbidden", detail="Смирнов 79161234562"), False),
    (problem(402, "Payment Required"), False),
    (Response("<html>Bad gateway</html>", status=502, content_type="text/html"), True),
    (Response("<html>proxy page</html>", status=200, content_type="text/html"), True),
], ids=["403", "402", "502", "200 not json"])
def test_failures_say_whether_to_try_again_and_hold_no_patient_data(httpserver, fake_time, amo, answer, transient):
    amo.on("GET", "/api/v4/leads/24681357", answer)
    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("24681357"))
    assert caught.value.transient is transient
    message = str(caught.value)
    assert message.startswith("amocrm: lead: HTTP") and TOKEN not in message
    assert not any(bit in message for bit in PATIENT_BITS)


def test_a_refused_long_lived_token_is_a_refusal_after_one_try(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads/24681357", problem(401, "Unauthorized"))
    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("24681357"))
    assert not caught.value.transient and caught.value.status_code == 401 and len(amo.seen) == 1


class RotatingTokens:
    """A provider whose first token the stand-in refuses: the client asks it once for another."""

    def __init__(self) -> None:
        self.after: list[str] = []

    def bearer(self) -> str:
        return "old-access"

    def refreshed(self, after_401: str) -> str:
        self.after.append(after_401)
        return "new-access"


def test_a_401_refreshes_the_token_once_and_asks_again(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/contacts/11223344", problem(401, "Unauthorized"), hal(load("contact_11223344.json")))
    tokens = RotatingTokens()
    contact = api(httpserver, fake_time, tokens).contact("11223344")
    assert contact is not None and contact["id"] == 11223344 and tokens.after == ["old-access"]
    assert [r.headers["Authorization"] for _, r, _ in amo.seen] == ["Bearer old-access", "Bearer new-access"]


def test_an_id_that_is_no_amocrm_id_never_reaches_the_wire(httpserver, fake_time, amo):
    with pytest.raises(CrmError):
        fetcher(httpserver, fake_time).fetch(Hint("../account"))
    assert amo.seen == []


# --- the rate limit ---------------------------------------------------------------------------------------------


def test_requests_to_one_account_are_at_most_seven_a_second(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/contacts/11223344", hal(load("contact_11223344.json")))
    client = api(httpserver, fake_time)
    for _ in range(15):
        client.contact("11223344")
    times = [at for at, _, _ in amo.seen]
    assert len(times) == 15
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) == pytest.approx(MIN_INTERVAL)
    assert times[7] - times[0] == pytest.approx(1.0)  # the 8th request waits for the next second
    assert MIN_INTERVAL >= 1 / 7


# --- the listing for reconciliation -----------------------------------------------------------------------------


def listed(*pairs: tuple[int, int], more: bool) -> Response:
    body = {"_page": 1, "_links": {"self": {"href": "https://clinic.amocrm.ru/api/v4/leads"}},
            "_embedded": {"leads": [{"id": lead_id, "updated_at": at, "status_id": 55501} for lead_id, at in pairs]}}
    if more:
        body["_links"]["next"] = {"href": "https://clinic.amocrm.ru/api/v4/leads?page=2"}
    return hal(body)


SINCE, UNTIL = datetime(2026, 11, 27, 8, 0, tzinfo=UTC), datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_the_listing_follows_pages_until_a_short_one(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads", listed((1, 1795766400), (2, 1795766460), more=True),
           listed((3, 1795769999), more=True))

    changed = list(api(httpserver, fake_time).changed_leads(SINCE, UNTIL, limit=2))

    assert changed == [("1", datetime(2026, 11, 27, 8, 0, tzinfo=UTC)), ("2", datetime(2026, 11, 27, 8, 1, tzinfo=UTC)),
                       ("3", datetime(2026, 11, 27, 8, 59, 59, tzinfo=UTC))]
    queries = [request.args.to_dict() for _, request, _ in amo.seen]
    assert queries == [{"filter[updated_at][from]": "1795766400", "filter[updated_at][to]": "1795770000",
                        "order[updated_at]": "asc", "page": str(page), "limit": "2"} for page in (1, 2)]


def test_the_listing_stops_without_a_next_link_and_keeps_to_the_window(httpserver, fake_time, amo):
    # an inclusive `to` may bring a lead changed at `until` itself: it belongs to the next window
    amo.on("GET", "/api/v4/leads", listed((1, 1795766400), (2, 1795770000), more=False))
    assert list(api(httpserver, fake_time).changed_leads(SINCE, UNTIL, limit=2)) == [
        ("1", datetime(2026, 11, 27, 8, 0, tzinfo=UTC))]
    assert len(amo.seen) == 1


def test_an_empty_listing_is_a_204(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads", Response("", status=204))
    assert list(fetcher(httpserver, fake_time).changed(SINCE, UNTIL)) == []


def test_a_listing_that_never_ends_is_cut_short_as_transient(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/leads", listed((1, 1795766400), more=True))
    with pytest.raises(CrmError) as caught:
        list(api(httpserver, fake_time).changed_leads(SINCE, UNTIL, limit=1, max_pages=3))
    assert caught.value.transient and len(amo.seen) == 3


def test_a_changed_contact_stands_for_its_newest_leads(httpserver, fake_time, amo):
    contacts = {"_page": 1, "_embedded": {"contacts": [
        {"id": 11223344, "updated_at": 1795766460,  # changed in the window: its newest leads, each once
         "_embedded": {"leads": [{"id": lead} for lead in range(100, 125)] + [{"id": 101}, {"id": "x"}]}},
        {"id": 11223345, "updated_at": 1795766500, "_embedded": {}},  # no leads
        {"id": 11223346, "updated_at": 1795770000, "_embedded": {"leads": [{"id": 7}]}},  # at `until`: the next
    ]}}
    amo.on("GET", "/api/v4/contacts", hal(contacts))

    found = list(api(httpserver, fake_time).changed_contact_leads(SINCE, UNTIL))

    changed = datetime(2026, 11, 27, 8, 1, tzinfo=UTC)
    assert found == [(str(lead), changed) for lead in range(124, 104, -1)]
    (_, request, _), = amo.seen
    assert request.args.to_dict() == {"filter[updated_at][from]": "1795766400", "filter[updated_at][to]": "1795770000",
                                      "order[updated_at]": "asc", "with": "leads", "page": "1", "limit": "250"}


def test_a_contacts_listing_that_is_not_a_list_is_refused(httpserver, fake_time, amo):
    amo.on("GET", "/api/v4/contacts", hal({"_embedded": {"contacts": {"id": 1}}}))
    with pytest.raises(CrmError, match="contacts list"):
        list(fetcher(httpserver, fake_time).changed_contacts(SINCE, UNTIL))


# --- write-back -------------------------------------------------------------------------------------------------


def report(text: str = "Напоминание доставлено в MAX 02.12 18:02") -> Report:
    return Report(row_id=7, tenant_id="clinic", source="amocrm", external_id="24681357", branch_id=None,
                  text=text, status="delivered", at=datetime(2026, 12, 2, 15, 2, tzinfo=UTC))


def target(httpserver, fake_time, writeback: AmocrmWriteback) -> AmocrmNoteTarget:
    return AmocrmNoteTarget.build(settings(httpserver), writeback, tokens=StaticToken(TOKEN),
                                  sleep=fake_time.sleep, clock=fake_time.clock)


def test_a_report_becomes_a_service_note_on_the_lead(httpserver, fake_time, amo):
    amo.on("POST", "/api/v4/leads/24681357/notes", hal({"_embedded": {"notes": [{"id": 42, "entity_id": 24681357}]}}))

    target(httpserver, fake_time, AmocrmWriteback()).push(report())

    (_, request, raw), = amo.seen
    assert request.method == "POST" and request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(raw) == [{"note_type": "service_message",
                                "params": {"service": "Уведомления пациентам",
                                           "text": "Напоминание доставлено в MAX 02.12 18:02"}}]
    assert NOTE_SERVICE == "Уведомления пациентам"


def test_a_report_may_also_go_into_a_lead_field(httpserver, fake_time, amo):
    amo.on("PATCH", "/api/v4/leads/24681357", hal({"id": 24681357, "updated_at": 1795766500}))

    target(httpserver, fake_time, AmocrmWriteback(note=False, field_id=801299)).push(report("Прочитано"))

    (_, request, raw), = amo.seen
    assert request.method == "PATCH"
    assert json.loads(raw) == {"custom_fields_values": [{"field_id": 801299, "values": [{"value": "Прочитано"}]}]}


def test_a_note_on_a_lead_amocrm_refuses_is_a_refusal(httpserver, fake_time, amo):
    amo.on("POST", "/api/v4/leads/24681357/notes", problem(404, "Not found"))
    with pytest.raises(CrmError) as caught:
        target(httpserver, fake_time, AmocrmWriteback()).push(report())
    assert not caught.value.transient and caught.value.status_code == 404
    assert str(caught.value) == "amocrm: lead note: HTTP 404 «Not found»"


NOTES = "/api/v4/leads/24681357/notes"


def test_a_first_push_writes_its_note_without_looking(httpserver, fake_time, amo):
    amo.on("POST", NOTES, hal({"_embedded": {"notes": [{"id": 42}]}}))
    target(httpserver, fake_time, AmocrmWriteback()).push(report())
    assert amo.paths() == [f"POST {NOTES}"]


def test_a_repeat_whose_note_is_already_there_writes_none(httpserver, fake_time, amo):
    """The first POST's answer was lost after amoCRM took the note: the repeat finds it and writes no second."""
    amo.on("GET", NOTES, hal({"_embedded": {"notes": [
        {"id": 43, "note_type": "service_message", "params": {"service": "Другое", "text": "Прочитано"}},
        {"id": 42, "note_type": "service_message",
         "params": {"service": NOTE_SERVICE, "text": "Напоминание доставлено в MAX 02.12 18:02"}}]}}))
    target(httpserver, fake_time, AmocrmWriteback()).push(replace(report(), retry=True))
    assert amo.paths() == [f"GET {NOTES}?filter%5Bnote_type%5D=service_message&order%5Bid%5D=desc&limit=50"]


@pytest.mark.parametrize("listing", [
    hal({"_embedded": {"notes": [{"id": 43, "params": {"text": "Прочитано"}}]}}),
    Response(status=204),
    problem(400, "Bad filter"),  # the filter's form is unconfirmed: a refusal is no reason to write nothing
], ids=["other notes", "no notes", "listing refused"])
def test_a_repeat_whose_note_is_not_there_writes_it(httpserver, fake_time, amo, listing):
    amo.on("GET", NOTES, listing)
    amo.on("POST", NOTES, hal({"_embedded": {"notes": [{"id": 44}]}}))
    target(httpserver, fake_time, AmocrmWriteback()).push(replace(report(), retry=True))
    assert [path.split("?")[0] for path in amo.paths()] == [f"GET {NOTES}", f"POST {NOTES}"]


def test_a_repeat_that_cannot_look_waits_and_writes_nothing_yet(httpserver, fake_time, amo):
    amo.on("GET", NOTES, problem(502, "Bad gateway"))
    with pytest.raises(CrmError) as caught:
        target(httpserver, fake_time, AmocrmWriteback()).push(replace(report(), retry=True))
    assert caught.value.transient and all(not path.startswith("POST") for path in amo.paths())


def test_a_report_of_another_source_is_refused_before_the_wire(httpserver, fake_time, amo):
    from dataclasses import replace

    with pytest.raises(CrmError):
        target(httpserver, fake_time, AmocrmWriteback()).push(replace(report(), source="yclients"))
    assert amo.seen == []


# --- the OAuth refresh call -------------------------------------------------------------------------------------


def test_refresh_grant_speaks_the_oauth_wire(httpserver, amo):
    amo.on("POST", "/oauth2/access_token", hal({"token_type": "Bearer", "expires_in": 86400,
                                               "access_token": "access-2", "refresh_token": "refresh-2"}))
    grant = refresh_grant(httpserver.url_for("/"), "id-1", "secret-1", "https://connector.example/amo", "refresh-1")
    assert (grant.access_token, grant.refresh_token, grant.expires_in) == ("access-2", "refresh-2", 86400)
    (_, _, raw), = amo.seen
    assert json.loads(raw) == {"client_id": "id-1", "client_secret": "secret-1", "grant_type": "refresh_token",
                               "refresh_token": "refresh-1", "redirect_uri": "https://connector.example/amo"}
    assert "access-2" not in repr(grant)


def test_a_revoked_refresh_token_is_a_refusal(httpserver, amo):
    amo.on("POST", "/oauth2/access_token", problem(401, "Unauthorized", hint="Token has been revoked",
                                                   detail="refresh-1"))
    with pytest.raises(CrmError) as caught:
        refresh_grant(httpserver.url_for("/"), "id-1", "secret-1", "https://connector.example/amo", "refresh-1")
    assert not caught.value.transient and caught.value.status_code == 401
    assert "Token has been revoked" in str(caught.value) and "refresh-1" not in str(caught.value)



def test_a_503_with_retry_after_is_waited_as_long_as_it_asks(httpserver, fake_time, amo):
    busy = Response("<html>busy</html>", status=503, headers={"Retry-After": "3"}, content_type="text/html")
    amo.on("GET", "/api/v4/contacts/11223344", busy, hal(load("contact_11223344.json")))
    assert api(httpserver, fake_time).contact("11223344") is not None
    times = [at for at, _, _ in amo.seen]
    assert len(times) == 2 and times[1] - times[0] == pytest.approx(3.0)


def test_a_stalled_answer_is_a_transient_error_naming_no_url(httpserver, fake_time, amo):
    def stall(request: Request) -> Response:
        time.sleep(0.6)
        return hal(load("contact_11223344.json"))

    httpserver.clear()
    httpserver.expect_request("/api/v4/contacts/11223344").respond_with_handler(stall)
    client = AmocrmApi(settings(httpserver).api_base, StaticToken(TOKEN), timeout=[1, 0.2],
                       sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(CrmError) as caught:
        client.contact("11223344")
    assert caught.value.transient and "11223344" not in str(caught.value) and TOKEN not in str(caught.value)
