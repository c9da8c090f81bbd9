"""The per-account rate limit: evenly spaced sends, never a burst over the provider's limit."""

from __future__ import annotations

import threading

from connector.entrypoints.bootstrap import RateLimiter


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept.append(round(seconds, 6))


def test_no_limit_never_sleeps():
    fake = FakeTime()
    limiter = RateLimiter(None, fake.clock, fake.sleep)
    for _ in range(100):
        limiter.acquire()
    assert fake.slept == []


def test_ten_per_second_spaces_a_burst_by_a_tenth():
    fake = FakeTime()
    limiter = RateLimiter(10, fake.clock, fake.sleep)
    for _ in range(5):
        limiter.acquire()
    assert fake.slept == [0.1, 0.2, 0.3, 0.4]


def test_slots_are_shared_between_threads():
    fake = FakeTime()
    limiter = RateLimiter(4, fake.clock, fake.sleep)
    threads = [threading.Thread(target=limiter.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fake.slept) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_an_idle_limiter_does_not_bank_a_burst():
    fake = FakeTime()
    limiter = RateLimiter(2, fake.clock, fake.sleep)
    limiter.acquire()
    fake.now += 60
    limiter.acquire()
    limiter.acquire()
    assert fake.slept == [0.5]
