"""Re-enter an RLock from a signal handler of the thread that is inside it.

Run as a child interpreter (it installs signal handlers and an interval
timer): ``python tests/signal_reentry_probe.py KIND`` prints one JSON object,
``{"release": outcome, "nested_wait": outcome}``, each outcome ``"ok"`` or
what went wrong.  KIND is ``native`` (``_thread.RLock``), ``ours`` (this
process's :class:`threadpatch.RLock`: C, or pure Python with
``THREADPATCH_PURE_PYTHON=1``) or ``signal-safe`` (what the patched
``threading.RLock`` makes inside ``makes_signal_safe_locks``).

* ``release``: the main thread releases the RLock while another thread waits
  for it; a real SIGUSR1 is raised at every bytecode of our release path (by
  an opcode tracer) and its handler takes and releases the same RLock.
* ``nested_wait``: the main thread waits for the RLock held by another thread;
  that thread signals it while it is parked, the handler waits for the same
  RLock, then the holder releases.  Both the handler and the interrupted
  acquire must end up with the lock.

A hang is caught by SIGALRM, whose handler raises out of the stuck wait.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import threadpatch
from threadpatch import _conditions, _locks, _sync
from threadpatch._core import _state, _wait

if TYPE_CHECKING:
    from types import FrameType

HANG_AFTER = 1.0
OUR_FILES = (_locks.__file__, _conditions.__file__, _state.__file__, _wait.__file__)


class Hang(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


def make(kind: str) -> Any:
    if kind == "native":
        return threadpatch.original("threading", "RLock")()
    if kind == "ours":
        return threadpatch.RLock()
    return _sync.makes_signal_safe_locks(_sync.patched_rlock)()


def waiting(lock: Any) -> int:
    stats = getattr(lock, "statistics", None)
    return stats().waiting if stats is not None else -1


def release_once(kind: str, position: int) -> tuple[bool, str]:
    lock = make(kind)
    lock.acquire()
    got_it = threading.Event()

    def worker() -> None:
        with lock:
            got_it.set()

    t = threading.Thread(target=worker, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while waiting(lock) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)  # polling a state, not synchronising on time
    if waiting(lock) == -1:
        time.sleep(0.05)  # a native lock shows no waiters: give the worker a moment
    fired: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        with lock:
            pass

    signal.signal(signal.SIGUSR1, handler)
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if frame.f_code.co_filename not in OUR_FILES:
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            count += 1
            if count == position and not fired:
                fired.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
                signal.raise_signal(signal.SIGUSR1)
        return tracer

    outcome = "ok"
    signal.setitimer(signal.ITIMER_REAL, HANG_AFTER)
    try:
        sys.settrace(tracer)
        try:
            lock.release()
        finally:
            sys.settrace(None)
        if not got_it.wait(HANG_AFTER * 2):
            outcome = "the waiting thread never got the lock"
    except Hang:
        outcome = "deadlock: the handler re-entered a release that holds the lot's lock"
    except BaseException as exc:
        outcome = f"error: {exc!r}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        t.join(HANG_AFTER)
    where = fired[0] if fired else ""
    return bool(fired) or position == 1, outcome if outcome == "ok" else f"{outcome} ({where})"


def release(kind: str) -> str:
    for position in range(1, 500):
        reached, outcome = release_once(kind, position)
        if not reached:
            return "ok"
        if outcome != "ok":
            return outcome
    return "ok"


def nested_wait(kind: str) -> str:
    lock = make(kind)
    handler_ran = threading.Event()
    holder_has_it = threading.Event()
    me = threadpatch._core.current_state()
    main_ident = threading.get_ident()

    def holder() -> None:
        with lock:
            holder_has_it.set()
            deadline = time.monotonic() + 5
            while waiting(lock) == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            if waiting(lock) == -1:
                time.sleep(0.05)  # native: the main thread is in acquire by now
            else:
                while not me.parked and time.monotonic() < deadline:
                    time.sleep(0.001)
            signal.pthread_kill(main_ident, signal.SIGUSR1)
            handler_ran.wait(5)
            while waiting(lock) == 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # until the handler waits too
            if waiting(lock) == -1:
                time.sleep(0.05)

    def handler(signum: int, frame: FrameType | None) -> None:
        handler_ran.set()
        with lock:
            pass

    signal.signal(signal.SIGUSR1, handler)
    t = threading.Thread(target=holder, daemon=True)
    t.start()
    holder_has_it.wait(5)
    outcome = "ok"
    signal.setitimer(signal.ITIMER_REAL, HANG_AFTER * 3)
    try:
        lock.acquire()
        lock.release()
    except Hang:
        outcome = "lost wake-up: the interrupted acquire sleeps on a free lock"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        t.join(HANG_AFTER)
    if not handler_ran.is_set():
        outcome = "the handler never ran"
    return outcome


def main() -> None:
    kind = sys.argv[1]
    signal.signal(signal.SIGALRM, _on_alarm)
    result = {
        "implementation": _sync.IMPLEMENTATION,
        "release": release(kind),
        "nested_wait": nested_wait(kind),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
