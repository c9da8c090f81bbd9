"""The send window (connector.usecases.window) with a real thread pool: never more than its size in flight nor
twice its size started and unrecorded (what a kill would leave unknown), and a broken start hands back exactly
the sends it never started after recording the ones in flight."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from connector.usecases.window import PassFailedError, send_in_window, tried, until_landed


class Ledger:
    def __init__(self, fail_start_at: int | None = None):
        self.started: list[int] = []
        self.recorded: list[int] = []
        self.widest = 0
        self.starts = 0
        self.fail_start_at = fail_start_at

    def start(self, group: list[int]) -> None:
        self.starts += 1
        if self.starts == self.fail_start_at:
            raise RuntimeError("the database went away")
        self.started += group
        self.widest = max(self.widest, len(self.started) - len(self.recorded))

    def record(self, answers: list[int]) -> None:
        self.recorded += answers


@pytest.mark.parametrize(("sends", "size"), [(0, 4), (1, 4), (7, 1), (20, 2), (50, 8), (9, 32)])
def test_every_send_goes_once_and_the_window_holds(sends, size):
    ledger = Ledger()
    flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def call(n: int) -> int:
        with lock:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])
        time.sleep(0.001 * (n % 3))
        with lock:
            flight["now"] -= 1
        return n

    with ThreadPoolExecutor(2 * size) as pool:  # a pool larger than the window: the window is what holds
        send_in_window(list(range(sends)), size=size, start=ledger.start, record=ledger.record,
                       submit=lambda n: pool.submit(call, n))
    assert sorted(ledger.started) == sorted(ledger.recorded) == list(range(sends))
    assert flight["most"] <= size
    assert ledger.widest <= 2 * size  # in flight, and answered but not yet written


def test_a_broken_start_returns_the_unstarted_and_records_the_started():
    ledger = Ledger(fail_start_at=2)
    with ThreadPoolExecutor(8) as pool, pytest.raises(PassFailedError) as failed:
        send_in_window(list(range(12)), size=8, start=ledger.start, record=ledger.record,
                       submit=lambda n: pool.submit(lambda: n))
    # the first group (a quarter of the window) was marked started: all of it went, and was recorded
    assert sorted(ledger.recorded) == ledger.started == [0, 1]
    assert failed.value.unsent == list(range(2, 12)) and str(failed.value.__cause__) == "the database went away"


def test_a_write_is_tried_until_the_database_takes_it():
    from sqlalchemy.exc import OperationalError

    tries, renewals, pauses = [], [], []

    def write() -> None:
        tries.append(1)
        if len(tries) < 5:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    until_landed(write, between=lambda: renewals.append(1), sleep=pauses.append)
    assert len(tries) == 5 and len(renewals) == 4
    assert pauses == [0.2, 0.4, 0.8, 1.6]  # backing off, up to 5 s between tries
    assert tried(lambda: None) is True
    tries.clear()
    assert tried(write, tries=3, sleep=pauses.append) is False and len(tries) == 3
    with pytest.raises(ValueError):  # not the database's: a retry would fail the same way
        until_landed(lambda: (_ for _ in ()).throw(ValueError("a bug")), between=lambda: None)


@pytest.mark.parametrize(("batches", "size"), [([0], 4), ([5, 7], 2), ([3, 3, 3, 3], 8), ([40, 1, 40], 32)])
def test_the_next_batch_comes_while_the_last_window_is_in_flight(batches, size):
    ledger = Ledger()
    queue = list(batches) + [0]
    made = iter(range(10_000))
    asked_while_running: list[int] = []

    def more() -> list[int]:
        asked_while_running.append(len(ledger.started) - len(ledger.recorded))
        return [next(made) for _ in range(queue.pop(0))] if queue else []

    with ThreadPoolExecutor(size) as pool:
        send_in_window([], size=size, start=ledger.start, record=ledger.record, more=more,
                       submit=lambda n: pool.submit(lambda: (time.sleep(0.01), n)[1]))
    total = sum(batches)
    assert sorted(ledger.started) == sorted(ledger.recorded) == list(range(total))
    assert ledger.widest <= 2 * size  # in flight, and answered but not yet written
    assert queue == [] or queue == [0]  # asked until a batch came back empty
    if len(batches) > 1 and batches[0] >= size:  # the next batch was asked for with calls of the first in flight
        assert max(asked_while_running[1:]) > 0


def test_a_broken_batch_hands_back_what_was_not_started():
    ledger = Ledger()
    batches = [[0, 1, 2], [3, 4]]

    def more() -> list[int]:
        if not batches:
            raise RuntimeError("the claim failed")
        return batches.pop(0)

    with ThreadPoolExecutor(2) as pool, pytest.raises(PassFailedError) as failed:
        send_in_window([], size=2, start=ledger.start, record=ledger.record, more=more,
                       submit=lambda n: pool.submit(lambda: (time.sleep(0.01), n)[1]))
    assert sorted(ledger.recorded) == sorted(ledger.started)
    assert sorted(ledger.started + failed.value.unsent) == [0, 1, 2, 3, 4]
    assert str(failed.value.__cause__) == "the claim failed"
