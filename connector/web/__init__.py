"""The web process: a Flask app factory wiring the blueprints to one Runtime."""

from __future__ import annotations

import logging
from typing import cast

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from connector.entrypoints.bootstrap import Runtime, build_runtime
from connector.logs import configure_logging
from connector.web import api, callbacks, health, latency, metrics, status, webhooks
from connector.web.context import RUNTIME_KEY


def create_app(runtime: Runtime | None = None) -> Flask:
    runtime = runtime or build_runtime()
    configure_logging(runtime.settings)
    app = Flask(__name__)
    cast(DefaultJSONProvider, app.json).ensure_ascii = False  # Russian stays readable in answers
    app.extensions[RUNTIME_KEY] = runtime

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(callbacks.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(status.bp)
    latency.init_app(app)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        return jsonify(error=error.name.lower().replace(" ", "_"), message=error.description), error.code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        logging.getLogger("connector.web").exception("unhandled error")
        return jsonify(error="internal_error", message="unexpected error; see the service log"), 500

    return app
