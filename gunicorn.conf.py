"""gunicorn's settings for the Procfile's web line: prometheus-client's multiprocess mode, so that /metrics adds
up the webhook latency every web worker counted (connector.web.latency).

prometheus-client chooses its mode when it is first imported, so PROMETHEUS_MULTIPROC_DIR is set here, in the
master, before any worker imports the app. Unset, it is a directory of the service's own under instance/. It is
emptied when gunicorn starts: files a previous run left would add their counts to this run's. A worker that exits
is marked dead, so its files stop counting as a live process's (its counts stay in the sums).
"""

import os
from pathlib import Path

from dotenv import find_dotenv, load_dotenv

from connector.config import INSTANCE

load_dotenv(find_dotenv(usecwd=True), override=False)  # as connector.config does: the environment wins
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # set but empty would mean the working directory
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(INSTANCE / "prometheus")
METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
# prometheus-client's own files (`<type>_<pid>.db`): nothing else an operator keeps there is touched
COUNT_FILES = ("counter_*.db", "gauge_*.db", "histogram_*.db", "summary_*.db")


def on_starting(server):
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for pattern in COUNT_FILES:
        for stale in METRICS_DIR.glob(pattern):
            stale.unlink()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
