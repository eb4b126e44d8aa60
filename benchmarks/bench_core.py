"""Core: spawn+join, cancel latency, mass cancellation, memory per blocked thread."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

import threadpatch
from benchmarks._harness import Row, Table, compare, percentile
from threadpatch import _core


def _spawn_join(n: int) -> None:
    for _ in range(n):
        threadpatch.spawn(int).join()


def _thread_start_join(n: int) -> None:
    for _ in range(n):
        t = threading.Thread(target=int)
        t.start()
        t.join()


def _wait_parked(count: int) -> None:
    me = _core.current_state()
    while True:
        parked = [s for s in _core.all_states() if s is not me and s.parked]
        if len(parked) >= count:
            return
        time.sleep(0.001)


def _cancel_latencies(blocked: int) -> list[float]:
    """Cancel ``blocked`` sleeping threads one by one; latency until each sees it."""
    caught: dict[int, float] = {}

    def sleeper(i: int) -> None:
        try:
            threadpatch.sleep(3600)
        except threadpatch.ThreadCancelled:
            caught[i] = time.perf_counter()

    threads = [threadpatch.spawn(sleeper, i, daemon=True) for i in range(blocked)]
    _wait_parked(blocked)
    sent = {}
    for i, t in enumerate(threads):
        sent[i] = time.perf_counter()
        t.cancel()
    return [caught[i] - sent[i] for i in range(blocked)]


def _native_wake_latencies(blocked: int) -> list[float]:
    """The native analogue: set an Event a thread is blocked on."""
    woke: dict[int, float] = {}
    events = [threading.Event() for _ in range(blocked)]
    ready = threading.Barrier(blocked + 1)

    def waiter(i: int) -> None:
        ready.wait()
        events[i].wait()
        woke[i] = time.perf_counter()

    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(blocked)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(0.05)  # let them reach events[i].wait() (benchmark, not a test)
    sent = {}
    for i, t in enumerate(threads):
        sent[i] = time.perf_counter()
        events[i].set()
        t.join()
    return [woke[i] - sent[i] for i in range(blocked)]


def _mass_cancel(count: int) -> float:
    threads = [threadpatch.spawn(threadpatch.sleep, 3600, daemon=True) for _ in range(count)]
    _wait_parked(count)
    t0 = time.perf_counter()
    for t in threads:
        t.cancel(blocking=False)
    for t in threads:
        t.wait()
    return time.perf_counter() - t0


def _mass_native_wake(count: int) -> float:
    event = threading.Event()
    started = threading.Barrier(count + 1)

    def waiter() -> None:
        started.wait()
        event.wait()

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.05)
    t0 = time.perf_counter()
    event.set()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_per_thread(count: int, managed: bool) -> tuple[float, float]:
    """(RSS bytes, Python heap bytes) per blocked thread."""
    release = threading.Event()
    tracemalloc.start()
    heap0, rss0 = tracemalloc.get_traced_memory()[0], _rss()
    if managed:
        threads = [threadpatch.spawn(threadpatch.sleep, 3600, daemon=True) for _ in range(count)]
        _wait_parked(count)
    else:
        plain = [threading.Thread(target=release.wait, daemon=True) for _ in range(count)]
        for t in plain:
            t.start()
        time.sleep(0.05)
    heap1, rss1 = tracemalloc.get_traced_memory()[0], _rss()
    tracemalloc.stop()
    if managed:
        for t in threads:
            t.cancel(blocking=False)
        for t in threads:
            t.wait()
    else:
        release.set()
        for t in plain:
            t.join()
    return (rss1 - rss0) / count, (heap1 - heap0) / count


def run() -> Table:
    table = Table("core: threads and cancellation")
    ours, native = compare(_spawn_join, _thread_start_join, 300, rounds=7)
    table.add(
        Row("spawn + join vs Thread start + join", ours, native, "<= 1.5x", ours / native <= 1.5)
    )

    for blocked in (1, 100, 1000):
        lat = _cancel_latencies(blocked)
        ref = _native_wake_latencies(min(blocked, 100))
        med, p99 = percentile(lat, 50), percentile(lat, 99)
        table.add(
            Row(
                f"cancel latency, {blocked} blocked in sleep: median",
                med,
                percentile(ref, 50),
                "-",
                True,
                note="native: Event.set wake-up",
            )
        )
        table.add(
            Row(
                f"cancel latency, {blocked} blocked in sleep: p99",
                p99,
                percentile(ref, 99),
                "p99 <= 1 ms" if blocked == 1000 else "-",
                p99 <= 1e-3 or blocked != 1000,
            )
        )

    wall = _mass_cancel(1000)
    table.add(
        Row(
            "cancel 1,000 blocked threads (wall)",
            wall,
            _mass_native_wake(1000),
            "<= 0.5 s",
            wall <= 0.5,
            note="native: wake 1,000 Event waiters",
        )
    )

    rss_ours, heap_ours = _memory_per_thread(500, managed=True)
    rss_native, heap_native = _memory_per_thread(500, managed=False)
    table.add(
        Row(
            "memory per blocked thread (RSS)",
            rss_ours / 1024,
            rss_native / 1024,
            "report",
            True,
            unit="KiB",
        )
    )
    table.add(
        Row(
            "memory per blocked thread (Python heap)",
            heap_ours / 1024,
            heap_native / 1024,
            "report",
            True,
            unit="KiB",
        )
    )
    return table


if __name__ == "__main__":
    run()
