"""Provider callbacks: `POST /callbacks/<provider>/<tenant>`. Each adapter checks its provider's own proof
(a signature header, or the secret in the URL); the raw body is always stored, unknown message ids too."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from connector.accounts import Accounts
from connector.channels.base import CallbackRequest
from connector.receipts import handle_callback

bp = Blueprint("callbacks", __name__)
log = logging.getLogger("connector.callbacks")


def _accounts() -> Accounts:
    from connector.web import runtime

    if "connector.accounts" not in current_app.extensions:
        current_app.extensions["connector.accounts"] = Accounts(dict(runtime().tenants))
    return current_app.extensions["connector.accounts"]


@bp.route("/callbacks/<provider>/<tenant_id>", methods=["POST", "GET"])
def receive(provider: str, tenant_id: str):
    from connector.web import runtime

    rt = runtime()
    raw = request.get_data(cache=False)[: rt.settings.max_body_bytes]
    callback = CallbackRequest(request.method, dict(request.headers), request.args.to_dict(), raw)
    try:
        with rt.sessions.begin() as session:
            answer = handle_callback(session, rt, _accounts(), provider, tenant_id, callback, rt.clock())
    except KeyError:
        return Response('{"error": "unknown_provider"}', 404, content_type="application/json")
    except SQLAlchemyError:
        log.exception("callback could not be stored", extra={"fields": {"provider": provider, "tenant": tenant_id}})
        return Response('{"error": "database_unavailable"}', 503, content_type="application/json")
    return Response(answer.body, answer.status_code, content_type=answer.content_type)
