"""Who is looking at the status pages, and what they may do there.

Staff sign in with a login and a password (`connector.web.signin`); the session is Flask's signed cookie, and it
holds five keys, which tests may also set with `client.session_transaction()`:

- `staff_login`: the login of a `StaffUser` in `Runtime.staff` (looked up on every request, so a user removed
  from the tenants file is signed out at the next deploy);
- `signed_in_at`: when they signed in (POSIX seconds); the session ends `Settings.session_max` after it;
- `seen_at`: their last request (POSIX seconds); the session ends `Settings.session_idle` after it. Each request
  refreshes it;
- `credentials`: a keyed digest of the user's password hash (`credentials_mark`), so a password changed in the
  tenants file (or CONNECTOR_STATUS_PASSWORD) ends every session signed in with the old one at the next deploy;
- `sid`: the session's random id; signing out writes it in `ended_session`, so a copy of the cookie (a shared
  computer, a proxy's log) signs nobody in afterwards.

Roles form a ladder (`ROLES`): a viewer reads; an operator also acts (resend, cancel, replay…); an admin also
reveals phones. A user sees only their tenants: any other tenant's page answers 404, exactly as an unknown one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Response, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from connector.store import ended_sessions
from connector.tenants import ROLES, StaffUser
from connector.web.context import current_runtime

__all__ = ["ROLES", "Staff", "credentials_mark", "current_staff", "guard", "requires", "safe_next",
           "secure_headers", "sign_in_session", "sign_out_session", "signed_in"]

LOGIN_KEY = "staff_login"
SIGNED_IN_KEY = "signed_in_at"
SEEN_KEY = "seen_at"
CREDENTIALS_KEY = "credentials"
SID_KEY = "sid"

_View = TypeVar("_View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Staff:
    login: str
    name: str  # shown in the header and written in the audit trail of actions
    role: str  # one of ROLES
    tenants: frozenset[str] | None  # None: every tenant ("*")

    def sees(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @classmethod
    def of(cls, user: StaffUser) -> Staff:
        return cls(login=user.login, name=user.name, role=user.role, tenants=user.tenants)


def current_staff() -> Staff:
    """The signed-in user of this status request (the blueprint's guard ran and set it)."""
    staff: Staff = g.staff
    return staff


def requires(role: str) -> Callable[[_View], _View]:
    """A status view only users of `role` or above may use; others get the page «Недостаточно прав» (403)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view: _View) -> _View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_staff().may(role):
                return render_template("status/error.html", title="Недостаточно прав",
                                       message="Это действие доступно другой роли; спросите администратора."), 403
            return view(*args, **kwargs)

        return cast(_View, guarded)

    return decorate


def guard() -> ResponseReturnValue | None:
    """The status blueprint's before_request: signed out → the sign-in page (a GET) or 401; a tenant the user does
    not see → 404, the same page as an unknown tenant."""
    staff = _signed_in()
    if staff is None:
        for key in (LOGIN_KEY, SIGNED_IN_KEY, SEEN_KEY, CREDENTIALS_KEY, SID_KEY):
            session.pop(key, None)
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("signin.form", next=request.full_path.rstrip("?")))
        return render_template("status/error.html", title="Нужно войти",
                               message="Сессия закончилась; войдите снова."), 401
    g.staff = staff
    session[SEEN_KEY] = _now()
    tenant_id = (request.view_args or {}).get("tenant_id")
    if tenant_id is not None and (tenant_id not in current_runtime().tenants or not staff.sees(tenant_id)):
        abort(404, f"Клиника {tenant_id!r} не настроена.")
    return None


def sign_in_session(user: StaffUser) -> None:
    """Start a fresh session for `user` (anything the cookie held before, the CSRF token too, is dropped)."""
    session.clear()
    now = _now()
    session[LOGIN_KEY] = user.login
    session[SIGNED_IN_KEY] = now
    session[SEEN_KEY] = now
    session[CREDENTIALS_KEY] = credentials_mark(user)
    session[SID_KEY] = secrets.token_hex(16)


def sign_out_session() -> None:
    """End this session here and in every copy of its cookie."""
    sid = session.get(SID_KEY)
    try:
        if isinstance(sid, str) and sid:
            runtime = current_runtime()
            now = runtime.clock()
            with runtime.sessions.begin() as db:
                ended_sessions.end(db, sid[:32], now=now, forget_before=now - runtime.settings.session_max)
    finally:
        session.clear()  # this browser is signed out even when the database could not be told


def credentials_mark(user: StaffUser) -> str:
    """What the session keeps of the user's credentials: an HMAC under the app's secret key (the cookie is signed,
    not encrypted, so nothing in it may help guess a password), changed whenever the password is."""
    secret = current_app.secret_key
    key = secret.encode() if isinstance(secret, str) else bytes(secret or b"")
    return hmac.new(key, (user.credential or user.password_hash).encode(), hashlib.sha256).hexdigest()[:32]


def safe_next(target: str | None) -> str | None:
    """`next` only when it is a path on this site: never another host (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def secure_headers(response: Response) -> Response:
    """Personal data and passwords: never cached, never framed, no referrer leaking ids, no scripts at all.

    The referrer goes to this site only: over HTTPS, Flask-WTF checks a form's Referer is this host's."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
    return response


def signed_in() -> Staff | None:
    """The user this request's session signs in, if it is still valid (anywhere; the guard uses it)."""
    return _signed_in()


def _signed_in() -> Staff | None:
    login = session.get(LOGIN_KEY)
    if not isinstance(login, str):
        return None
    runtime = current_runtime()
    user = runtime.staff.get(login)
    signed_in_at, seen_at = session.get(SIGNED_IN_KEY), session.get(SEEN_KEY)
    if user is None or not isinstance(signed_in_at, (int, float)) or not isinstance(seen_at, (int, float)):
        return None
    mark = session.get(CREDENTIALS_KEY)
    if not isinstance(mark, str) or not hmac.compare_digest(mark, credentials_mark(user)):
        return None  # signed in with a password that is no longer this user's
    sid = session.get(SID_KEY)
    if not isinstance(sid, str) or not sid:
        return None
    now = _now()
    settings = runtime.settings
    idle, held = now - seen_at, now - signed_in_at
    if idle > settings.session_idle.total_seconds() or held > settings.session_max.total_seconds():
        return None
    with runtime.sessions() as db:
        if ended_sessions.has_ended(db, sid[:32]):
            return None  # signed out: this is a copy of the cookie
    return Staff.of(user)


def _now() -> float:
    clock: Callable[[], datetime] = current_runtime().clock
    return clock().timestamp()
