"""What /healthz/worker says is wrong: a worker's beat too old or never, the queue falling behind."""

from __future__ import annotations

import pytest

from connector.core.health import worker_troubles

CASES = [
    # (seconds since the freshest beat, queue lag, expected reasons) with stale after 60 s, a lag of 300 s allowed
    (5.0, 0.0, []),
    (60.0, 300.0, []),  # at the thresholds: still healthy
    (None, 0.0, ["no worker ever started"]),
    (75.2, 0.0, ["no worker has beaten for 76 s (stale after 60 s)"]),
    (60.2, 0.0, ["no worker has beaten for 61 s (stale after 60 s)"]),  # just past never reads as equal to it
    (5.0, 300.4, ["queue lag 301 s over 300 s"]),
    (None, 301.0, ["no worker ever started", "queue lag 301 s over 300 s"]),
    (3600.0, 900.0, ["no worker has beaten for 3600 s (stale after 60 s)", "queue lag 900 s over 300 s"]),
]


@pytest.mark.parametrize(("age", "lag", "expected"), CASES)
def test_worker_troubles(age, lag, expected):
    assert worker_troubles(last_beat_age=age, queue_lag=lag, stale_after=60, max_queue_lag=300) == expected
