"""Who may read the API and the metrics: `Authorization: Bearer <CONNECTOR_API_TOKEN>`."""

from __future__ import annotations

import hmac

from flask import abort, request

from connector.web.context import current_runtime


def require_api_token() -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, "send Authorization: Bearer <CONNECTOR_API_TOKEN>")
    if not hmac.compare_digest(token.strip().encode(), current_runtime().settings.api_token.encode()):
        abort(401, "wrong API token")
