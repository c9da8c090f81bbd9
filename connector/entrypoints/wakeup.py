"""PostgreSQL's LISTEN/NOTIFY wakes the worker's intake the moment the web process stores a webhook.

The trigger on inbound_event (migration 0009) notifies `connector_intake`; a thread of the worker listens on its
own connection and brings the intake's next run forward. Without it (SQLite, or the connection lost) the intake
still runs every `WORKER_INTAKE_SECONDS`: the notification only saves the wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from connector.entrypoints.bootstrap import Runtime

log = logging.getLogger("connector.entrypoints.wakeup")

CHANNEL = "connector_intake"


class Listener:
    def __init__(self, dsn: str, on_notify: Callable[[], None]):
        self.dsn, self.on_notify = dsn, on_notify
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="intake-listener", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    while not self.stopping.is_set():
                        # Several notifications in a row are one wake-up: the intake takes all that is pending.
                        if any(True for _ in connection.notifies(timeout=1.0, stop_after=1)):
                            self.on_notify()
            except Exception as error:  # the database away: polling goes on meanwhile; listen again shortly
                log.warning("intake listener lost its connection: %s", type(error).__name__)
                self.stopping.wait(5.0)


def listen_for_intake(runtime: Runtime, on_notify: Callable[[], None]) -> Listener | None:
    """A started listener on PostgreSQL; None elsewhere."""
    url = runtime.engine.url
    if url.get_backend_name() != "postgresql":
        return None
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return Listener(dsn, on_notify).start()
