"""Provider callbacks: `POST /callbacks/<provider>/<tenant>`. Each adapter checks its provider's own proof
(a signature header, or the secret in the URL); the raw body is always stored, unknown message ids too
(unauthenticated ones bounded: connector.usecases.refusals). Bodies over CONNECTOR_MAX_BODY_BYTES get 413, unread."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError

from connector.channels.base import CallbackRequest
from connector.entrypoints.bootstrap import Runtime
from connector.store.db import unreachable
from connector.usecases.receipts import handle_callback
from connector.usecases.refusals import record_refused
from connector.web.context import accounts as _accounts
from connector.web.context import current_runtime

bp = Blueprint("callbacks", __name__)
log = logging.getLogger("connector.callbacks")


@bp.route("/callbacks/<provider>/<tenant_id>", methods=["POST", "GET"])
def receive(provider: str, tenant_id: str) -> Response:
    rt = current_runtime()
    now = rt.clock()
    limit = rt.settings.max_body_bytes
    raw = request.stream.read(limit + 1)  # the webhooks' cap: no secret check reads more than this
    callback = CallbackRequest(request.method, dict(request.headers), request.args.to_dict(), raw[:limit])
    fields = {"fields": {"provider": provider, "tenant": tenant_id if tenant_id in rt.tenants else "?"}}
    try:
        if len(raw) > limit:
            _keep_refused(rt, tenant_id=tenant_id, provider=provider, raw=raw, now=now, reason="body_too_large",
                          message=f"the body is over {limit} bytes")
            return _json(413, "body_too_large")
        with rt.sessions.begin() as session:
            answer = handle_callback(session, callback, runtime=rt, accounts=_accounts(), tenant_id=tenant_id,
                                     provider=provider, now=now)
    except Exception as error:
        return _not_applied(rt, error, tenant_id=tenant_id, provider=provider, raw=raw, now=now, log_extra=fields)
    return Response(answer.body, answer.status_code, content_type=answer.content_type)


def _not_applied(runtime: Runtime, error: Exception, *, tenant_id: str, provider: str, raw: bytes, now: datetime,
                 log_extra: dict[str, Any]) -> Response:
    """503 while the ledger cannot be reached, so the provider retries; 422 for a report it refuses."""
    if isinstance(error, SQLAlchemyError) and unreachable(error):
        log.exception("callback could not be stored", extra=log_extra)
        return _json(503, "database_unavailable")
    # A report the ledger refuses (a NUL in an id, a value too long) fails alike on every retry: the body
    # is kept for replay in a transaction of its own, and the provider hears 422, not "retry later".
    log.warning("callback could not be applied: %s", type(error).__name__, extra=log_extra)
    try:
        _keep_refused(runtime, tenant_id=tenant_id, provider=provider, raw=raw, now=now, reason="unprocessable",
                      message=type(error).__name__)
    except SQLAlchemyError:
        log.exception("callback could not be stored", extra=log_extra)
        return _json(503, "database_unavailable")
    return _json(422, "unprocessable")


def _keep_refused(runtime: Runtime, *, tenant_id: str, provider: str, raw: bytes, now: datetime, reason: str,
                  message: str) -> None:
    with runtime.sessions.begin() as session:
        record_refused(session, tenant_id=tenant_id, source=f"callback:{provider}", raw=raw, now=now,
                       headers={}, reason=reason, message=message)


def _json(status: int, error: str) -> Response:
    return Response(f'{{"error": "{error}"}}', status, content_type="application/json")
