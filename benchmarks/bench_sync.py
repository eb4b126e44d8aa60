"""Locks, events and queues: threadpatch against the stdlib classes, same run."""

from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import threadpatch
from benchmarks import _harness
from benchmarks._harness import Row, Table, percentile, ratio_row
from threadpatch import _core, _sync

if TYPE_CHECKING:
    from collections.abc import Callable


def _pair(lock: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            lock.acquire()
            lock.release()

    return run


def _with(lock: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with lock:
                pass

    return run


def _put_get(q: Any) -> Callable[[int], None]:
    def run(n: int) -> None:
        put, get = q.put, q.get
        for i in range(n):
            put(i)
            get()

    return run


def _ping_pong(event_type: Callable[[], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        ping, pong = event_type(), event_type()

        def partner() -> None:
            for _ in range(n):
                ping.wait()
                ping.clear()
                pong.set()

        t = threading.Thread(target=partner)
        t.start()
        for _ in range(n):
            ping.set()
            pong.wait()
            pong.clear()
        t.join()

    return run


def _contended(lock_type: Callable[[], Any], nthreads: int = 4) -> Callable[[int], None]:
    def run(n: int) -> None:
        lock, counter = lock_type(), [0]
        per = n // nthreads

        def work() -> None:
            for _ in range(per):
                with lock:
                    counter[0] += 1

        threads = [threading.Thread(target=work) for _ in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


def _pipeline(queue_type: Callable[[int], Any]) -> Callable[[int], None]:
    def run(n: int) -> None:
        q = queue_type(100)
        per = n // 2

        def produce() -> None:
            for i in range(per):
                q.put(i)
            q.put(None)

        def consume() -> None:
            while q.get() is not None:
                pass

        threads = [threading.Thread(target=f) for f in (produce, produce, consume, consume)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run


def _cancel_latency(samples: int) -> list[float]:
    latencies = []
    q: threadpatch.Queue[int] = threadpatch.Queue()
    for _ in range(samples):
        t = threadpatch.spawn(q.get)
        state = t._state
        while not state.parked:  # wait for the thread to block in get()
            _core._natives.sleep(0.0002)
        t0 = time.perf_counter()
        t.cancel()
        latencies.append(time.perf_counter() - t0)
    return latencies


def _reference_row(
    table: Table,
    name: str,
    ours: Callable[[int], None],
    native: Callable[[int], None],
    n: int,
    rounds: int = 7,
) -> None:
    """The pure-Python core next to the active C one: reported, not a target."""
    a, b = _harness.compare(ours, native, n, rounds)
    table.add(Row(f"  {name}, pure-Python core", a, b, "(reference)", True))


def _reference_rows(table: Table) -> None:
    if _sync.IMPLEMENTATION == "python":
        return  # the rows above already measured it
    py_lock, py_rlock = _sync.LOCK_IMPLEMENTATIONS["python"]
    _reference_row(
        table, "Lock acquire()+release()", _pair(py_lock()), _pair(threading.Lock()), 200_000
    )
    _reference_row(table, "with Lock", _with(py_lock()), _with(threading.Lock()), 200_000)
    _reference_row(
        table, "RLock acquire()+release()", _pair(py_rlock()), _pair(threading.RLock()), 200_000
    )
    _reference_row(table, "with RLock", _with(py_rlock()), _with(threading.RLock()), 200_000)
    _reference_row(
        table,
        "contended Lock hand-off",
        _contended(py_lock),
        _contended(threading.Lock),
        200_000,
        rounds=5,
    )


def run() -> Table:
    table = Table(f"sync and queues (ratio to threading / queue; {_sync.IMPLEMENTATION} locks)")
    ratio_row(
        table,
        "Lock acquire()+release() uncontended",
        _pair(threadpatch.Lock()),
        _pair(threading.Lock()),
        200_000,
        2.0,
    )
    ratio_row(
        table,
        "with Lock uncontended",
        _with(threadpatch.Lock()),
        _with(threading.Lock()),
        200_000,
        2.0,
    )
    ratio_row(
        table,
        "RLock acquire()+release() uncontended",
        _pair(threadpatch.RLock()),
        _pair(threading.RLock()),
        200_000,
        2.0,
    )
    ratio_row(
        table,
        "with RLock uncontended",
        _with(threadpatch.RLock()),
        _with(threading.RLock()),
        200_000,
        2.0,
    )
    ratio_row(
        table,
        "Queue put+get without waiting",
        _put_get(threadpatch.Queue()),
        _put_get(queue.Queue()),
        100_000,
        1.2,
    )
    ratio_row(
        table,
        "Event set/wait ping-pong, 2 threads (round trip)",
        _ping_pong(threadpatch.Event),
        _ping_pong(threading.Event),
        2_000,
        1.5,
        rounds=5,
    )
    ratio_row(
        table,
        "contended Lock hand-off, 4 threads",
        _contended(threadpatch.Lock),
        _contended(threading.Lock),
        200_000,
        1.5,
        rounds=5,
    )
    ratio_row(
        table,
        "100k items Queue(100), 2 producers -> 2 consumers (per item)",
        _pipeline(threadpatch.Queue),
        _pipeline(queue.Queue),
        100_000,
        1.5,
        rounds=3,
    )
    _reference_rows(table)
    latencies = _cancel_latency(200)
    p99 = percentile(latencies, 99)
    table.add(
        Row(
            "cancel latency, thread blocked in Queue.get (p99)",
            p99,
            None,
            "p99 <= 1 ms",
            p99 <= 1e-3,
            note=f"p50 {_harness.fmt_time(percentile(latencies, 50))}",
        )
    )
    return table


if __name__ == "__main__":
    run()
