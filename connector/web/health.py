"""Liveness for load balancers and the support engineer: is the ledger reachable, are workers beating."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import Unauthorized

from connector.store import views
from connector.web.auth import require_api_token
from connector.web.context import current_runtime
from connector.web.times import utc_iso

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Anyone (a load balancer) learns whether the service is up; with the API token, support sees the
    workers, the syncs and the tenants."""
    rt = current_runtime()
    try:
        with rt.sessions() as session:
            beats = views.heartbeats(session)
            syncs = views.sync_states(session)
    except SQLAlchemyError:
        return jsonify(status="unavailable", database="unreachable"), 503
    if not _has_api_token():
        return jsonify(status="ok", database="ok")
    now = rt.clock()
    workers = [{"id": beat.worker_id, "seconds_since_beat": round((now - beat.beat_at).total_seconds()),
                "sent_total": beat.sent_total} for beat in beats]
    alive = [w for w in workers if w["seconds_since_beat"] <= rt.settings.stale_after_seconds]
    # The web answers 200 without a worker (it still takes webhooks); the field tells support the rest.
    sync = [{"tenant": state.tenant_id, "source": state.source, "read_up_to": utc_iso(state.cursor),
             "last_run_at": utc_iso(state.last_run_at), "last_error": state.last_error} for state in syncs]
    return jsonify(status="ok", database="ok", tenants=sorted(rt.tenants),
                   worker="running" if alive else "not running", workers=workers, sync=sync)


def _has_api_token() -> bool:
    try:
        require_api_token()
    except Unauthorized:
        return False
    return True
