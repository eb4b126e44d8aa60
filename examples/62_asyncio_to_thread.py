"""asyncio: a cancelled task stops the thread doing its work (``threadpatch.to_thread``).

A loopback server accepts connections and never answers.  ``asyncio.to_thread``
hands ``requests.get`` to a thread; when ``asyncio.timeout`` fires, the task
ends but the thread goes on waiting for the server, and ``asyncio.run()``
waits for it at exit.  ``threadpatch.to_thread`` cancels the thread at its
blocking read: the ``TimeoutError`` comes once the thread has stopped, its
``finally`` ran, and nothing is left behind.  The ``asyncio`` patch set
(off by default) makes ``asyncio.to_thread`` behave so too.
"""

import asyncio
import socket
import threading
import time

import requests

import threadpatch

server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
URL = f"http://127.0.0.1:{server.getsockname()[1]}/"
threadpatch.patch_all()  # sockets become cancellation points (requests is unmodified)


def fetch(label: str, timeout: float | None = None) -> str:
    start = time.monotonic()
    try:
        return requests.get(URL, timeout=timeout).text
    finally:
        print(f"  [{label}] the thread's finally ran {time.monotonic() - start:.2f} s in")


async def main() -> None:
    print("asyncio.to_thread (native), asyncio.timeout(0.3):")
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(0.3):
            await asyncio.to_thread(fetch, "native", 1.0)  # its own 1 s timeout ends it
    except TimeoutError:
        alive = [t.name for t in threading.enumerate() if t.name.startswith("asyncio")]
        print(f"  TimeoutError at {time.monotonic() - t0:.2f} s; threads still blocked: {alive}")
        native_left = bool(alive)

    print("threadpatch.to_thread, asyncio.timeout(0.3):")
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(0.3):
            await threadpatch.to_thread(fetch, "threadpatch")
    except TimeoutError:
        print(f"  TimeoutError at {time.monotonic() - t0:.2f} s, after the thread had stopped")

    print("threadpatch.to_thread, task.cancel():")
    t0 = time.monotonic()
    task = asyncio.ensure_future(threadpatch.to_thread(fetch, "cancelled task"))
    await asyncio.sleep(0.2)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        print(f"  CancelledError at {time.monotonic() - t0:.2f} s")

    with threadpatch.patched(asyncio=True):
        print("asyncio.to_thread with the asyncio patch set, asyncio.timeout(0.3):")
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(0.3):
                await asyncio.to_thread(fetch, "patched asyncio.to_thread")
        except TimeoutError:
            print(f"  TimeoutError at {time.monotonic() - t0:.2f} s")
    assert native_left


asyncio.run(main())
threadpatch.shutdown_idle_workers()
left = [t.name for t in threading.enumerate() if t.name.startswith("threadpatch.to_thread")]
print(f"to_thread workers left: {left}")
assert not left
