"""Webhook doors: YCLIENTS, generic JSON, amoCRM and Bitrix24. A thin shell that maps each failure to a precise
status.

A webhook is authenticated and parsed here (pure functions: every 4xx is precise and immediate), stored as a
`pending` inbound event with its parsed facts in one INSERT, and answered `accepted`; the worker's intake
applies it (connector.usecases.intake). The answer waits on nothing but that INSERT. A CRM's webhook is thin and
may name several entities (amoCRM batches them): one pending event per entity, in one INSERT, each waiting for
the worker to fetch its entity (connector.usecases.fetching) — the CRM, which times out quickly and switches
off hooks that keep failing, is answered at once.

Every body that reaches these URLs is stored as an inbound event with its outcome, rejected ones too (of
unauthenticated ones, the first few kB: connector.usecases.refusals). Bad input of any kind is a 4xx; only a database
that cannot be reached is a 503, so the source may retry, never 200.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from connector.sources import SOURCES, NotConfigured, Source
from connector.sources.brackets import FormError, parse_form
from connector.sources.crm import Hint
from connector.sources.errors import PayloadError
from connector.sources.signatures import AuthError, check_standard_signature, check_token
from connector.store.db import unreachable
from connector.store.fetches import hint_rows
from connector.store.inbound import NOT_A_BOOKING, event_row, store_rows
from connector.store.ledger import storable
from connector.tenants import Tenant
from connector.usecases.refusals import UNAUTHENTICATED, record_refused
from connector.web.context import current_runtime

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("connector.webhooks")

_KEPT_HEADERS: tuple[str, ...] = ("Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Hook-Id",
                 "webhook-id", "webhook-timestamp")
_KEPT = frozenset(name.lower() for name in _KEPT_HEADERS)


class _Rejection(Exception):
    def __init__(self, status: int, error: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.field = status, error, message, field


@bp.post("/webhooks/<source>/<tenant_id>")
def receive(source: str, tenant_id: str):
    rt = current_runtime()
    now = rt.clock()
    raw, truncated = _read_capped(rt.settings.max_body_bytes)
    headers = {name: value for name, value in request.headers.items() if name.lower() in _KEPT}
    tenant = rt.tenants.get(tenant_id)
    try:
        if source not in SOURCES:
            raise _Rejection(404, "unknown_source", f"no webhook for source {source!r}; use one of {tuple(SOURCES)}")
        if tenant is None:
            raise _Rejection(404, "unknown_tenant", "no such tenant is configured")
        if truncated:
            raise _Rejection(413, "body_too_large", f"the body is over {rt.settings.max_body_bytes} bytes")
        spec = SOURCES[source]
        idempotency_key = _authenticate(tenant, spec, raw, now)
        if spec.hints is not None:
            rows = _hint_rows(tenant, source, spec, raw, headers, now)
        else:
            rows = [event_row(tenant_id=tenant.id, source=source, body=raw, headers=headers, now=now,
                              event=_parse(rt, tenant, source, raw), idempotency_key=idempotency_key)]
    except _Rejection as rejection:
        return _reject(rt, tenant_id, source, raw, headers, now, truncated, rejection)

    try:
        with rt.engine.begin() as connection:
            ids = store_rows(connection, rows)
    except Exception as error:
        if unreachable(error):
            log.exception("webhook could not be stored", extra=_fields(tenant_id, source, None))
            return _unavailable()
        # A value the ledger refuses is bad input: a retry would fail alike, so no 503 (see store.db).
        return _unprocessable(rt, tenant_id, source, raw, headers, now, type(error).__name__)
    # The access log already has a line per request; the intake logs what each batch applied.
    log.debug("webhook accepted", extra=_fields(tenant_id, source, ids[0]))
    answer: dict[str, object] = {"outcome": "accepted", "inbound_event_id": ids[0]}
    if len(ids) > 1:
        answer["inbound_event_ids"] = ids
    if rows[0]["parsed"] is None:
        answer["detail"] = NOT_A_BOOKING
    return jsonify(answer), 200


def _authenticate(tenant: Tenant, spec: Source, raw: bytes, now: datetime) -> str | None:
    """Return the sender's idempotency key where it gives one (a Standard Webhooks id)."""
    try:
        if spec.signed and tenant.webhook_secret:
            # Headers look names up case-insensitively, as the spec wants; it is a Mapping in all but its type.
            return check_standard_signature(tenant.webhook_secret, cast(Mapping[str, str], request.headers), raw, now)
        if spec.token_in_url:
            check_token(tenant.webhook_token, request.args.get("token"), request.headers.get("X-Connector-Token"))
    except AuthError as error:
        raise _Rejection(401, "unauthorized", str(error)) from error
    return None


def _hint_rows(tenant: Tenant, source: str, spec: Source, raw: bytes, headers: dict[str, str],
               now: datetime) -> list[dict]:
    """A CRM's form body → one pending row per entity it names (a row `ignored` when it names none)."""
    hints = read_hints(tenant, spec, raw)
    if not hints:
        return [event_row(tenant_id=tenant.id, source=source, body=raw, headers=headers, now=now, event=None)]
    return hint_rows(tenant_id=tenant.id, source=source, body=raw, headers=headers, now=now, hints=hints)


def read_hints(tenant: Tenant, spec: Source, raw: bytes) -> list[Hint]:
    """The entities a CRM's body names; a _Rejection saying precisely why not (also for a replay)."""
    assert spec.hints is not None
    try:
        body = parse_form(raw)
    except FormError as error:
        raise _Rejection(400, "malformed_form", f"the body is not a form: {error}") from None
    try:
        hints = spec.hints(body, tenant)
    except AuthError as error:
        raise _Rejection(401, "unauthorized", str(error)) from error
    except NotConfigured as error:
        raise _Rejection(404, "source_not_configured", str(error)) from error
    except PayloadError as error:
        raise _Rejection(422, "invalid_payload", str(error), getattr(error, "field", None)) from error
    except Exception as error:
        log.warning("webhook could not be parsed: %s", type(error).__name__, extra=_fields(tenant.id, "crm", None))
        raise _Rejection(422, "unprocessable", f"the body could not be read ({type(error).__name__}); "
                         "it is kept for replay") from error
    return list(dict.fromkeys(hints))  # an entity named twice in one body is fetched once


def _parse(rt, tenant: Tenant, source: str, raw: bytes):
    try:
        body = json.loads(raw)
    except RecursionError:
        raise _Rejection(400, "malformed_json", "the body is not valid JSON: nested too deep") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise _Rejection(400, "malformed_json", f"the body is not valid JSON: {error}") from None
    parse = SOURCES[source].parse
    assert parse is not None
    try:
        return parse(body, tenant, rt.mappings)
    except PayloadError as error:
        raise _Rejection(422, "invalid_payload", str(error), getattr(error, "field", None)) from error
    except Exception as error:
        # A parser bug or a body beyond its imagination: the event is kept for replay once it is fixed.
        log.warning("webhook could not be parsed: %s", type(error).__name__, extra=_fields(tenant.id, source, None))
        raise _Rejection(422, "unprocessable", f"the body could not be read ({type(error).__name__}); "
                         "it is kept for replay") from error


def _reject(rt, tenant_id, source, raw, headers, now, truncated, rejection: _Rejection):
    message = storable(rejection.message, 1000)
    try:
        with rt.sessions.begin() as session:
            inbound = record_refused(session, tenant_id=tenant_id, source=source, raw=raw, headers=headers,
                                     now=now, reason=rejection.error, message=message, truncated=truncated)
            inbound_id = inbound.id
    except SQLAlchemyError:
        log.exception("rejected webhook could not be stored", extra=_fields(tenant_id, source, None))
        return _unavailable()
    # An unknown tenant's id is the sender's word, not ours: it stays out of the log's fields.
    log.warning("webhook rejected: %s", rejection.error,
                extra=_fields(tenant_id if tenant_id in rt.tenants else "?", source, None))
    answer: dict[str, object] = {"error": rejection.error, "message": message}
    if rejection.error not in UNAUTHENTICATED:
        # A stranger learns nothing from us, not even how many events we hold.
        answer["inbound_event_id"] = inbound_id
    if rejection.field:
        answer["field"] = rejection.field
    return jsonify(answer), rejection.status


def _unprocessable(rt, tenant_id, source, raw, headers, now, what: str):
    log.warning("webhook could not be applied: %s", what, extra=_fields(tenant_id, source, None))
    rejection = _Rejection(422, "unprocessable", f"the event could not be applied ({what}); it is kept for replay")
    return _reject(rt, tenant_id, source, raw, headers, now, False, rejection)


def _read_capped(limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` bytes; a larger body is kept truncated so support can see what came."""
    data = request.stream.read(limit + 1)
    return data[:limit], len(data) > limit


def _unavailable():
    return jsonify(error="database_unavailable", message="the event could not be stored; please retry"), 503


def _fields(tenant_id: str, source: str, inbound_id: int | None) -> dict:
    fields: dict[str, object] = {"tenant": tenant_id, "source": source}
    if inbound_id is not None:
        fields.update(inbound_event=inbound_id)
    return {"fields": fields}
