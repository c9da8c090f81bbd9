"""Who may read the API and the metrics: `Authorization: Bearer <CONNECTOR_API_TOKEN>`."""

from __future__ import annotations

import hmac

from flask import abort, request


def require_api_token() -> None:
    from connector.web import runtime

    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, "send Authorization: Bearer <CONNECTOR_API_TOKEN>")
    if not hmac.compare_digest(token.strip().encode(), runtime().settings.api_token.encode()):
        abort(401, "wrong API token")
