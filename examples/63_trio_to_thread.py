"""trio: ``threadpatch.to_thread`` under a cancel scope stops the thread, not just the task.

``trio.to_thread.run_sync`` cannot stop a thread: unless told to abandon it,
the task waits for the blocked call to finish however its scope was
cancelled.  With ``threadpatch.to_thread`` the thread runs under the task's
deadline (trio's ``current_effective_deadline()``, as a threadpatch
deadline) and is cancelled with the task; the scope's ``cancelled_caught``
is True only once the thread has stopped.  Three unmodified ``requests.get``
calls to a server that never answers, in one nursery.
"""

import socket
import time

import requests
import trio

import threadpatch

server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
URL = f"http://127.0.0.1:{server.getsockname()[1]}/"
threadpatch.patch_all()  # sockets become cancellation points (requests is unmodified)
stopped: list[str] = []


def fetch(name: str) -> str:
    try:
        return requests.get(URL).text
    except threadpatch.ThreadCancelled as exc:
        print(f"  [{name}] stopped in requests.get by {type(exc).__name__}")
        raise
    finally:
        stopped.append(name)


async def main() -> None:
    t0 = time.monotonic()
    print("three requests in a nursery under trio.move_on_after(0.3):")
    with trio.move_on_after(0.3) as scope:
        async with trio.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(threadpatch.to_thread, fetch, name)
    print(f"  cancelled_caught={scope.cancelled_caught} after {time.monotonic() - t0:.2f} s")
    assert scope.cancelled_caught and sorted(stopped) == ["a", "b", "c"]

    print("one request, its scope cancelled by another task:")
    t0 = time.monotonic()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_soon() -> None:
                await trio.sleep(0.2)
                scope.cancel()

            nursery.start_soon(cancel_soon)
            await threadpatch.to_thread(fetch, "d")
    print(f"  cancelled_caught={scope.cancelled_caught} after {time.monotonic() - t0:.2f} s")
    assert "d" in stopped


trio.run(main)
threadpatch.shutdown_idle_workers()
print("every thread stopped before its task went on; no worker left")
