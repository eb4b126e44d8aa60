"""Randomised stress: producers and consumers with random cancels and deadlines.

Invariants checked after every run: every item was consumed exactly once or
was never put (a cancelled put adds nothing, a cancelled get loses nothing),
no lock is left held, and no thread is left running.
"""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threadpatch import (
    Empty,
    Lock,
    Queue,
    Semaphore,
    SimpleQueue,
    ThreadCancelled,
    ThreadGroup,
    ignore_after,
    spawn,
)

SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _run_pipeline(seed: int, maxsize: int, producers: int, consumers: int, simple: bool) -> None:
    rng = random.Random(seed)
    q: Queue[int] | SimpleQueue[int] = SimpleQueue() if simple else Queue(maxsize=maxsize)
    lock = Lock()
    put_ok: list[int] = []  # items whose put returned
    got: list[int] = []
    record = threading.Lock()  # native: bookkeeping of the test itself
    per_producer = 60

    def produce(base: int, deadline: float) -> None:
        with ignore_after(deadline):
            for i in range(base, base + per_producer):
                q.put(i)
                with record:
                    put_ok.append(i)

    def consume(deadline: float) -> None:
        with ignore_after(deadline):
            while True:
                item = q.get()
                with lock:  # a cancellable lock held around the bookkeeping
                    with record:
                        got.append(item)

    threads = []
    for p in range(producers):
        threads.append(spawn(produce, p * 1000, rng.uniform(0.001, 0.2)))
    for _ in range(consumers):
        threads.append(spawn(consume, rng.uniform(0.001, 0.2)))
    for t in rng.sample(threads, k=rng.randrange(len(threads))):
        t.cancel(blocking=False)
    for t in threads:
        assert t.wait(10), "a thread never finished"
        assert t.exception is None or isinstance(t.exception, ThreadCancelled)

    # Drain what is left: nothing is lost and nothing appears twice.
    left = []
    while True:
        try:
            left.append(q.get_nowait())
        except Empty:
            break
    assert not lock.locked()
    assert len(got) == len(set(got))
    consumed = set(got) | set(left)
    assert len(consumed) == len(got) + len(left)
    # A put either returned (and its item is consumed) or added nothing.
    assert consumed == set(put_ok)


@SETTINGS
@given(
    seed=st.integers(0, 2**32),
    maxsize=st.integers(1, 8),
    producers=st.integers(1, 4),
    consumers=st.integers(1, 4),
    simple=st.booleans(),
)
def test_queue_pipeline_with_random_cancels(
    seed: int, maxsize: int, producers: int, consumers: int, simple: bool
) -> None:
    _run_pipeline(seed, maxsize, producers, consumers, simple)


@SETTINGS
@given(seed=st.integers(0, 2**32), workers=st.integers(2, 6), permits=st.integers(1, 3))
def test_semaphore_and_lock_counts_survive_random_cancels(
    seed: int, workers: int, permits: int
) -> None:
    rng = random.Random(seed)
    sem, lock = Semaphore(permits), Lock()
    inside = [0]
    peak = [0]

    def worker(deadline: float) -> None:
        with ignore_after(deadline):
            for _ in range(50):
                with sem:
                    with lock:
                        inside[0] += 1
                        peak[0] = max(peak[0], inside[0])
                    with lock:
                        inside[0] -= 1

    with ThreadGroup(wait=all) as g:
        threads = [g.spawn(worker, rng.uniform(0.001, 0.05)) for _ in range(workers)]
        for t in rng.sample(threads, k=rng.randrange(workers)):
            t.cancel(blocking=False)
    assert peak[0] <= permits
    assert inside[0] == 0
    assert not lock.locked()
    assert sem._value == permits
    assert sem.statistics().waiting == 0


@pytest.mark.parametrize("seed", range(3))
def test_lock_mutual_exclusion_under_cancels(seed: int) -> None:
    rng = random.Random(seed)
    lock, counter = Lock(), [0]

    def work() -> None:
        for _ in range(500):
            with lock:
                value = counter[0]
                counter[0] = value + 1

    threads = [spawn(work) for _ in range(4)]
    victims = rng.sample(threads, k=2)
    for t in victims:
        t.cancel(blocking=False)
    for t in threads:
        assert t.wait(10)
    done = sum(1 for t in threads if not t.cancelled)
    assert counter[0] >= done * 500
    assert not lock.locked()
