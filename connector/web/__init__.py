"""The web process: a Flask app factory wiring the blueprints to one Runtime."""

from __future__ import annotations

import logging
import secrets
from typing import cast

from flask import Flask, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from connector.entrypoints.bootstrap import Runtime, build_runtime
from connector.logs import configure_logging
from connector.web import api, callbacks, health, latency, metrics, signin, status, webhooks
from connector.web.context import RUNTIME_KEY

STAFF_BLUEPRINTS = ("status", "signin")  # browsers with a session and forms; every other blueprint serves machines


class _SessionCookie(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (behind a proxy: ProxyFix)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or super().get_cookie_secure(app)


def create_app(runtime: Runtime | None = None) -> Flask:
    runtime = runtime or build_runtime()
    configure_logging(runtime.settings)
    app = Flask(__name__)
    cast(DefaultJSONProvider, app.json).ensure_ascii = False  # Russian stays readable in answers
    app.extensions[RUNTIME_KEY] = runtime
    _sessions(app, runtime)

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(callbacks.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(status.bp)
    latency.init_app(app)
    app.register_blueprint(signin.bp)
    csrf = CSRFProtect(app)
    for machines in (webhooks.bp, api.bp, health.bp, callbacks.bp, metrics.bp):
        csrf.exempt(machines)

    @app.errorhandler(CSRFError)
    def _stale_form(error: CSRFError):
        if request.blueprint in STAFF_BLUEPRINTS:
            return render_template("status/error.html", title="Форма устарела",
                                   message="Обновите страницу и отправьте форму ещё раз."), 400
        return _http_error(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return jsonify(error=error.name.lower().replace(" ", "_"), message=error.description), error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        logging.getLogger("connector.web").exception("unhandled error")
        return jsonify(error="internal_error", message="unexpected error; see the service log"), 500

    return app


def _sessions(app: Flask, runtime: Runtime) -> None:
    """The staff's session cookie (connector.web.access): signed with CONNECTOR_SECRET_KEY, HttpOnly, SameSite=Lax."""
    settings = runtime.settings
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_urlsafe(32),  # load_settings shares one; a test app: its own
        SESSION_COOKIE_NAME="connector_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session (which expires on its own)
        WTF_CSRF_SSL_STRICT=True,
    )
    app.session_interface = _SessionCookie()
    if settings.proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
