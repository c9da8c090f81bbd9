"""The batches of one dispatch run, as a stream the send window asks for more of (connector.usecases.window):
each claimed and prepared when asked, on a ledger thread, while the last batch's calls are in flight; and which
claimed jobs are still held, so that a write that must wait renews their leases."""

from __future__ import annotations

import threading
from collections.abc import Callable

from connector.usecases.sending import Send, Sent


class BatchStream:
    def __init__(self, *, claim: Callable[[], list[int]], prepare: Callable[[list[int]], list[Send]],
                 max_batches: int | None = None):
        """`claim` leases the next due jobs (none: nothing is due); `prepare` makes their sends (and releases
        them itself if it breaks); at most `max_batches` (None: until nothing is due)."""
        self.claim, self.prepare, self.left = claim, prepare, max_batches
        self.claimed = 0
        self.held: set[int] = set()  # claimed and not yet recorded
        self.lock = threading.Lock()  # the claim and the recorder run on two threads

    def next_batch(self) -> list[Send]:
        """The next batch's sends; empty when nothing is due. A batch whose jobs all finished or wait (nothing to
        send) is passed over for the next."""
        while self.left is None or self.left > 0:
            if self.left is not None:
                self.left -= 1
            ids = self.claim()
            if not ids:
                return []
            self.claimed += len(ids)
            sends = self.prepare(ids)
            if sends:
                with self.lock:
                    self.held.update(send.job_id for send in sends)
                return sends
        return []

    def in_flight(self, done: list[Sent]) -> list[int]:
        """The jobs still held once `done` is recorded, with `done`'s own (their leases are renewed if the
        write must wait)."""
        answered = {sent.send.job_id for sent in done}
        with self.lock:
            self.held -= answered
            return sorted(self.held | answered)
