"""The send window of one worker pass: calls are started in groups, never more than `size` in flight and `size`
answered but not yet recorded, so a worker killed mid-pass leaves at most 2 × `size` attempts whose outcome is
unknown.

Each group is marked started (one UPDATE of `started_at`) just before the pool takes it, and the window is
refilled when an eighth of it is free (at a quarter, a 100 ms provider lost a tenth of the throughput; at half,
a fifth). Answers are
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
                   flush_after: float = 0.5, more: Callable[[], Sequence[S]] | None = None) -> None:
    """Send every one of `sends` (`start` marks a group started, `submit` hands one to the pool, `record` writes
    answers), and what `more` gives (the next batch; an empty one: nothing more). Raises PassFailedError when
    `start`, `record` or `more` failed, after the calls in flight have ended and their answers are recorded.

    The ledger's work runs beside the calls, never in their way: answers are written by a recorder thread (one
    write at a time, whatever came meanwhile), and the next batch is claimed and prepared by another while this
    one's calls are in flight. At most `size` calls are in flight and at most `size` answers wait to be written,
    so a kill leaves at most 2 × `size` outcomes unknown however far the writes lag."""
    window = _Window(deque(sends), size, start, submit, record, more)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ledger") as ledger:
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
        self.running: set[Future[R]] = set()
        self.done: list[R] = []
        self.recording: Future[None] | None = None
        self.recording_count = 0
        self.claiming: Future[Sequence[S]] | None = None

    def run(self, ledger: ThreadPoolExecutor, flush_after: float) -> None:
        while self.pending or self.running or self.done or self.recording or self.claiming or self.more:
            self._collect()
            if self.more is not None and self.claiming is None and len(self.pending) < self.size:
                self.claiming = ledger.submit(self.more)
            if self.done and self.recording is None:
                self.recording, self.recording_count = ledger.submit(self.record, self.done), len(self.done)
                self.done = []
            if self.pending and self._free() >= max(1, self.size // 8):
                self._start_group()
                continue
            waiting: set[Future[Any]] = {*self.running, *(f for f in (self.recording, self.claiming) if f is not None)}
            if waiting:
                wait(waiting, timeout=flush_after, return_when=FIRST_COMPLETED)

    def _free(self) -> int:
        """Room in the window: at most `size` calls in flight, and at most `size` answers waiting to be written
        (a write that lags holds the next calls back, so a kill leaves at most 2 × `size` outcomes unknown)."""
        unwritten = len(self.done) + self.recording_count
        return min(self.size - len(self.running), 2 * self.size - len(self.running) - unwritten)

    def _collect(self) -> None:
        """What finished: answers, a write (its error raised), a batch (its error raised; empty: no more)."""
        finished = {future for future in self.running if future.done()}
        self.running -= finished
        self.done += [future.result() for future in finished]
        if self.recording is not None and self.recording.done():
            recording, self.recording, self.recording_count = self.recording, None, 0
            recording.result()
        if self.claiming is not None and self.claiming.done():
            claiming, self.claiming = self.claiming, None
            batch = claiming.result()
            self.pending.extend(batch)
            if not batch:
                self.more = None

    def _start_group(self) -> None:
        group = [self.pending.popleft() for _ in range(min(len(self.pending), self._free()))]
        try:
            self.start(group)
        except Exception:
            self.pending.extendleft(reversed(group))  # not started: none of them was handed to the pool
            raise
        self.running |= {self.submit(send) for send in group}

    def land(self) -> None:
        """The pass broke: a batch being claimed is kept for the caller to release, the calls in flight still
        end, and their answers are recorded (record retries a database that went away) before it gives up."""
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
