"""Async bridges: threadpatch.to_thread against asyncio.to_thread and trio's run_sync.

A trivial call (``int()``) awaited one after another from one task: the cost
of handing a call to a worker thread and getting its result back, with the
loop's wake-up in between.  And the latency of a cancellation: from
``task.cancel()`` of a call blocked in the thread until the awaiting task has
its ``CancelledError`` (the thread has stopped by then).  The trio row is
for information (its target is the same, but the issue's goal is asyncio's).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import threadpatch
from benchmarks._harness import Row, Table, one_cpu, percentile, ratio_row
from threadpatch import _core

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


def _asyncio(to_thread: Callable[..., Awaitable[object]]) -> Callable[[int], None]:
    loop = asyncio.new_event_loop()

    async def calls(n: int) -> None:
        for _ in range(n):
            await to_thread(int)

    def run(n: int) -> None:
        loop.run_until_complete(calls(n))

    return run


def _trio(to_thread: Callable[..., Awaitable[object]]) -> Callable[[int], None]:
    import trio

    async def calls(n: int) -> None:
        for _ in range(n):
            await to_thread(int)

    def run(n: int) -> None:
        trio.run(calls, n)

    return run


def _cancel_latencies(count: int) -> list[float]:
    """task.cancel() of a to_thread call blocked in a wait, until the task sees CancelledError."""

    def busy() -> bool:
        return any(
            s.name == "threadpatch.to_thread"
            and s.parked
            and s.blocked_on is not None
            and s.blocked_on[0] == "event"
            for s in _core.all_states()
        )

    async def main() -> list[float]:
        latencies = []
        for _ in range(count):
            task = asyncio.ensure_future(threadpatch.to_thread(threadpatch.Event().wait))
            while not busy():
                await asyncio.sleep(0.0005)
            t0 = time.perf_counter()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                latencies.append(time.perf_counter() - t0)
        return latencies

    return asyncio.run(main())


def run() -> Table:
    table = Table("async bridges (ratio to the loop's own to_thread)")
    with one_cpu():  # a hand-off between two threads: see one_cpu()
        ratio_row(
            table,
            "to_thread trivial call vs asyncio.to_thread",
            _asyncio(threadpatch.to_thread),
            _asyncio(asyncio.to_thread),
            3_000,
            1.2,
        )
        latencies = _cancel_latencies(300)
        p99 = percentile(latencies, 99)
        table.add(
            Row(
                "to_thread: cancel until the thread stopped, p99",
                p99,
                None,
                "p99 <= 1 ms",
                p99 <= 1e-3,
                note=f"median {percentile(latencies, 50) * 1e6:.0f} us",
            )
        )
        try:
            import trio
        except ImportError:  # pragma: no cover - trio is a test dependency
            return table
        ratio_row(
            table,
            "to_thread trivial call vs trio.to_thread.run_sync",
            _trio(threadpatch.to_thread),
            _trio(trio.to_thread.run_sync),
            3_000,
            1.2,
        )
    threadpatch.shutdown_idle_workers()
    return table
