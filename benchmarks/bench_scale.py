"""Scale: 1,000 and 10,000 blocked threads, spawn-all, cancel-all and RSS per thread.

For each wait (sleep, Lock.acquire, Queue.get, Event.wait, a socket recv) and
each size, a fresh child interpreter starts that many threads blocked in it and
reports three figures; threadpatch and native threads alternate, in separate
processes so that neither inherits the other's freed memory or dying threads:

* spawn-all: ``spawn()`` of every thread vs ``Thread.start()`` of every thread;
* cancel-all: from the first ``cancel()`` to the last thread ended (``cancel()``
  of each in turn, which returns once that thread has ended), vs the native
  wake-all (``set()``/``put()``/``release()``/EOF) and ``join()`` of all;
* RSS per thread once every thread is blocked.

Waking 10,000 threads at once (the native wake-all, or ``cancel(blocking=False)``
of each then ``wait()``) is dominated by the interpreter's GIL hand-off: every
thread waiting for the GIL wakes every switch interval (5 ms), so the time
grows with the square of the number of woken threads, natively as with
threadpatch, and varies several-fold from run to run.

Both sides use the same small thread stack (:data:`STACK_SIZE`), so that
10,000 threads fit, and daemon threads (non-daemon thread starts are O(n) in
``threading`` itself on Python 3.11 and 3.12, for native threads as for ours).

Run alone with ``python -m benchmarks scale``; ``--child KIND IMPL N`` is the
child side.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import threadpatch
import threadpatch.socket
from benchmarks._harness import Row, Table

if TYPE_CHECKING:
    from collections.abc import Callable

STACK_SIZE = 256 * 1024
SIZES = (1000, 10000)
ROUNDS = 3
KINDS = ("sleep", "Lock", "Queue.get", "Event.wait", "socket recv")
NATIVE_WAKE = {
    "sleep": "Event.set",
    "Lock": "release chain",
    "Queue.get": "put x N",
    "Event.wait": "Event.set",
    "socket recv": "EOF",  # on each socket, read by SOCKET_SHARERS threads
}
LIMITS = {"spawn": 1.3, "cancel": 1.2, "rss": 1.1}
SOCKET_SHARERS = 10

# -- child side ------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Scenario:
    """N threads blocked in one wait, and how to end them all."""

    def __init__(self, kind: str, managed: bool, n: int) -> None:
        self.kind = kind
        self.managed = managed
        self.arrived: list[None] = []
        self.closers: list[Callable[[], object]] = []
        mod_lock = threadpatch.Lock if managed else threading.Lock
        mod_event = threadpatch.Event if managed else threading.Event
        arrived = self.arrived

        def arrive() -> None:
            arrived.append(None)

        if kind == "sleep":
            event = threading.Event()  # the native side's sleep: see NATIVE_WAKE
            if managed:

                def target() -> None:
                    arrive()
                    threadpatch.sleep(3600)

            else:

                def target() -> None:
                    arrive()
                    event.wait()

            self.wake: Callable[[int], object] = lambda n: event.set()
        elif kind == "Lock":
            lock = mod_lock()
            lock.acquire()

            def target() -> None:
                arrive()
                lock.acquire()
                lock.release()

            self.wake = lambda n: lock.release()
        elif kind == "Queue.get":
            q: Any = threadpatch.Queue() if managed else queue.Queue()

            def target() -> None:
                arrive()
                q.get()

            def put_all(n: int) -> None:
                for _ in range(n):
                    q.put(None)

            self.wake = put_all
        elif kind == "Event.wait":
            ev = mod_event()

            def target() -> None:
                arrive()
                ev.wait()

            self.wake = lambda n: ev.set()
        elif kind == "socket recv":
            # SOCKET_SHARERS threads read each socket: one socket for all would
            # make the native EOF wake 10,000 readers at once, a pair each would
            # need more descriptors than the usual limit.
            pair = threadpatch.socket.socketpair if managed else socket.socketpair
            pairs = [pair() for _ in range(max(1, n // SOCKET_SHARERS))]
            self.closers += [s.close for p in pairs for s in p]

            def target() -> None:
                reader = pairs[len(arrived) % len(pairs)][0]
                arrive()
                reader.recv(1)

            def eof_all(n: int) -> None:
                for _, writer in pairs:
                    writer.shutdown(socket.SHUT_WR)

            self.wake = eof_all
        else:
            raise ValueError(kind)
        self.target = target

    def start(self, n: int) -> list[Any]:
        if self.managed:
            return [threadpatch.spawn(self.target, daemon=True) for _ in range(n)]
        threads = [threading.Thread(target=self.target, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        return threads

    def wait_blocked(self, n: int, threads: list[Any]) -> None:
        """Until every thread has reached its wait (a benchmark, not a test)."""
        deadline = time.monotonic() + 120
        while len(self.arrived) < n and time.monotonic() < deadline:
            time.sleep(0.005)
        # From the count to the blocking call is a few bytecodes: let them run.
        time.sleep(0.1 + n * 2e-5)
        if self.managed:
            states = [t._state for t in threads]
            while not all(s.parked for s in states) and time.monotonic() < deadline:
                time.sleep(0.005)

    def end_all(self, n: int, threads: list[Any]) -> None:
        if self.managed:
            for t in threads:
                t.cancel(timeout=120)  # the default: returns once the thread has ended
        else:
            self.wake(n)
            for t in threads:
                t.join(120)

    def close(self) -> None:
        for close in self.closers:
            close()


def _measure(kind: str, managed: bool, n: int) -> dict[str, float]:
    threading.stack_size(STACK_SIZE)
    warm = _Scenario(kind, managed, 20)  # first-use costs (imports, caches) out of the way
    threads = warm.start(20)
    warm.wait_blocked(20, threads)
    warm.end_all(20, threads)
    warm.close()
    del warm, threads
    scenario = _Scenario(kind, managed, n)
    gc.collect()
    rss0 = _rss()
    t0 = time.perf_counter()
    threads = scenario.start(n)
    spawn = time.perf_counter() - t0
    scenario.wait_blocked(n, threads)
    rss = (_rss() - rss0) / n
    t0 = time.perf_counter()
    scenario.end_all(n, threads)
    cancel = time.perf_counter() - t0
    alive = sum(not t.done() if managed else t.is_alive() for t in threads)
    scenario.close()
    return {"spawn": spawn, "cancel": cancel, "rss": rss, "alive": alive}


# -- parent side -----------------------------------------------------------------


def _child(kind: str, managed: bool, n: int) -> dict[str, float]:
    args = ["--child", kind, str(int(managed)), str(n)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_scale", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["alive"]:
        raise RuntimeError(f"{result['alive']:g} thread(s) did not end")
    return result


def _rows(table: Table, kind: str, n: int, rounds: int) -> None:
    ours: dict[str, list[float]] = {"spawn": [], "cancel": [], "rss": []}
    native: dict[str, list[float]] = {"spawn": [], "cancel": [], "rss": []}
    try:
        for _ in range(rounds):
            for managed, into in ((True, ours), (False, native)):
                result = _child(kind, managed, n)
                for key, values in into.items():
                    values.append(result[key])
    except (subprocess.SubprocessError, RuntimeError, ValueError, IndexError) as exc:
        table.add(Row(f"{n:,} in {kind}", 0.0, None, "-", False, note=f"failed: {exc!r}"[:200]))
        return
    med = {key: statistics.median(v) for key, v in ours.items()}
    ref = {key: statistics.median(v) for key, v in native.items()}
    names = {
        "spawn": ("spawn-all", "native: start-all"),
        "cancel": ("cancel-all", f"ours: cancel() each; native: {NATIVE_WAKE[kind]} + join"),
        "rss": ("RSS per thread", ""),
    }
    for key, (what, note) in names.items():
        limit = LIMITS[key]
        a, b = med[key], ref[key]
        unit = "KiB" if key == "rss" else "s"
        if key == "rss":
            a, b = a / 1024, b / 1024
        table.add(
            Row(
                f"{n:,} in {kind}: {what}",
                a,
                b,
                f"<= {limit:g}x",
                b > 0 and a / b <= limit,
                unit=unit,
                note=note,
            )
        )


def run(rounds: int = ROUNDS) -> Table:
    stack = STACK_SIZE // 1024
    table = Table(f"scale: blocked threads (median of {rounds} child runs each; stack {stack} KiB)")
    load0 = os.getloadavg()[0]
    for kind in KINDS:
        for n in SIZES:
            _rows(table, kind, n, rounds)
    table.add(
        Row(
            "load average (1 min) before / after",
            load0,
            os.getloadavg()[0],
            "report",
            True,
            unit="",
            note=f"{os.cpu_count()} CPUs shared with other work",
        )
    )
    return table


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        kind, managed, n = argv[1], bool(int(argv[2])), int(argv[3])
        result = _measure(kind, managed, n)
        print(json.dumps(result), flush=True)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(0)  # no interpreter teardown with thousands of thread stacks to free
    run()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
