"""Signing in to and out of the status pages: `GET/POST /status/sign-in`, `POST /status/sign-out`.

One answer for an unknown login and a wrong password («Неверный логин или пароль»), in the same time: an unknown
login is checked against a dummy hash. Tries are counted in the database per login and per address
(connector.store.sign_ins), written before the password is checked, so every web worker refuses the sixth wrong
password in a minute with 429, even when several arrive at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash

from connector.core.sign_in_limit import Limit, retry_after
from connector.store import sign_ins
from connector.web.access import Staff, safe_next, secure_headers, sign_in_session, sign_out_session, signed_in
from connector.web.context import current_runtime

bp = Blueprint("signin", __name__, url_prefix="/status")
bp.after_request(secure_headers)

PER_LOGIN = Limit(failures=5, window=timedelta(minutes=1))
# Wider: a clinic's staff may share one office address behind NAT.
PER_ADDRESS = Limit(failures=20, window=timedelta(minutes=1))
WRONG = "Неверный логин или пароль"
log = logging.getLogger("connector.access")


@bp.errorhandler(SQLAlchemyError)
def _database_down(_error):
    # the limit cannot be read, so no password is checked: better a minute without sign-in than no limit
    return render_template("status/error.html", title="База недоступна",
                           message="Вход сейчас невозможен; попробуйте через минуту."), 503


@bp.get("/")
def home() -> ResponseReturnValue:
    """`/status/`: the signed-in user's first clinic, or the sign-in form."""
    staff = signed_in()
    return redirect(_home(staff) if staff is not None else url_for("signin.form"))


@bp.get("/sign-in")
def form() -> ResponseReturnValue:
    return _form()


@bp.post("/sign-in")
def submit() -> ResponseReturnValue:
    runtime = current_runtime()
    login = (request.form.get("login") or "").strip()[:64]
    password = (request.form.get("password") or "")[:1024]
    keys = (sign_ins.login_key(login), sign_ins.address_key(request.remote_addr or "unknown"))
    now = runtime.clock()
    window = max(PER_LOGIN.window, PER_ADDRESS.window)
    with runtime.sessions.begin() as db:  # counting and writing this try is one step for every web worker
        sign_ins.hold(db, keys, forget_before=now - window)
        failures = sign_ins.failures_since(db, keys, now - window)
        wait = max(retry_after(failures.get(keys[0], []), PER_LOGIN, now) or 0,
                   retry_after(failures.get(keys[1], []), PER_ADDRESS, now) or 0)
        tries = [] if wait else sign_ins.record_try(db, keys, at=now)
    if wait:
        minutes = max(1, round(wait / 60))
        log.warning("sign-in refused: too many failures, retry in %s s", wait)
        body = render_template("status/sign_in.html", title="Вход", login=login, next=_next(),
                               error=f"Слишком много неудачных попыток входа. Попробуйте через {minutes} мин.")
        return Response(body, 429, {"Retry-After": str(wait)}, content_type="text/html; charset=utf-8")
    user = runtime.staff.get(login)
    # An unknown login costs the same hash check as a known one: the time does not tell which logins exist.
    matches = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is None or not matches:  # the try stays written: it is a failure
        log.warning("sign-in failed")  # not the login: it may be a password typed in the wrong field
        return _form(login=login, error=WRONG)
    with runtime.sessions.begin() as db:
        sign_ins.succeeded(db, keys[0], tries)
    sign_in_session(user)
    log.info("signed in: %s (%s)", user.login, user.role)
    target = safe_next(_next()) or _home(Staff.of(user))
    return redirect(target)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    sign_out_session()
    return redirect(url_for("signin.form"))


def _form(*, login: str = "", error: str | None = None) -> str:
    return render_template("status/sign_in.html", title="Вход", login=login, next=_next(), error=error)


def _next() -> str | None:
    return safe_next(request.values.get("next"))


def _home(staff: Staff) -> str:
    seen = sorted(tenant_id for tenant_id in current_runtime().tenants if staff.sees(tenant_id))
    return url_for("status.overview", tenant_id=seen[0]) if seen else url_for("signin.form")


@cache
def _dummy_hash() -> str:
    return generate_password_hash("not anybody's password")
