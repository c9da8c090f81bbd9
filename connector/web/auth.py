"""Who may call the JSON API, the metrics and the health details: `Authorization: Bearer <token>`.

The JSON API takes each tenant's own tokens (`api_tokens` in the tenants file: several per tenant, so one can be
rotated without downtime), each with scopes: `read` for GET routes, `send` for routes that send or change what
is sent (a patient's opt-outs), `admin` for everything. Like the staff's roles they form a ladder: a scope grants
the ones before it (`send` reads too). CONNECTOR_API_TOKEN stays an every-tenant admin token,
and the only one /metrics and the /healthz details accept.

A tenant's token on another tenant's URL answers 404, exactly as an unknown tenant does: a token does not tell
which other clinics this service keeps. A wrong or missing token answers 401, a missing scope 403.
"""

from __future__ import annotations

import hmac

from flask import abort, request

from connector.tenants import API_SCOPES, ApiToken
from connector.web.context import current_runtime


def require_api_token() -> None:
    """The global CONNECTOR_API_TOKEN only (metrics, health details)."""
    token = _bearer()
    if not _same(token, current_runtime().settings.api_token):
        abort(401, "wrong API token")


def require_scope(tenant_id: str | None, scope: str) -> None:
    """The bearer may use `scope` on `tenant_id`'s routes (None: a route of no tenant), or the request ends here."""
    if scope not in API_SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    token = _bearer()
    runtime = current_runtime()
    if _same(token, runtime.settings.api_token):
        return
    owner: str | None = None
    granted: ApiToken | None = None
    for tenant in runtime.tenants.values():
        for candidate in tenant.api_tokens:  # every one compared: the time does not tell which matched
            if _same(token, candidate.token):
                owner, granted = tenant.id, candidate
    if granted is None:
        abort(401, "wrong API token")
    if tenant_id is None or tenant_id != owner:
        abort(404, f"no tenant {tenant_id!r} is configured")
    if not any(API_SCOPES.index(held) >= API_SCOPES.index(scope) for held in granted.scopes):
        abort(403, f"the token {granted.name!r} lacks the {scope!r} scope")


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, "send Authorization: Bearer <API token>")
    return token.strip()


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
