"""Cancel a block of code, not the thread: ``threadpatch.CancelScope``.

A worker thread fetches with an unmodified ``requests.get`` from a server that
never answers.  The main thread cancels the *scope* around the request: the
request stops at its blocking point (its ``finally`` runs, the socket is
closed), the scope swallows its own cancellation, and the worker goes on to
its next job — it was not cancelled.  Then a scope with a deadline on the
threadpatch clock, moved later while it runs, and a shield for clean-up.
"""

import socket
import threading
import time

import requests

import threadpatch

threadpatch.patch_all()  # requests' sockets become cancellation points

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)  # accepts into its backlog, never answers
URL = f"http://127.0.0.1:{silent.getsockname()[1]}/"

scope = threadpatch.CancelScope()
blocked = threading.Event()


def worker() -> str:
    with scope:
        print("worker: requests.get() to a server that never answers ...")
        blocked.set()
        try:
            requests.get(URL)
        finally:
            print("worker: the request's clean-up ran")
    print(f"worker: scope cancelled_caught={scope.cancelled_caught}; carrying on")
    threadpatch.sleep(0)  # the worker's blocking calls work again
    return "worker finished its next job"


t = threadpatch.spawn(worker)
blocked.wait(10)
time.sleep(0.2)  # let the request reach its read (only for the narration)
t0 = time.monotonic()
scope.cancel()  # from the main thread: any thread may cancel a scope
print(f"main: {t.join(timeout=10)!r}, {1000 * (time.monotonic() - t0):.1f} ms after cancel()")
assert scope.cancelled_caught and not t.cancelled

# A deadline: absolute, on the threadpatch clock, and movable.
start = threadpatch.current_time()
with threadpatch.CancelScope(deadline=start + 0.1) as deadline_scope:
    deadline_scope.deadline += 0.2  # more time, while inside
    threadpatch.sleep(10)
waited = threadpatch.current_time() - start
print(f"deadline scope: cancelled after {waited:.2f} s (deadline moved from 0.1 s to 0.3 s)")
assert deadline_scope.cancelled_caught and 0.25 < waited < 2

# A shield: clean-up that must block finishes even though the scope was cancelled.
with threadpatch.CancelScope() as outer:
    outer.cancel()
    with threadpatch.CancelScope(shield=True):
        threadpatch.sleep(0.05)
        print("shielded clean-up finished despite the cancel")
    threadpatch.sleep(10)  # the pending cancel arrives here
assert outer.cancelled_caught
silent.close()
print("done")
