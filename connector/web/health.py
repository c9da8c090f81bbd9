"""Liveness for load balancers and the support engineer: is the ledger reachable, are workers beating.

Two questions, two URLs. `/healthz` is the load balancer's: 200 while the web can store webhooks, with or without
a worker (taking the web out of rotation would lose webhooks the ledger could have kept). `/healthz/worker` is
monitoring's: 200 while a worker beats and the queue keeps up, else 503 with the reasons in plain words
(connector.core.health). Both are open; the reasons and numbers they give name no worker, tenant or patient, and
the workers' ids come only with the API token.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import Unauthorized

from connector.core.health import worker_troubles
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


@bp.get("/healthz/worker")
def healthz_worker():
    """200 `{"status": "ok"}` while a worker's beat is fresher than CONNECTOR_STALE_AFTER_SECONDS and the oldest
    due job waits no longer than HEALTH_MAX_QUEUE_LAG_SECONDS; else 503 `{"status": "unhealthy", "reasons": […]}`."""
    rt = current_runtime()
    now = rt.clock()
    try:
        with rt.sessions() as session:
            beats = views.heartbeats(session)
            oldest = views.oldest_overdue(session, now=now)
    except SQLAlchemyError:
        return jsonify(status="unhealthy", reasons=["database unreachable"]), 503
    # A beat from a host whose clock runs ahead is no beat from the future: its age is 0.
    ages = [max((now - beat.beat_at).total_seconds(), 0.0) for beat in beats]
    last_beat_age = min(ages) if ages else None
    queue_lag = (now - oldest).total_seconds() if oldest is not None else 0.0
    troubles = worker_troubles(last_beat_age=last_beat_age, queue_lag=queue_lag,
                               stale_after=rt.settings.stale_after_seconds,
                               max_queue_lag=rt.settings.health_max_queue_lag_seconds)
    answer: dict[str, object] = {
        "status": "unhealthy" if troubles else "ok",
        "seconds_since_last_beat": None if last_beat_age is None else round(last_beat_age),
        "queue_lag_seconds": round(queue_lag),
        "stale_after_seconds": rt.settings.stale_after_seconds,
        "max_queue_lag_seconds": rt.settings.health_max_queue_lag_seconds,
    }
    if troubles:
        answer["reasons"] = troubles
    if _has_api_token():
        answer["workers"] = [{"id": beat.worker_id, "seconds_since_beat": round(age)}
                             for beat, age in zip(beats, ages, strict=True)]
    return jsonify(answer), 503 if troubles else 200


def _has_api_token() -> bool:
    try:
        require_api_token()
    except Unauthorized:
        return False
    return True
