"""``Future.cancel()`` that stops running work: ``threadpatch.futures.ThreadPoolExecutor``.

With the standard executor, ``Future.cancel()`` on a running call returns
False and the call goes on.  Here three unmodified ``requests.get`` calls wait
on a server that never answers; ``cancel()`` stops one at its blocking point
(True, and the future ends cancelled once the call has stopped), the same
worker then runs the next job, and ``shutdown(cancel_futures=True)`` stops the
rest.  Finally ``python -m threadpatch --futures`` gives the standard
executor the same behaviour (the ``futures`` patch flag).
"""

import concurrent.futures
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

import threadpatch
from threadpatch.futures import ThreadPoolExecutor

threadpatch.patch_all()

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)
URL = f"http://127.0.0.1:{silent.getsockname()[1]}/"


def fetch(url: str, *, timeout: float) -> int:
    try:
        return requests.get(url, timeout=timeout).status_code
    finally:
        print(f"  fetch({url!r}) clean-up ran")


pool = ThreadPoolExecutor(max_workers=3)
futures = [pool.submit(fetch, URL, timeout=60) for _ in range(3)]
time.sleep(0.3)  # all three are waiting for an answer (only for the narration)
print(f"running: {[f.running() for f in futures]}")

t0 = time.monotonic()
print(f"futures[0].cancel() -> {futures[0].cancel()}")
concurrent.futures.wait([futures[0]], timeout=10)
print(f"cancelled={futures[0].cancelled()} after {1000 * (time.monotonic() - t0):.1f} ms")
print(f"the pool goes on: {pool.submit(sum, [1, 2, 3]).result(timeout=10)}")

pool.shutdown(wait=True, cancel_futures=True)  # the two still running stop too
print(f"after shutdown(cancel_futures=True): cancelled={[f.cancelled() for f in futures]}")
assert all(f.cancelled() for f in futures)

# The standard executor, unmodified code, under `python -m threadpatch --futures`.
program = textwrap.dedent(f"""
    import time, requests
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(requests.get, {URL!r})
        time.sleep(0.3)
        print("  stdlib executor, --futures: cancel() ->", future.cancel(),
              "cancelled() ->", (pool.shutdown(), future.cancelled())[1])
""")
with tempfile.TemporaryDirectory() as tmp:
    script = Path(tmp, "stdlib_pool.py")
    script.write_text(program)
    cmd = [sys.executable, "-m", "threadpatch", "--futures", str(script)]
    assert subprocess.run(cmd, timeout=30, check=False).returncode == 0
silent.close()
