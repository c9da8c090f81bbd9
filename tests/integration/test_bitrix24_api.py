"""The Bitrix24 fetcher and comment target against a local server speaking the portal's REST wire format
(shared/docs/crm.md §2.2-2.3): a deal and its contact read and mapped, deleted deals, the limits waited out,
the reconciliation listing paged, the write-back bodies exactly as the methods take them."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from werkzeug import Request, Response

from connector.core.model import BookingState, EventAction
from connector.sources.bitrix24_api import MIN_INTERVAL, WAIT_LIMIT
from connector.sources.bitrix24_fetch import Bitrix24CommentTarget, Bitrix24Fetcher
from connector.sources.bitrix24_mapping import load_bitrix24_mapping
from connector.sources.bitrix24_settings import Bitrix24Source, Bitrix24Writeback
from connector.sources.crm import CrmError, Hint, Report
from tests.fixtures import sample

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CODE = "s3cr3tc0de"
PREFIX = f"/rest/1/{CODE}"
MSK = timezone(timedelta(hours=3))
TZ = "Europe/Moscow"


def load(name: str) -> dict:
    return json.loads(sample("bitrix24", name).read_text(encoding="utf-8"))


def mapping(**changes):
    raw = yaml.safe_load((MAPPINGS / "bitrix24.yaml").read_text(encoding="utf-8"))
    raw.update(changes)
    return load_bitrix24_mapping(raw, source="mappings/bitrix24.yaml", name="bitrix24")


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_796_000_000.0
        self.sleeps: list[float] = []
        self.calls: list[float] = []  # the clock when each request came in

    def clock(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.wall + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def settings(httpserver) -> Bitrix24Source:
    return Bitrix24Source(webhook_url=httpserver.url_for(PREFIX) + "/", application_token="t", timeout=3)


def fetcher(httpserver, fake_time, writeback=None, **mapping_changes) -> Bitrix24Fetcher:
    return Bitrix24Fetcher.build(settings(httpserver), mapping(**mapping_changes), TZ, writeback=writeback,
                                 sleep=fake_time.sleep, clock=fake_time.clock, wall=fake_time.wall_clock)


def answer(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                    content_type="application/json")


def serve(httpserver, fake_time, method: str, *responses: Response, seen: list | None = None) -> list[Request]:
    """Answer `method` with `responses` in turn, keeping each request (and when it came)."""
    requests_seen: list[Request] = [] if seen is None else seen
    queue = list(responses)

    def handle(request: Request) -> Response:
        requests_seen.append(request)
        fake_time.calls.append(fake_time.now)
        return queue.pop(0)

    httpserver.expect_request(f"{PREFIX}/{method}.json", method="POST").respond_with_handler(handle)
    return requests_seen


def body_of(request: Request) -> dict:
    return json.loads(request.get_data(as_text=True))


NOT_FOUND = answer({"error": "NOT_FOUND", "error_description": "Element not found"}, 400)


# --- fetch ----------------------------------------------------------------------------------------------------


def test_a_deal_and_its_contact_are_fetched_and_mapped(httpserver, fake_time):
    deals = serve(httpserver, fake_time, "crm.item.get", answer(load("crm_item_get_deal_4455.json")))
    contacts = serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")))

    event = fetcher(httpserver, fake_time).fetch(Hint("4455"))

    assert body_of(deals[0]) == {"entityTypeId": 2, "id": 4455, "useOriginalUfNames": "Y"}
    assert body_of(contacts[0]) == {"id": 6677}
    assert deals[0].headers["Content-Type"] == "application/json"
    assert (event.action, event.external_id) == (EventAction.UPSERT, "4455")
    assert event.version == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    assert event.facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)
    assert event.facts.state is BookingState.ACTIVE
    assert event.facts.patient.phone == "+79161234564"
    assert event.facts.doctor_name == "Иванов Сергей Петрович"
    # two requests, spaced as the portal's leaky bucket drains for good (2/s)
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(MIN_INTERVAL)


def test_a_deleted_deal_is_a_delete(httpserver, fake_time):
    serve(httpserver, fake_time, "crm.item.get", NOT_FOUND)
    event = fetcher(httpserver, fake_time).fetch(Hint("4455"))
    assert (event.action, event.external_id, event.facts) == (EventAction.DELETE, "4455", None)


def test_a_delete_hint_asks_nothing(httpserver, fake_time):
    event = fetcher(httpserver, fake_time).fetch(Hint("4455", deleted=True))
    assert (event.action, event.external_id) == (EventAction.DELETE, "4455")
    assert fake_time.calls == []


def test_a_deal_in_a_stage_the_mapping_does_not_name_reads_no_contact(httpserver, fake_time):
    deal = load("crm_item_get_deal_4455.json")
    deal["result"]["item"].update(stageId="C1:WON_OTHER", stageSemanticId="S")
    serve(httpserver, fake_time, "crm.item.get", answer(deal))
    assert fetcher(httpserver, fake_time).fetch(Hint("4455")) is None
    assert len(fake_time.calls) == 1


def test_a_deal_whose_contact_is_gone_keeps_its_facts(httpserver, fake_time):
    serve(httpserver, fake_time, "crm.item.get", answer(load("crm_item_get_deal_4455.json")))
    serve(httpserver, fake_time, "crm.contact.get", answer({"error": "", "error_description": "Not found"}, 400))
    event = fetcher(httpserver, fake_time).fetch(Hint("4455"))
    assert event.facts.patient.phone is None and event.facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)


def test_the_write_back_field_is_never_read(httpserver, fake_time):
    deal = load("crm_item_get_deal_4455.json")
    serve(httpserver, fake_time, "crm.item.get", answer(deal))
    serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")),
          answer(load("crm_contact_get_6677.json")))
    plain = fetcher(httpserver, fake_time).fetch(Hint("4455"))
    httpserver.clear()
    deal["result"]["item"]["UF_CRM_1725365197399"] = "Напоминание доставлено в MAX 02.12 18:02"
    serve(httpserver, fake_time, "crm.item.get", answer(deal))
    serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")))
    echo = fetcher(httpserver, fake_time, writeback=Bitrix24Writeback(field="UF_CRM_1725365197399")).fetch(
        Hint("4455"))
    assert echo.facts == plain.facts


# --- limits and errors ----------------------------------------------------------------------------------------


def test_query_limit_exceeded_is_waited_out_then_one_result(httpserver, fake_time):
    seen = serve(httpserver, fake_time, "crm.item.get",
                 answer({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 503),
                 answer(load("crm_item_get_deal_4455.json")))
    serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")))

    event = fetcher(httpserver, fake_time).fetch(Hint("4455"))

    assert event.external_id == "4455" and len(seen) == 2
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(WAIT_LIMIT)
    assert fake_time.calls[2] - fake_time.calls[1] == pytest.approx(MIN_INTERVAL)


def test_operation_time_limit_waits_until_the_reset(httpserver, fake_time):
    blocked = {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit",
               "time": {"operating_reset_at": fake_time.wall_clock() + 7}}
    serve(httpserver, fake_time, "crm.item.get", answer(blocked, 429), answer(load("crm_item_get_deal_4455.json")))
    serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")))
    assert fetcher(httpserver, fake_time).fetch(Hint("4455")).external_id == "4455"
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(7)


def test_a_limit_that_stays_is_a_transient_error_with_retry_after(httpserver, fake_time):
    limited = answer({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, 503)
    seen = serve(httpserver, fake_time, "crm.item.get", limited, limited, limited)
    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("4455"))
    assert len(seen) == 3
    assert caught.value.transient and caught.value.retry_after == WAIT_LIMIT and caught.value.status_code == 503
    assert str(caught.value) == "bitrix24: crm.item.get: HTTP 503 QUERY_LIMIT_EXCEEDED «Too many requests»"


def test_a_long_block_goes_back_to_the_caller_at_once(httpserver, fake_time):
    blocked = {"error": "OPERATION_TIME_LIMIT", "time": {"operating_reset_at": fake_time.wall_clock() + 300}}
    seen = serve(httpserver, fake_time, "crm.item.get", answer(blocked, 429))
    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("4455"))
    assert len(seen) == 1 and caught.value.transient and caught.value.retry_after == pytest.approx(300)


@pytest.mark.parametrize(("response", "transient"), [
    (answer({"error": "INVALID_CREDENTIALS", "error_description": "Invalid request credentials"}, 401), False),
    (answer({"error": "insufficient_scope", "error_description": "The request requires higher privileges"}, 401),
     False),
    (answer({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"}, 404), False),
    (answer({"error": "ACCESS_DENIED", "error_description": "Access denied"}, 400), False),
    (answer({"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"}, 500), True),
    (Response("<html>Bad gateway</html>", status=502, content_type="text/html"), True),
    (Response("<html>maintenance</html>", status=200, content_type="text/html"), True),
])
def test_errors_say_whether_to_try_again_and_never_show_the_webhook(httpserver, fake_time, response, transient):
    serve(httpserver, fake_time, "crm.item.get", response)
    with pytest.raises(CrmError) as caught:
        fetcher(httpserver, fake_time).fetch(Hint("4455"))
    assert caught.value.transient is transient
    assert "crm.item.get" in str(caught.value)
    assert CODE not in str(caught.value) and CODE not in repr(caught.value.__dict__)
    assert caught.value.__cause__ is None
    assert pickle.loads(pickle.dumps(caught.value)).transient is transient


def test_a_portal_that_does_not_answer_is_transient(fake_time, closed_port):
    source = Bitrix24Source(webhook_url=f"{closed_port}/rest/1/{CODE}", application_token="t", timeout=1)
    fetch = Bitrix24Fetcher.build(source, mapping(), TZ, sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(CrmError) as caught:
        fetch.fetch(Hint("4455"))
    assert caught.value.transient and CODE not in str(caught.value)


# --- the booking module ---------------------------------------------------------------------------------------

BOOKING = {"result": {"booking": {
    "id": 66, "name": "booking 1", "description": None, "resourceIds": [1],
    "datePeriod": {"from": {"timestamp": 1796281200, "timezone": "Europe/Moscow"},
                   "to": {"timestamp": 1796283000, "timezone": "Europe/Moscow"}}}}}
CLIENTS = {"result": {"bookingClient": [{"id": 1, "type": {"code": "COMPANY", "module": "crm"}},
                                        {"id": 6677, "type": {"code": "CONTACT", "module": "crm"}}]}}


def test_a_booking_of_the_booking_module_is_read_with_its_contact(httpserver, fake_time):
    bookings = serve(httpserver, fake_time, "booking.v1.booking.get", answer(BOOKING))
    clients = serve(httpserver, fake_time, "booking.v1.booking.client.list", answer(CLIENTS))
    contacts = serve(httpserver, fake_time, "crm.contact.get", answer(load("crm_contact_get_6677.json")))

    event = fetcher(httpserver, fake_time, booking_module=True).fetch(Hint("booking-66"))

    assert (body_of(bookings[0]), body_of(clients[0]), body_of(contacts[0])) == (
        {"id": 66}, {"bookingId": 66}, {"id": 6677})
    assert (event.action, event.external_id) == (EventAction.UPSERT, "booking-66")
    assert event.facts.starts_at == datetime(2026, 12, 3, 10, 0, tzinfo=MSK)
    assert event.facts.patient.phone == "+79161234564"


def test_a_deleted_booking_is_a_delete_and_an_unread_module_is_none(httpserver, fake_time):
    serve(httpserver, fake_time, "booking.v1.booking.get",
          answer({"error": 1021, "error_description": "Booking not found"}, 400))
    event = fetcher(httpserver, fake_time, booking_module=True).fetch(Hint("booking-66"))
    assert (event.action, event.external_id) == (EventAction.DELETE, "booking-66")
    assert fetcher(httpserver, fake_time).fetch(Hint("booking-66")) is None


# --- reconciliation -------------------------------------------------------------------------------------------


def test_the_listing_pages_by_next(httpserver, fake_time):
    page1 = {"result": {"items": [{"id": 10 + n, "updatedTime": "2026-11-27T11:00:00+03:00"} for n in range(50)]},
             "next": 50, "total": 51}
    page2 = {"result": {"items": [{"id": 99, "updatedTime": "2026-11-27T12:30:15+03:00"}]}, "total": 51}
    seen = serve(httpserver, fake_time, "crm.item.list", answer(page1), answer(page2))
    since, until = datetime(2026, 11, 27, 6, 0, tzinfo=UTC), datetime(2026, 11, 27, 9, 30, 15, 500, tzinfo=UTC)

    changed = list(fetcher(httpserver, fake_time).changed(since, until))

    assert len(changed) == 51
    assert changed[0] == ("10", datetime(2026, 11, 27, 8, 0, tzinfo=UTC))
    assert changed[-1] == ("99", datetime(2026, 11, 27, 9, 30, 15, tzinfo=UTC))
    assert all(moment.tzinfo is UTC for _, moment in changed)
    query = {"entityTypeId": 2, "select": ["id", "updatedTime"],
             "filter": {">=updatedTime": "2026-11-27T06:00:00+00:00", "<updatedTime": "2026-11-27T09:30:15+00:00"},
             "order": {"updatedTime": "ASC"}}
    assert [body_of(request) for request in seen] == [{**query, "start": 0}, {**query, "start": 50}]
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(MIN_INTERVAL)


def test_changed_contacts_are_listed_as_contact_hints(httpserver, fake_time):
    page = {"result": {"items": [{"id": 6677, "updatedTime": "2026-11-27T11:05:00+03:00"}]}, "total": 1}
    seen = serve(httpserver, fake_time, "crm.item.list", answer(page))
    since, until = datetime(2026, 11, 27, 6, 0, tzinfo=UTC), datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert list(fetcher(httpserver, fake_time).changed_contacts(since, until)) == [
        ("contact-6677", datetime(2026, 11, 27, 8, 5, tzinfo=UTC))]
    assert body_of(seen[0])["entityTypeId"] == 3 and body_of(seen[0])["filter"] == {
        ">=updatedTime": "2026-11-27T06:00:00+00:00", "<updatedTime": "2026-11-27T09:00:00+00:00"}


def test_a_listing_whose_next_does_not_move_on_is_refused(httpserver, fake_time):
    page = {"result": {"items": [{"id": 1, "updatedTime": "2026-11-27T11:00:00+03:00"}]}, "next": 0}
    serve(httpserver, fake_time, "crm.item.list", answer(page))
    with pytest.raises(CrmError, match="does not move on"):
        list(fetcher(httpserver, fake_time).changed(datetime(2026, 11, 27, tzinfo=UTC),
                                                    datetime(2026, 11, 28, tzinfo=UTC)))


def test_a_contact_stands_for_its_newest_deals_and_a_deal_for_itself(httpserver, fake_time):
    listing = {"result": {"items": [{"id": 4460 - n} for n in range(25)] + [{"id": "x"}, "junk"]}, "total": 27}
    seen = serve(httpserver, fake_time, "crm.item.list", answer(listing))
    portal = fetcher(httpserver, fake_time)

    assert portal.related(Hint("4455")) is None and portal.related(Hint("booking-66")) is None
    related = portal.related(Hint("contact-6677"))

    assert related == [Hint(str(4460 - n)) for n in range(20)]  # the newest twenty, each once, none malformed
    assert body_of(seen[0]) == {"entityTypeId": 2, "select": ["id"], "order": {"id": "DESC"},
                                "filter": {"=contactId": 6677}, "start": 0}


def test_a_contact_listing_without_items_is_refused(httpserver, fake_time):
    serve(httpserver, fake_time, "crm.item.list", answer({"result": {}}))
    with pytest.raises(CrmError, match="no list in result.items"):
        fetcher(httpserver, fake_time).related(Hint("contact-6677"))


# --- write-back -----------------------------------------------------------------------------------------------

REPORT = Report(row_id=7, tenant_id="clinic", source="bitrix24", external_id="4455", branch_id=None,
                text="Напоминание доставлено в MAX 02.12 18:02", status="delivered",
                at=datetime(2026, 12, 2, 15, 2, tzinfo=UTC))


def target(httpserver, fake_time, writeback: Bitrix24Writeback) -> Bitrix24CommentTarget:
    return Bitrix24CommentTarget.build(settings(httpserver), writeback, sleep=fake_time.sleep, clock=fake_time.clock)


def test_the_comment_body_is_exactly_what_the_method_takes(httpserver, fake_time):
    seen = serve(httpserver, fake_time, "crm.timeline.comment.add", answer({"result": 999}))
    target(httpserver, fake_time, Bitrix24Writeback()).push(REPORT)
    assert body_of(seen[0]) == {"fields": {"ENTITY_ID": 4455, "ENTITY_TYPE": "deal",
                                           "COMMENT": "Напоминание доставлено в MAX 02.12 18:02"}}


def test_the_field_is_written_with_its_original_name(httpserver, fake_time):
    fields = serve(httpserver, fake_time, "crm.item.update", answer({"result": {"item": {"id": 4455}}}))
    comments = serve(httpserver, fake_time, "crm.timeline.comment.add", answer({"result": 999}))
    target(httpserver, fake_time, Bitrix24Writeback(comment=True, field="UF_CRM_1725365197399")).push(REPORT)
    assert body_of(fields[0]) == {"entityTypeId": 2, "id": 4455, "useOriginalUfNames": "Y",
                                  "fields": {"UF_CRM_1725365197399": "Напоминание доставлено в MAX 02.12 18:02"}}
    assert len(comments) == 1


def test_a_repeat_whose_comment_is_already_there_writes_none(httpserver, fake_time):
    """The first comment's answer was lost after the portal took it: the repeat finds it and writes no second."""
    listed = serve(httpserver, fake_time, "crm.timeline.comment.list", answer({"result": [
        {"ID": "12", "COMMENT": "Прочитано"}, {"ID": "11", "COMMENT": "Напоминание доставлено в MAX 02.12 18:02"}]}))
    added = serve(httpserver, fake_time, "crm.timeline.comment.add", answer({"result": 999}))
    target(httpserver, fake_time, Bitrix24Writeback()).push(Report(**{**REPORT.__dict__, "retry": True}))
    assert body_of(listed[0]) == {"filter": {"ENTITY_ID": 4455, "ENTITY_TYPE": "deal"}, "select": ["ID", "COMMENT"],
                                  "order": {"ID": "DESC"}}
    assert added == []


@pytest.mark.parametrize("listing", [
    answer({"result": [{"ID": "12", "COMMENT": "Прочитано"}]}),
    answer({"result": []}),
    answer({"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found"}, 404),
], ids=["other comments", "none", "listing refused"])
def test_a_repeat_whose_comment_is_not_there_writes_it(httpserver, fake_time, listing):
    serve(httpserver, fake_time, "crm.timeline.comment.list", listing)
    added = serve(httpserver, fake_time, "crm.timeline.comment.add", answer({"result": 999}))
    target(httpserver, fake_time, Bitrix24Writeback()).push(Report(**{**REPORT.__dict__, "retry": True}))
    assert len(added) == 1


def test_a_first_push_does_not_look(httpserver, fake_time):
    listed = serve(httpserver, fake_time, "crm.timeline.comment.list", answer({"result": []}))
    added = serve(httpserver, fake_time, "crm.timeline.comment.add", answer({"result": 999}))
    target(httpserver, fake_time, Bitrix24Writeback()).push(REPORT)
    assert (len(listed), len(added)) == (0, 1)


def test_a_comment_on_a_deleted_deal_is_refused(httpserver, fake_time):
    serve(httpserver, fake_time, "crm.timeline.comment.add", NOT_FOUND)
    with pytest.raises(CrmError) as caught:
        target(httpserver, fake_time, Bitrix24Writeback()).push(REPORT)
    assert not caught.value.transient and caught.value.status_code == 400


def test_a_booking_of_the_booking_module_takes_no_write_back(httpserver, fake_time):
    with pytest.raises(CrmError, match="booking module") as caught:
        target(httpserver, fake_time, Bitrix24Writeback()).push(
            Report(**{**REPORT.__dict__, "external_id": "booking-66"}))
    assert not caught.value.transient and fake_time.calls == []


def test_requests_to_one_portal_are_spaced(httpserver, fake_time):
    serve(httpserver, fake_time, "crm.timeline.comment.add", *[answer({"result": n}) for n in range(4)])
    push = target(httpserver, fake_time, Bitrix24Writeback())
    for _ in range(4):
        push.push(REPORT)
    gaps = [later - earlier for earlier, later in zip(fake_time.calls, fake_time.calls[1:], strict=False)]
    assert gaps == [pytest.approx(MIN_INTERVAL)] * 3
