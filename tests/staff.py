"""Staff users for tests, and signing in through the real sign-in form (its CSRF token included).

`make_runtime` (tests/conftest.py) gives every test runtime the built-in `admin` (role admin, every tenant) with
ADMIN_PASSWORD; `staff_runtime` makes one with the users a test names. Hashes use a cheap pbkdf2 so tests stay
fast; the sign-in checks them exactly as it checks the scrypt hashes `python -m connector hash-password` makes.
"""

from __future__ import annotations

import html
import re

from werkzeug.security import generate_password_hash

from connector.entrypoints.bootstrap import Runtime
from connector.tenants import StaffUser, Tenant

ADMIN_PASSWORD = "admin-password-0123"
PASSWORD = "staff-password-0123"  # every other test user's
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def user(login: str, role: str = "viewer", tenants: frozenset[str] | None = None, *, name: str | None = None,
         password: str = PASSWORD) -> StaffUser:
    return StaffUser(login=login, name=name or login.capitalize(), role=role, tenants=tenants,
                     password_hash=generate_password_hash(password, method="pbkdf2:sha256:1000"))


def admin() -> StaffUser:
    return user("admin", "admin", None, name="Администратор", password=ADMIN_PASSWORD)


def staff_runtime(database_url: str, staff: list[StaffUser] | None = None, tenants: list[Tenant] | None = None,
                  **settings) -> Runtime:
    """A runtime (tests/conftest.make_runtime) whose staff are `staff` (default: the built-in admin)."""
    from tests.conftest import make_runtime

    runtime = make_runtime(database_url, tenants, **settings)
    runtime.staff = {person.login: person for person in (staff if staff is not None else [admin()])}
    return runtime


def csrf_token(client, path: str = "/status/sign-in") -> str:
    """The CSRF token of this client's session, as a form on `path` carries it."""
    page = client.get(path)
    found = _CSRF.search(page.get_data(as_text=True))
    assert found, f"no csrf_token field on {path}"
    return html.unescape(found.group(1))


def sign_in(client, login: str = "admin", password: str | None = None) -> None:
    """Sign in through the form, as a browser does; fails the test unless it worked."""
    if password is None:
        password = ADMIN_PASSWORD if login == "admin" else PASSWORD
    response = client.post("/status/sign-in", data={"login": login, "password": password,
                                                    "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
