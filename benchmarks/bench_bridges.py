"""Async bridges: threadpatch.to_thread against asyncio.to_thread and trio's run_sync.

A trivial call (``int()``) awaited one after another from one task: the cost
of handing a call to a worker thread and getting its result back, with the
loop's wake-up in between.  The trio row is for information (its target is
the same, but trio is not what the issue's goal measures).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import threadpatch
from benchmarks._harness import Table, one_cpu, ratio_row

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
