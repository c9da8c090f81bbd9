"""YclientsApi against a local HTTP server that speaks YCLIENTS' wire format (docs/yclients.md §2, §3.1, §3.7)."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from werkzeug import Request, Response

from connector.sources.yclients_api import MIN_INTERVAL, YclientsApi, YclientsApiError
from tests.fixtures import sample

COMPANY = 512345
PARTNER, USER = "partner-tok-0123456789", "user-tok-abcdef987654"
MSK = timezone(timedelta(hours=3))
AFTER = datetime(2026, 11, 27, 9, 0, tzinfo=MSK)
BEFORE = datetime(2026, 11, 27, 12, 30, 15, tzinfo=MSK)
PATIENT_BITS = ("Смирнов", "79161234560", "smirnov@example.com", "ЭКГ")


def load(name: str) -> dict:
    return json.loads(sample("yclients", name).read_text(encoding="utf-8"))


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.calls: list[float] = []  # the clock when each request went out

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def api(httpserver, fake_time: FakeTime, **config) -> YclientsApi:
    base = {"base_url": httpserver.url_for("/api/v1"), "partner_token": PARTNER, "user_token": USER,
            "timeout": 3}
    return YclientsApi({**base, **config}, sleep=fake_time.sleep, clock=fake_time.clock)


def answer(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers,
                    content_type="application/json")


def recorder(seen: list[Request], fake_time: FakeTime, *responses: Response):
    """A handler answering with `responses` in turn, keeping each request (and when it came) for the test."""
    queue = list(responses)

    def handle(request: Request) -> Response:
        seen.append(request)
        fake_time.calls.append(fake_time.now)
        return queue.pop(0)

    return handle


def assert_headers(request: Request, authorization: str = f"Bearer {PARTNER}, User {USER}") -> None:
    assert request.headers["Authorization"] == authorization
    assert request.headers["Accept"] == "application/vnd.yclients.v2+json"
    assert request.headers["Content-Type"] == "application/json"


def records_query(page: int, count: int) -> dict[str, str]:
    return {"changed_after": "2026-11-27T09:00:00+03:00", "changed_before": "2026-11-27T12:30:15+03:00",
            "with_deleted": "1", "page": str(page), "count": str(count)}


def test_two_pages_then_stop_at_total_count(httpserver, fake_time):
    page1 = load("records_list_page1.json")
    first = page1["data"][0]
    second = copy.deepcopy(first) | {"id": 987654322, "deleted": True,
                                     "last_change_date": "2026-11-27T12:05:00+0300"}
    page2 = {"success": True, "data": [second], "meta": {"page": 2, "total_count": 2}}
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}", method="GET").respond_with_handler(
        recorder(seen, fake_time, answer(page1), answer(page2)))

    records = list(api(httpserver, fake_time).changed_records(
        str(COMPANY), changed_after=AFTER, changed_before=BEFORE, page_size=1))

    assert [(r["id"], r["deleted"]) for r in records] == [(987654321, False), (987654322, True)]
    assert records[0] == first
    assert [r.args.to_dict() for r in seen] == [records_query(1, 1), records_query(2, 1)]
    for request in seen:
        assert_headers(request)
    # total_count 2 reached after page 2 (of one record each): no third request, and the pages came ≥ 0.3 s apart
    assert len(seen) == 2
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(MIN_INTERVAL)
    assert MIN_INTERVAL >= 0.2


def test_without_total_count_the_listing_goes_on_until_an_empty_page(httpserver, fake_time):
    # A short page proves nothing when the server may cap `count`: only an empty one ends an uncounted list.
    body = load("records_list_page1.json") | {"meta": []}
    empty = {"success": True, "data": [], "meta": []}
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(
        recorder(seen, fake_time, answer(body), answer(empty)))

    records = list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert [r["id"] for r in records] == [987654321]
    # page 1 brought one record where 200 were asked: that is the server's page size from then on
    assert [r.args.to_dict() for r in seen] == [records_query(1, 200), records_query(2, 1)]


class CappingYclients:
    """GET /records: `total` records, at most `cap` a page whatever `count` asks; `offset_by` says how a page's
    start is computed: from the page size served ("served", the likely way) or from the one asked ("asked")."""

    def __init__(self, httpserver, fake_time: FakeTime, *, total: int = 120, cap: int = 50,
                 offset_by: str = "served", ignore_page: bool = False):
        template = load("records_list_page1.json")["data"][0]
        self.records = [copy.deepcopy(template) | {"id": 1000 + n} for n in range(total)]
        self.cap, self.offset_by, self.ignore_page = cap, offset_by, ignore_page
        self.seen: list[dict[str, str]] = []
        self.fake_time = fake_time
        httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        self.seen.append(request.args.to_dict())
        self.fake_time.calls.append(self.fake_time.now)
        page = 1 if self.ignore_page else int(request.args["page"])
        asked = int(request.args["count"])
        served = min(asked, self.cap)
        start = (page - 1) * (served if self.offset_by == "served" else asked)
        items = self.records[start:start + served]
        return answer({"success": True, "data": items, "meta": {"page": page, "total_count": len(self.records)}})


@pytest.mark.parametrize("offset_by", ["served", "asked"])
def test_a_server_that_caps_count_is_paged_until_total_count(httpserver, fake_time, offset_by):
    server = CappingYclients(httpserver, fake_time, total=120, cap=50, offset_by=offset_by)

    records = list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert [r["id"] for r in records] == [1000 + n for n in range(120)]
    # after the first short page the client asks for what the server serves, so both ways of counting agree
    assert [(q["page"], q["count"]) for q in server.seen] == [("1", "200"), ("2", "50"), ("3", "50")]


def test_a_server_that_ignores_page_stops_the_listing_with_an_error(httpserver, fake_time):
    server = CappingYclients(httpserver, fake_time, total=120, cap=50, ignore_page=True)

    records = api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE)
    read = []
    with pytest.raises(YclientsApiError, match="repeats") as caught:
        for item in records:
            read.append(item["id"])

    assert len(read) == 50 and len(server.seen) == 2  # one page more, then the client saw nothing new came
    assert "50 of 120" in str(caught.value)


def test_the_pages_of_one_listing_are_capped(httpserver, fake_time):
    server = CappingYclients(httpserver, fake_time, total=500, cap=50)

    with pytest.raises(YclientsApiError, match="3 pages") as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE,
                                                        max_pages=3))

    assert len(server.seen) == 3
    assert "150 of 500" in str(caught.value)


def test_an_empty_page_ends_the_listing_even_short_of_total_count(httpserver, fake_time):
    # total_count may count records deleted while we paged: an empty page is the server saying "no more"
    page1 = load("records_list_page1.json") | {"meta": {"page": 1, "total_count": 5}}
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(recorder(
        seen, fake_time, answer(page1), answer({"success": True, "data": [], "meta": {"total_count": 5}})))

    records = list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert [r["id"] for r in records] == [987654321] and len(seen) == 2


def test_not_found_on_a_list_is_an_empty_result(httpserver, fake_time):
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(recorder(
        seen, fake_time, answer({"success": False, "data": None, "meta": {"message": "Не найдено"}})))

    assert list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER,
                                                           changed_before=BEFORE)) == []
    assert len(seen) == 1
    assert_headers(seen[0])


def test_not_found_as_a_404_on_a_list_is_an_empty_result_too(httpserver, fake_time):
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_json(
        {"success": False, "data": None, "meta": {"message": "Не найдено"}}, status=404)

    assert list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER,
                                                           changed_before=BEFORE)) == []


def test_429_is_transient_with_retry_after(httpserver, fake_time):
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_response(
        answer({"success": False, "data": None, "meta": {"message": "Too many requests"}}, 429,
               {"Retry-After": "7"}))

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert caught.value.transient is True
    assert caught.value.retry_after == 7.0
    assert caught.value.status_code == 429
    assert "HTTP 429" in str(caught.value)


def test_a_429_with_retry_after_is_waited_out_and_the_page_asked_again(httpserver, fake_time):
    page1 = load("records_list_page1.json") | {"meta": {"page": 1, "total_count": 1}}
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(recorder(
        seen, fake_time, answer({"success": False, "data": None, "meta": {"message": "Too many requests"}}, 429,
                                {"Retry-After": "4"}), answer(page1)))

    records = list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert [r["id"] for r in records] == [987654321]
    assert [r.args.to_dict() for r in seen] == [records_query(1, 200), records_query(1, 200)]
    assert fake_time.calls[1] - fake_time.calls[0] == pytest.approx(4.0)  # the server's wait, not our 0.3 s


def test_a_429_with_a_near_http_date_is_waited_out(httpserver, fake_time):
    soon = datetime.now(UTC) + timedelta(seconds=3)
    page1 = load("records_list_page1.json") | {"meta": {"page": 1, "total_count": 1}}
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(recorder(
        seen, fake_time, Response("", status=429, headers={"Retry-After": soon.strftime("%a, %d %b %Y %H:%M:%S GMT")}),
        answer(page1)))

    records = list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert len(records) == 1 and len(seen) == 2
    assert 1.0 < fake_time.calls[1] - fake_time.calls[0] <= 3.0


def test_429_with_an_http_date_retry_after(httpserver, fake_time):
    later = datetime.now(UTC) + timedelta(seconds=120)
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_response(
        Response("", status=429, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}))

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert caught.value.transient is True
    assert 100 < caught.value.retry_after <= 120


def test_503_is_transient(httpserver, fake_time):
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_response(
        Response("<html>Service Unavailable</html>", status=503, content_type="text/html"))

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert caught.value.transient is True
    assert caught.value.retry_after is None
    assert str(caught.value) == "yclients: records: HTTP 503"


def test_an_error_on_page_two_comes_after_page_one(httpserver, fake_time):
    page1 = load("records_list_page1.json")
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(
        recorder(seen, fake_time, answer(page1), Response("", status=502)))

    records = api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE,
                                                         page_size=1)
    assert next(records)["id"] == 987654321
    with pytest.raises(YclientsApiError) as caught:
        next(records)
    assert caught.value.transient is True


def test_402_license_expired_is_permanent_and_names_status_and_message(httpserver, fake_time):
    message = f"Необходимо продлить лицензию в филиале с id: {COMPANY}"
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_json(
        {"success": False, "data": None, "meta": {"message": message}}, status=402)

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    error = caught.value
    assert (error.transient, error.retry_after, error.status_code) == (False, None, 402)
    assert "HTTP 402" in str(error) and message in str(error)
    assert PARTNER not in str(error) and USER not in str(error)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.transient, again.status_code) == (str(error), False, 402)


@pytest.mark.parametrize(("status", "message"), [
    (401, "Необходима авторизация"),
    (403, "Недостаточно прав"),
    (404, "Филиал не найден."),
])
def test_other_refusals_are_permanent(httpserver, fake_time, status, message):
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_json(
        {"success": False, "data": None, "meta": {"message": message, "errors": {"phone": "+79161234560"}}},
        status=status)

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert caught.value.transient is False
    assert f"HTTP {status}" in str(caught.value) and message in str(caught.value)
    assert "79161234560" not in str(caught.value)  # meta.errors may echo values: never quoted


def test_success_false_on_a_200_is_an_error_unless_not_found(httpserver, fake_time):
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_json(
        {"success": False, "data": None, "meta": {"message": "Неверный формат даты"}})

    with pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE))

    assert caught.value.transient is False
    assert "Неверный формат даты" in str(caught.value)


def test_timeout_is_transient_and_every_call_has_one(fake_time):
    class Hanging(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.timeouts: list = []

        def request(self, method, url, **kwargs):  # every verb goes through here
            self.timeouts.append(kwargs.get("timeout"))
            raise requests.ReadTimeout(f"read timed out: {url}")

    session = Hanging()
    client = YclientsApi({"partner_token": PARTNER, "timeout": [2, 9]}, session,
                         sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(YclientsApiError) as caught:
        client.company(COMPANY)

    assert caught.value.transient is True
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert session.timeouts == [(2.0, 9.0)]


def test_connection_refused_is_transient(fake_time):
    client = YclientsApi({"partner_token": PARTNER, "base_url": "http://127.0.0.1:9/api/v1", "timeout": 2},
                         sleep=fake_time.sleep, clock=fake_time.clock)
    with pytest.raises(YclientsApiError) as caught:
        client.company(COMPANY)
    assert caught.value.transient is True
    assert "ConnectionError" in str(caught.value)


def test_company_returns_data_with_partner_only_auth(httpserver, fake_time):
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/company/{COMPANY}", method="GET").respond_with_handler(
        recorder(seen, fake_time, answer(load("company.json"))))

    company = api(httpserver, fake_time, user_token="").company(COMPANY)

    assert company["timezone_name"] == "Europe/Moscow"
    assert company["title"] == "Клиника «Здоровье» на Лесной"
    assert company["address"] == "ул. Лесная, д. 5"
    assert_headers(seen[0], authorization=f"Bearer {PARTNER}")
    assert seen[0].args.to_dict() == {}


def test_company_not_found_is_an_error(httpserver, fake_time):
    httpserver.expect_request(f"/api/v1/company/{COMPANY}").respond_with_json(
        {"success": False, "data": None, "meta": {"message": "Не найдено"}}, status=404)

    with pytest.raises(YclientsApiError) as caught:
        api(httpserver, fake_time).company(COMPANY)
    assert (caught.value.transient, caught.value.status_code) == (False, 404)


def test_throttle_spaces_requests_at_most_five_per_second(httpserver, fake_time):
    seen: list[Request] = []
    httpserver.expect_request(f"/api/v1/company/{COMPANY}").respond_with_handler(
        recorder(seen, fake_time, *(answer(load("company.json")) for _ in range(6))))
    client = api(httpserver, fake_time)

    for _ in range(6):
        client.company(COMPANY)

    assert len(seen) == 6
    assert len(fake_time.sleeps) == 5  # none before the first request
    gaps = [b - a for a, b in zip(fake_time.calls, fake_time.calls[1:], strict=False)]
    assert all(gap == pytest.approx(MIN_INTERVAL) for gap in gaps)
    assert fake_time.calls[-1] - fake_time.calls[0] >= 1.0  # six requests span more than a second


def test_clients_without_injected_time_share_one_throttle():
    one, other = YclientsApi({"partner_token": PARTNER}), YclientsApi({"partner_token": "another"})
    assert one._throttle is other._throttle  # the limit is per IP, not per account


def test_nothing_of_a_patient_in_errors_or_logs(httpserver, fake_time, caplog):
    page1 = load("records_list_page1.json")
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_handler(
        recorder([], fake_time, answer(page1), answer({"success": True, "data": "oops", "meta": []})))

    with caplog.at_level("DEBUG"), pytest.raises(YclientsApiError) as caught:
        list(api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE,
                                                        page_size=1))

    text = str(caught.value) + caplog.text
    assert not [bit for bit in PATIENT_BITS + (PARTNER, USER) if bit in text]


def test_a_page_that_repeats_stops_the_listing(httpserver, fake_time):
    page = load("records_list_page1.json") | {"meta": []}
    httpserver.expect_request(f"/api/v1/records/{COMPANY}").respond_with_json(page)

    records = api(httpserver, fake_time).changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE,
                                                         page_size=1)
    with pytest.raises(YclientsApiError, match="repeats"):
        list(records)


@pytest.mark.parametrize("config", [{}, {"partner_token": ""}, {"partner_token": PARTNER, "timeout": "soon"}])
def test_bad_config_fails_when_built(config):
    with pytest.raises(ValueError):
        YclientsApi(config)


def test_bad_arguments_fail_before_any_request(fake_time):
    client = YclientsApi({"partner_token": PARTNER}, sleep=fake_time.sleep, clock=fake_time.clock)
    naive = datetime(2026, 11, 27, 9, 0)
    with pytest.raises(ValueError, match="zone"):
        next(client.changed_records(COMPANY, changed_after=naive, changed_before=BEFORE))
    with pytest.raises(ValueError, match="later"):
        next(client.changed_records(COMPANY, changed_after=BEFORE, changed_before=AFTER))
    with pytest.raises(ValueError, match="page_size"):
        next(client.changed_records(COMPANY, changed_after=AFTER, changed_before=BEFORE, page_size=0))
    for bad in ("../hooks_settings/1", "12?x=1", -5, True, ""):
        with pytest.raises(ValueError, match="company_id"):
            client.company(bad)
    assert PARTNER not in repr(client)
