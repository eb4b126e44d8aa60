"""From a thread back into async code: ``threadpatch.from_thread``, cancellable both ways.

1. A ``to_thread`` worker calls back into the asyncio loop that started it
   (``from_thread(coroutine_fn, ...)`` runs the coroutine there and returns
   its result).  Cancelling the task cancels the thread, which cancels the
   coroutine it is waiting for; each clean-up runs, innermost first.
2. The talk's ``AWAIT``: a plain thread with no event loop runs a curio
   coroutine on threadpatch's hub kernel.  A deadline on the thread
   (``timeout_after``) cancels the coroutine too.
"""

import asyncio
import threading
import time

import curio

import threadpatch

order: list[str] = []


async def loop_side(n: int) -> str:
    await asyncio.sleep(0.01)
    return f"{n} squared on the loop's thread ({threading.current_thread().name}) is {n * n}"


async def wait_on_loop() -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        order.append("coroutine's finally (on the loop)")


def worker() -> None:
    print("  thread:", threadpatch.from_thread(loop_side, 7))
    try:
        threadpatch.from_thread(wait_on_loop)
    finally:
        order.append("thread's finally")


async def main() -> None:
    task = asyncio.ensure_future(threadpatch.to_thread(worker))
    await asyncio.sleep(0.3)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        order.append("task's CancelledError")
    print("  clean-up order:", " -> ".join(order))
    assert order == [
        "coroutine's finally (on the loop)",
        "thread's finally",
        "task's CancelledError",
    ]


print("1. asyncio: task -> thread -> coroutine on the loop")
asyncio.run(main())


async def ticker(label: str, ticks: list[int]) -> None:
    try:
        while True:
            ticks.append(len(ticks))
            await curio.sleep(0.05)
    except curio.CancelledError:
        print(f"  {label}: curio coroutine cancelled after {len(ticks)} ticks")
        raise


async def add(a: int, b: int) -> int:
    await curio.sleep(0.01)
    return a + b


print("2. curio on the hub, from a plain thread (AWAIT)")
result: list[int] = []
t = threading.Thread(target=lambda: result.append(threadpatch.from_thread(add, 2, 3)))
t.start()
t.join()
print(f"  from_thread(add, 2, 3) = {result[0]}")

t0 = time.monotonic()
ticks: list[int] = []
try:
    threadpatch.timeout_after(0.3, threadpatch.from_thread, ticker, "timeout_after(0.3)", ticks)
except threadpatch.ThreadTimeout:
    print(f"  ThreadTimeout after {time.monotonic() - t0:.2f} s, the coroutine already stopped")

ticks = []
thread = threadpatch.spawn(threadpatch.from_thread, ticker, "thread.cancel()", ticks)
time.sleep(0.2)
thread.cancel()
print(f"  thread cancelled: {thread.cancelled}")
assert thread.cancelled and result == [5]
threadpatch.shutdown_idle_workers()
