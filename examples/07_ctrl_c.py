"""Ctrl-C: run() cancels every thread, their finally blocks run, KeyboardInterrupt within 1 s.

The demo starts itself as a child interpreter and sends it SIGINT, as a
terminal would on Ctrl-C.
"""

import os
import signal
import subprocess
import sys
import time

import threadpatch

if len(sys.argv) > 1 and sys.argv[1] == "child":
    # A shell starts background jobs with SIGINT ignored; act as a terminal's foreground job.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def say(text: str) -> None:
        os.write(1, f"  [child] {text}\n".encode())

    def worker(i: int) -> None:
        try:
            threadpatch.sleep(3600)
        finally:
            say(f"worker {i}: finally block ran")

    def main() -> None:
        workers = [threadpatch.spawn(worker, i) for i in range(3)]
        try:
            for w in workers:
                w.join()
        finally:
            say("main: finally block ran")

    say("running; press Ctrl-C ... (the parent will send it)")
    threadpatch.run(main)
else:
    child = subprocess.Popen([sys.executable, __file__, "child"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let the child start its threads (a demo, not a test)
    print("parent: sending SIGINT (Ctrl-C)")
    t0 = time.monotonic()
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=10)
    elapsed = time.monotonic() - t0
    last = err.strip().splitlines()[-1] if err.strip() else ""
    print(f"parent: child exited after {elapsed:.2f} s with {last!r}")
    assert last == "KeyboardInterrupt" and elapsed < 1.0
