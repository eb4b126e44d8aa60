"""More magic: an *unmodified* ``requests.get`` becomes cancellable.

requests knows nothing about threadpatch.  ``patch_all()`` swaps the standard
library's blocking pieces (socket methods, select, locks, ...) for
cancellable ones, so a thread stuck in ``requests.get`` on a server that
never answers can be cancelled like any other thread.
"""

import socket
import time

import requests

import threadpatch

# A loopback "server" that accepts connections and never says a word.
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
print(f"a server that never answers listens at {url}")

threadpatch.patch_all()
print("patch_all(): the standard library's blocking calls are now cancellation points")


def fetch() -> None:
    try:
        print("  worker: requests.get() ... (no timeout: it would wait forever)")
        requests.get(url)
    finally:
        print("  worker: clean-up runs, the connection is closed")


t = threadpatch.spawn(fetch, name="fetcher")
time.sleep(0.3)  # let it get stuck (a demo, not a test: waiting on time is fine here)
print(f"worker is stuck in requests.get: alive={t.is_alive()}")

t0 = time.monotonic()
t.cancel()
elapsed = time.monotonic() - t0
print(f"cancelled in {elapsed * 1000:.1f} ms -> cancelled={t.cancelled}")
assert t.cancelled and elapsed < 0.1

print("\nthe same with a deadline instead of a cancel:")
t0 = time.monotonic()
try:
    with threadpatch.timeout_after(0.2):
        requests.get(url)
except threadpatch.ThreadTimeout:
    print(
        f"  ThreadTimeout after {time.monotonic() - t0:.2f} s (requests had no timeout of its own)"
    )

threadpatch.unpatch_all()
listener.close()
print("unpatch_all(): the standard library is exactly as it was")
