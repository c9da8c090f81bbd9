"""The send window of one worker pass: calls are marked started in groups a little ahead of their turn, never
more than `size` in flight, `size // 4` marked and waiting, and `size` answered but not yet recorded, so a worker
killed mid-pass leaves at most 2¼ × `size` attempts whose outcome is unknown.

Each group is marked started (one UPDATE of `started_at`) before the pool takes any of it, and a freed slot takes
the next marked send at once: a slot that waited for a group to fill, then for its start to be written, held a
100 ms provider's throughput a quarter under its bound. Answers are
written by a recorder thread as they come, and the next batch is claimed by another, so the pool never waits
for the ledger. No database transaction is open while a call is in flight: `start`, `record` and the claim
each open and commit their own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

from connector.store.db import unreachable

log = logging.getLogger("connector.usecases.window")

S = TypeVar("S")  # a send
R = TypeVar("R")  # its answer

class PassFailedError(Exception, Generic[S]):
    """The pass broke before it started every send: those it did not start (their calls never began), and why
    (its __cause__). The answers of the calls already started were recorded before this was raised."""

    def __init__(self, unsent: list[S]):
        super().__init__(f"the pass failed with {len(unsent)} sends not started")
        self.unsent = unsent


def send_in_window(sends: Sequence[S], *, size: int, start: Callable[[list[S]], None],
                   submit: Callable[[S], Future[R]], record: Callable[[list[R]], None],
                   flush_after: float = 0.1, more: Callable[[], Sequence[S]] | None = None) -> None:
    """Send every one of `sends` (`start` marks a group started, `submit` hands one to the pool, `record` writes
    answers), and what `more` gives (the next batch; an empty one: nothing more). Raises PassFailedError when
    `start`, `record` or `more` failed, after the calls in flight have ended and their answers are recorded.

    The ledger's work runs beside the calls, never in their way, on three threads: the next group is marked
    started ahead (a few sends wait "ready", so a freed slot takes its next call at once), answers are written
    as they come (a handful per write), and the next batch is claimed and prepared while this one's calls are in
    flight. At most `size` calls are in flight, `size // 4` ready and `size` answers waiting to be written, so a
    kill leaves at most 2¼ × `size` outcomes unknown however far the writes lag."""
    window = _Window(deque(sends), size, start, submit, record, more)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="ledger") as ledger:
        try:
            window.run(ledger, flush_after)
        except Exception as error:
            window.land()
            raise PassFailedError(list(window.pending)) from error


class _Window(Generic[S, R]):
    def __init__(self, pending: deque[S], size: int, start: Callable[[list[S]], None],
                 submit: Callable[[S], Future[R]], record: Callable[[list[R]], None],
                 more: Callable[[], Sequence[S]] | None):
        self.pending, self.size, self.start, self.submit, self.record, self.more = (
            pending, size, start, submit, record, more)
        self.group_size = max(1, size // 4)
        self.ready: deque[S] = deque()  # marked started, waiting for a slot
        self.running: set[Future[R]] = set()
        self.done: list[R] = []
        self.oldest = 0.0  # when the oldest answer not yet handed to the recorder came
        self.recording: Future[None] | None = None
        self.recording_count = 0
        self.claiming: Future[Sequence[S]] | None = None
        self.starting: Future[None] | None = None
        self.group: list[S] = []  # the group being marked started

    def run(self, ledger: ThreadPoolExecutor, flush_after: float) -> None:
        while (self.pending or self.ready or self.running or self.done or self.recording or self.claiming
               or self.starting or self.more):
            self._collect()
            if self.more is not None and self.claiming is None and len(self.pending) < self.size:
                self.claiming = ledger.submit(self.more)
            if self.done and self.recording is None and self._worth_writing(flush_after):
                self.recording, self.recording_count = ledger.submit(self.record, self.done), len(self.done)
                self.done = []
            if self.pending and self.starting is None and len(self.ready) < self.group_size:
                self.group = [self.pending.popleft() for _ in range(min(len(self.pending), self.group_size))]
                self.starting = ledger.submit(self.start, self.group)
            while self.ready and self._room():
                self.running.add(self.submit(self.ready.popleft()))
            waiting: set[Future[Any]] = {*self.running, *(f for f in (self.recording, self.claiming, self.starting)
                                                          if f is not None)}
            if waiting:
                wait(waiting, timeout=flush_after, return_when=FIRST_COMPLETED)

    def _room(self) -> bool:
        """A slot for one more call: fewer than `size` in flight, and fewer than `size` answers waiting to be
        written (a write that lags holds the next calls back)."""
        return len(self.running) < self.size and len(self.done) + self.recording_count < self.size

    def _worth_writing(self, flush_after: float) -> bool:
        """A write per handful of answers, not per answer (each is a transaction of several statements), and
        none held longer than `flush_after` or once nothing else is in flight."""
        if len(self.done) >= self.group_size or not self.running:
            return True
        return time.monotonic() - self.oldest >= flush_after

    def _collect(self) -> None:
        """What finished: answers, a start (its sends are ready), a write (its error raised), a batch (its
        error raised; empty: no more)."""
        finished = {future for future in self.running if future.done()}
        self.running -= finished
        if finished and not self.done:
            self.oldest = time.monotonic()
        self.done += [future.result() for future in finished]
        if self.starting is not None and self.starting.done():
            self._take_started()
        if self.recording is not None and self.recording.done():
            recording, self.recording, self.recording_count = self.recording, None, 0
            recording.result()
        if self.claiming is not None and self.claiming.done():
            claiming, self.claiming = self.claiming, None
            batch = claiming.result()
            self.pending.extend(batch)
            if not batch:
                self.more = None

    def _take_started(self) -> None:
        """The group's start was written: its sends are ready (a start that failed: none of them is)."""
        assert self.starting is not None
        starting, group, self.starting, self.group = self.starting, self.group, None, []
        try:
            starting.result()
        except Exception:
            self.pending.extendleft(reversed(group))  # not started: none of them goes to the pool
            raise
        self.ready.extend(group)

    def land(self) -> None:
        """The pass broke: sends marked started still go (their calls may be taken for begun), a batch being
        claimed is kept for the caller to release, the calls in flight end, and their answers are recorded
        (record retries a database that went away) before it gives up."""
        if self.starting is not None:
            try:
                self.starting.exception()
                self._take_started()
            except Exception:  # its start failed: the group is back in pending, released by the caller
                pass
        self.running |= {self.submit(send) for send in self.ready}
        self.ready.clear()
        if self.claiming is not None:
            try:
                self.pending.extend(self.claiming.result())
            except Exception:  # the claim itself broke: its caller released what it had claimed
                pass
        if self.recording is not None:
            try:
                self.recording.result()
            except Exception:
                log.exception("answers of a failed pass could not be recorded")
        done = self.done + [future.result() for future in self.running]
        try:
            self.record(done)
        except Exception:  # not the database (record retries that): these jobs wait out their lease, unknown
            log.exception("answers of a failed pass could not be recorded", extra={"fields": {"answers": len(done)}})


# --- writes that must land ---------------------------------------------------------------------------------

def _backoff() -> Iterator[float]:
    """Short waits between writes the database did not take: 0.2 s doubling to 5 s."""
    delay = 0.2
    while True:
        yield delay
        delay = min(delay * 2, 5.0)


def until_landed(write: Callable[[], None], *, between: Callable[[], None],
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """`write` (one transaction) until the database takes it, `between` (best effort) before each new try;
    an error that is not the database's is raised at once (a retry would fail the same way)."""
    _retried(write, tries=None, between=between, sleep=sleep)


def tried(write: Callable[[], None], *, tries: int = 5, sleep: Callable[[float], None] = time.sleep) -> bool:
    """`write` (one transaction), a few times while the database does not take it; whether it landed."""
    return _retried(write, tries=tries, between=None, sleep=sleep)


def _retried(write: Callable[[], None], *, tries: int | None, between: Callable[[], None] | None,
             sleep: Callable[[float], None]) -> bool:
    for count, delay in enumerate(_backoff(), 1):
        try:
            write()
            return True
        except Exception as error:
            if not unreachable(error):
                raise
            log.warning("a write did not land (%s); again in %.1f s", type(error).__name__, delay)
        if tries is not None and count >= tries:
            return False
        sleep(delay)
        if between is not None:
            tried(between, tries=1, sleep=sleep)
    raise AssertionError("the backoff never ends")  # pragma: no cover - _backoff is an endless generator
