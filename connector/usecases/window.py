"""The send window of one worker pass: calls are started in groups, never more than `size` started and not yet
recorded, so a worker killed mid-pass leaves at most that many attempts whose outcome is unknown.

Each group is marked started (one UPDATE of `started_at`) just before the pool takes it, and the window is
refilled when a quarter of it is free (at half, a 100 ms provider lost a fifth of the throughput). The answers
that came back are written first (a refill writes them before it starts anything), and at the latest
`flush_after` seconds after they came. No database transaction is open while a call is in flight: `start` and
`record` each open and commit their own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Generic, TypeVar

from connector.store.db import unreachable

log = logging.getLogger("connector.usecases.window")

S = TypeVar("S")  # a send
R = TypeVar("R")  # its answer

RECORD_EVERY = 100  # answers written per transaction at most


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
    answers), and what `more` gives (the next batch, asked for while the last window of this one is still in
    flight, so the pool never waits for it; an empty batch: nothing more). Raises PassFailedError when `start`,
    `record` or `more` failed, after the calls in flight have ended."""
    pending, running, done = deque(sends), set[Future[R]](), list[R]()
    oldest = 0.0  # when the oldest unrecorded answer came
    try:
        while pending or running or more is not None:
            if pending and len(running) + len(done) <= size - max(1, size // 4):
                record(done)  # answers held in memory first: they are what a dead worker would lose
                done = []
                group = [pending.popleft() for _ in range(min(len(pending), size - len(running)))]
                try:
                    start(group)
                except Exception:
                    pending.extendleft(reversed(group))  # not started: none of them was handed to the pool
                    raise
                running |= {submit(send) for send in group}
            if more is not None and len(pending) < size:  # asked while this window's calls are in flight
                batch = more()
                pending.extend(batch)
                if not batch:
                    more = None
                if not running:
                    continue
            finished, running = wait(running, timeout=flush_after, return_when=FIRST_COMPLETED)
            if finished and not done:
                oldest = time.monotonic()
            done += [future.result() for future in finished]
            if done and (len(done) >= RECORD_EVERY or not running or time.monotonic() - oldest >= flush_after):
                record(done)
                done = []
    except Exception as error:
        _land(running, done, record)
        raise PassFailedError(list(pending)) from error


def _land(running: set[Future[R]], done: list[R], record: Callable[[list[R]], None]) -> None:
    """The pass broke: the calls in flight still end, and their answers are recorded (record retries a
    database that went away) before the pass gives up."""
    done = done + [future.result() for future in running]
    try:
        record(done)
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
