"""Who may see and do what on the status pages, through the Flask client on SQLite and PostgreSQL: sign-in and
sign-out, the session's idle and absolute expiry, a user's tenants, roles, CSRF, and the sign-in rate limit that
every web worker shares through the database."""

from __future__ import annotations

import html
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from werkzeug.security import generate_password_hash

from connector.entrypoints.bootstrap import builtin_admin
from connector.tenants import StaffUser, demo_tenant
from connector.web import create_app
from connector.web.access import credentials_mark
from tests.conftest import DEMO_TOKEN, make_runtime
from tests.fixtures import sample
from tests.intake import deliver
from tests.staff import ADMIN_PASSWORD, PASSWORD, admin, csrf_token, sign_in, staff_runtime, user

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
OTHER_TOKEN = "other-token-0123456789abcdef"
WRONG = "Неверный логин или пароль"


class Clock:
    def __init__(self, start: datetime = START):
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def two_clinics(database_url: str, staff: list | None = None, **settings):
    other = replace(demo_tenant(OTHER_TOKEN), id="other", name="Другая клиника")
    runtime = staff_runtime(database_url, staff if staff is not None else [
        admin(), user("vera", "viewer", frozenset({"demo"}), name="Вера Смотрящая"),
        user("oleg", "operator", frozenset({"demo"}), name="Олег Действующий"),
    ], [demo_tenant(DEMO_TOKEN), other], **settings)
    runtime.clock = Clock()
    return runtime


@pytest.fixture
def clinics(database_url):
    runtime = two_clinics(database_url)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def app(clinics):
    return create_app(clinics)


def event_of_booking(client, runtime, tenant: str, token: str, record_id: int) -> dict:
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    body["resource_id"] = body["data"]["id"] = record_id
    return deliver(client, runtime, f"/webhooks/yclients/{tenant}?token={token}", json=body)


def booking_of(client, runtime, tenant: str, token: str, record_id: int) -> int:
    return event_of_booking(client, runtime, tenant, token, record_id)["booking_id"]


def attempt(client, login: str, password: str):
    return client.post("/status/sign-in", data={"login": login, "password": password,
                                                "csrf_token": csrf_token(client)})


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


# --- signing in and out ---------------------------------------------------------------------------------------


def test_signed_out_a_page_sends_to_the_sign_in_form_and_back_after_it(client):
    response = client.get("/status/demo?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/status/sign-in?next=/status/demo?x%3D1"
    form = client.get(response.headers["Location"])
    page = text_of(form)
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    # a browser must send the Referer to this site: Flask-WTF requires it of a form posted over HTTPS
    assert form.headers["Referrer-Policy"] == "same-origin"
    for field in ('name="login"', 'name="password"', 'name="csrf_token"', 'name="next" value="/status/demo?x=1"'):
        assert field in page
    answer = client.post("/status/sign-in", data={"login": "admin", "password": ADMIN_PASSWORD,
                                                  "next": "/status/demo?x=1", "csrf_token": csrf_token(client)})
    assert answer.status_code == 302 and answer.headers["Location"] == "/status/demo?x=1"
    overview = client.get("/status/demo")
    assert overview.status_code == 200
    assert "Администратор" in text_of(overview) and 'action="/status/sign-out"' in text_of(overview)


def test_a_wrong_password_or_an_unknown_login_shows_the_form_again_with_the_same_words(client):
    for login, password in (("admin", "not-the-password"), ("nobody", ADMIN_PASSWORD), ("", "")):
        response = attempt(client, login, password)
        assert response.status_code == 200
        page = text_of(response)
        assert WRONG in page and 'name="password"' in page
        assert ADMIN_PASSWORD not in page and "not-the-password" not in page
    assert client.get("/status/demo").status_code == 302  # still signed out


def test_next_never_leads_to_another_site(client):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "status/demo"):
        response = client.post("/status/sign-in", data={"login": "admin", "password": ADMIN_PASSWORD,
                                                      "next": target, "csrf_token": csrf_token(client)})
        assert response.status_code == 302 and response.headers["Location"] == "/status/demo", target


def test_a_user_lands_on_their_first_clinic_and_signs_out(app):
    client = app.test_client()
    assert client.get("/status/").headers["Location"] == "/status/sign-in"
    response = attempt(client, "vera", "staff-password-0123")
    assert response.headers["Location"] == "/status/demo"
    assert client.get("/status/").headers["Location"] == "/status/demo"
    token = csrf_token(client, "/status/demo")
    assert client.post("/status/sign-out", data={"csrf_token": token}).headers["Location"] == "/status/sign-in"
    assert client.get("/status/demo").status_code == 302


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(app):
    client = app.test_client()
    attempt(client, "admin", ADMIN_PASSWORD)
    plain = client.get_cookie("connector_session")
    assert plain is not None and plain.http_only and plain.same_site == "Lax" and not plain.secure
    secure = app.test_client()
    secure.post("/status/sign-in", base_url="https://localhost", headers={"Referer": "https://localhost/"},
                data={"login": "admin", "password": ADMIN_PASSWORD,
                      "csrf_token": csrf_token_over(secure, "https://localhost")})
    cookie = secure.get_cookie("connector_session", domain="localhost")
    assert cookie is not None and cookie.secure


def csrf_token_over(client, base_url: str) -> str:
    page = client.get("/status/sign-in", base_url=base_url).get_data(as_text=True)
    return html.unescape(page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0])


def test_forwarded_https_counts_only_behind_a_configured_proxy(database_url):
    forwarded = {"X-Forwarded-Proto": "https"}
    for proxy_fix, secure in ((False, False), (True, True)):
        runtime = two_clinics(database_url, proxy_fix=proxy_fix)
        client = create_app(runtime).test_client()
        token = csrf_token(client)
        client.post("/status/sign-in", headers={**forwarded, "Referer": "https://localhost/"},
                    data={"login": "admin", "password": ADMIN_PASSWORD, "csrf_token": token})
        cookie = client.get_cookie("connector_session")
        assert cookie is not None and cookie.secure is secure, proxy_fix
        runtime.engine.dispose()


# --- the session's life -----------------------------------------------------------------------------------------


def test_a_session_ends_after_thirty_idle_minutes_but_not_while_used(app, clinics):
    client = app.test_client()
    sign_in(client)
    for _ in range(3):
        clinics.clock.now += timedelta(minutes=29)
        assert client.get("/status/demo").status_code == 200
    clinics.clock.now += timedelta(minutes=31)
    response = client.get("/status/demo")
    assert response.status_code == 302 and response.headers["Location"].startswith("/status/sign-in")
    clinics.clock.now -= timedelta(minutes=31)  # the stale cookie does not come back to life
    assert client.get("/status/demo").status_code == 302


def test_a_session_ends_twelve_hours_after_signing_in_however_busy(app, clinics):
    client = app.test_client()
    sign_in(client)
    for _ in range(int(12 * 60 / 25)):
        clinics.clock.now += timedelta(minutes=25)
        assert client.get("/status/demo").status_code == 200
    clinics.clock.now += timedelta(minutes=25)
    assert client.get("/status/demo").status_code == 302


def test_a_user_removed_from_the_staff_is_signed_out_at_once(app, clinics):
    client = app.test_client()
    sign_in(client, "vera")
    del clinics.staff["vera"]
    assert client.get("/status/demo").status_code == 302


def test_the_documented_session_keys_sign_a_test_client_in(app, clinics):
    client = app.test_client()
    with app.app_context():
        mark = credentials_mark(clinics.staff["oleg"])
    with client.session_transaction() as session:
        now = clinics.clock().timestamp()
        session.update(staff_login="oleg", signed_in_at=now, seen_at=now)
    assert client.get("/status/demo").status_code == 302  # without the credentials' mark, no session
    with client.session_transaction() as session:
        session.update(staff_login="oleg", signed_in_at=now, seen_at=now, credentials=mark)
    assert client.get("/status/demo").status_code == 302  # nor without its id
    with client.session_transaction() as session:
        session.update(staff_login="oleg", signed_in_at=now, seen_at=now, credentials=mark, sid="a-test-session")
    assert "Олег Действующий" in text_of(client.get("/status/demo"))


def test_signing_out_ends_every_copy_of_the_session_and_no_other(app, clinics):
    client, other = app.test_client(), app.test_client()
    sign_in(client, "oleg")
    sign_in(other, "oleg")  # the same user in another browser
    copy = app.test_client()
    copy.set_cookie("connector_session", client.get_cookie("connector_session").value)  # left on a shared computer
    assert copy.get("/status/demo").status_code == 200
    answer = client.post("/status/sign-out", data={"csrf_token": csrf_token(client, "/status/demo")})
    assert answer.status_code == 302
    for signed_out in (client, copy):
        gone = signed_out.get("/status/demo")
        assert gone.status_code == 302 and "/status/sign-in" in gone.headers["Location"]
    assert other.get("/status/demo").status_code == 200  # another sign-in of the same user goes on


def test_a_changed_password_ends_the_sessions_signed_in_with_the_old_one(app, clinics):
    client, other = app.test_client(), app.test_client()
    sign_in(client, "vera")
    sign_in(other, "oleg")
    clinics.staff["vera"] = user("vera", "viewer", frozenset({"demo"}), name="Вера Смотрящая", password="new-0123456")
    answer = client.get("/status/demo")
    assert answer.status_code == 302 and "/status/sign-in" in answer.headers["Location"]
    assert other.get("/status/demo").status_code == 200  # everybody else stays signed in
    assert attempt(client, "vera", PASSWORD).status_code == 200  # the old password no longer signs in
    sign_in(client, "vera", "new-0123456")
    assert client.get("/status/demo").status_code == 200


def test_the_built_in_admins_session_holds_in_every_web_process_of_one_deploy(database_url):
    """Its password hash is salted anew in each process; the session must still be good in all of them, and end
    in all of them when CONNECTOR_STATUS_PASSWORD changes."""
    runtimes = [make_runtime(database_url, secret_key="one-deploy-secret-0123456789") for _ in range(3)]
    try:
        for runtime, password in zip(runtimes, [ADMIN_PASSWORD, ADMIN_PASSWORD, "a-new-status-password"], strict=True):
            runtime.staff = {"admin": builtin_admin(password)}  # each process salts its own hash
        assert runtimes[0].staff["admin"].password_hash != runtimes[1].staff["admin"].password_hash
        apps = [create_app(runtime) for runtime in runtimes]
        with apps[0].test_client() as first:
            sign_in(first, "admin")
            cookie = first.get_cookie("connector_session")
            assert cookie is not None
            pages = []
            for app in apps[1:]:
                client = app.test_client()
                client.set_cookie("connector_session", cookie.value)
                pages.append(client.get("/status/demo").status_code)
            assert pages == [200, 302]  # the same password in the second process; a changed one in the third
    finally:
        for runtime in runtimes:
            runtime.engine.dispose()


# --- tenants and roles ------------------------------------------------------------------------------------------


def test_another_clinics_pages_and_bookings_answer_404_as_if_they_did_not_exist(app, clinics):
    client = app.test_client()
    theirs = booking_of(client, clinics, "other", OTHER_TOKEN, 5101)
    ours = booking_of(client, clinics, "demo", DEMO_TOKEN, 5102)
    sign_in(client, "vera")
    assert client.get(f"/status/demo/bookings/{ours}").status_code == 200
    unknown = text_of(client.get("/status/nowhere"))
    for path in ("/status/other", f"/status/other/bookings/{theirs}", f"/status/demo/bookings/{theirs}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Другая клиника" not in text_of(response)
    assert text_of(client.get("/status/other")) == unknown.replace("nowhere", "other")
    assert client.post("/status/other", data={"q": "5101", "csrf_token": csrf_token(client, "/status/demo")}) \
        .status_code == 404
    admin_client = app.test_client()
    sign_in(admin_client)
    assert admin_client.get(f"/status/other/bookings/{theirs}").status_code == 200  # "*": every clinic


def test_a_viewer_reads_but_cannot_act_an_operator_can(app, clinics):
    viewer, operator = app.test_client(), app.test_client()
    ours = event_of_booking(viewer, clinics, "demo", DEMO_TOKEN, 5103)["id"]
    theirs = event_of_booking(viewer, clinics, "other", OTHER_TOKEN, 5104)["id"]
    sign_in(viewer, "vera")
    sign_in(operator, "oleg")
    replay = f"/status/demo/events/{ours}/replay"  # the console's action, asked to confirm first
    assert viewer.get(f"/status/demo/events/{ours}").status_code == 200
    refused = viewer.post(replay, data={"csrf_token": csrf_token(viewer, "/status/demo")})
    assert refused.status_code == 403 and "Недостаточно прав" in text_of(refused)
    asked = operator.post(replay, data={"csrf_token": csrf_token(operator, "/status/demo")})
    assert asked.status_code == 200 and "Да, обработать заново" in text_of(asked)
    # and an operator is still held to their clinics
    elsewhere = operator.post(f"/status/other/events/{theirs}/replay",
                              data={"csrf_token": csrf_token(operator, "/status/demo")})
    assert elsewhere.status_code == 404


def test_a_form_without_its_csrf_token_is_refused(app, clinics):
    client = app.test_client()
    event = event_of_booking(client, clinics, "demo", DEMO_TOKEN, 5105)["id"]
    assert client.post("/status/sign-in", data={"login": "admin", "password": ADMIN_PASSWORD}).status_code == 400
    sign_in(client, "oleg")
    for path, data in (("/status/demo", {"q": "5105"}), (f"/status/demo/events/{event}/replay", {"confirmed": "1"}),
                       ("/status/sign-out", {})):
        response = client.post(path, data=data)
        assert response.status_code == 400, path
        assert "Форма устарела" in text_of(response)
        forged = client.post(path, data={**data, "csrf_token": "forged"})
        assert forged.status_code == 400, path
    assert client.get("/status/demo").status_code == 200  # still signed in: the sign-out was refused too


def test_machines_post_without_a_csrf_token(client):
    body = json.loads(sample("yclients", "record_create.json").read_text(encoding="utf-8"))
    assert client.post(f"/webhooks/yclients/demo?token={DEMO_TOKEN}", json=body).status_code == 200


# --- the sign-in rate limit -------------------------------------------------------------------------------------


def test_the_sixth_wrong_password_in_a_minute_is_refused_by_either_of_two_web_processes(database_url):
    first_runtime, second_runtime = two_clinics(database_url), two_clinics(database_url)
    clock = Clock()
    first_runtime.clock = second_runtime.clock = clock
    first, second = create_app(first_runtime).test_client(), create_app(second_runtime).test_client()
    try:
        for index in range(5):
            clock.now += timedelta(seconds=5)
            answer = attempt(first if index % 2 else second, "admin", f"wrong-{index}")
            assert answer.status_code == 200 and WRONG in text_of(answer), index
        for client in (first, second):
            refused = attempt(client, "admin", ADMIN_PASSWORD)  # even the right password, now
            assert refused.status_code == 429
            assert "Слишком много неудачных попыток входа" in text_of(refused)
            assert 1 <= int(refused.headers["Retry-After"]) <= 60 - 5
        # other logins from another address are not held up
        assert attempt(first, "vera", "staff-password-0123").status_code == 302
        clock.now += timedelta(seconds=60 - 20)  # the first failure leaves the window
        assert attempt(second, "admin", ADMIN_PASSWORD).status_code == 302
        # a success clears the login's count: five more wrong passwords before the next refusal
        for index in range(5):
            assert attempt(first, "admin", f"again-{index}").status_code == 200, index
        assert attempt(second, "admin", f"again-{5}").status_code == 429
    finally:
        first_runtime.engine.dispose()
        second_runtime.engine.dispose()


def test_wrong_passwords_sent_all_at_once_still_get_five_answers_and_no_more(database_url):
    """A script firing twelve guesses at once at two web processes: five are checked, seven refused. The hash is
    slow on purpose (as scrypt is), so guesses that counted the failures before any was written would all pass."""
    slow = StaffUser(login="nina", name="Нина", role="viewer", tenants=None,
                     password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:300000"))
    runtimes = [two_clinics(database_url, [slow]) for _ in range(2)]
    clients = [create_app(runtime).test_client() for runtime in runtimes]
    tokens = [csrf_token(client) for client in clients]

    def guess(index: int) -> int:
        client, token = clients[index % 2], tokens[index % 2]
        return client.post("/status/sign-in", data={"login": "nina", "password": f"guess-{index}",
                                                   "csrf_token": token}).status_code

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = sorted(pool.map(guess, range(12)))
        assert answers == [200] * 5 + [429] * 7, answers
    finally:
        for runtime in runtimes:
            runtime.engine.dispose()


def test_one_address_trying_many_logins_is_held_up_too(client, runtime):
    runtime.clock = Clock()
    for index in range(20):
        assert attempt(client, f"guess{index}", "x").status_code == 200, index
    assert attempt(client, "admin", ADMIN_PASSWORD).status_code == 429
    other_address = client.application.test_client()
    response = other_address.post(
        "/status/sign-in", environ_overrides={"REMOTE_ADDR": "10.0.0.9"},
        data={"login": "admin", "password": ADMIN_PASSWORD, "csrf_token": csrf_token(other_address)})
    assert response.status_code == 302



def test_without_the_database_nobody_signs_in_and_the_page_says_why():
    runtime = staff_runtime("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    client = create_app(runtime).test_client()
    response = client.post("/status/sign-in", data={"login": "admin", "password": ADMIN_PASSWORD,
                                                    "csrf_token": csrf_token(client)})
    assert response.status_code == 503 and "База недоступна" in text_of(response)
    assert client.get("/status/demo").status_code == 302  # not signed in
