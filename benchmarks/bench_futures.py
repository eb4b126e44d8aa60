"""Executor and scopes: submit+result vs the stdlib executor, cancel latency, scope cost.

* submit + result of a trivial call, ``threadpatch.futures.ThreadPoolExecutor``
  vs ``concurrent.futures.ThreadPoolExecutor`` (one worker, one CPU: the
  caller and the worker ping-pong), unpatched and both under ``patched()``;
* cancel latency of a running future: ``Future.cancel()`` on a call blocked
  in a wait, until the future is done (cancelled) as a waiter sees it; native
  reference: a stdlib pool's call blocked on an Event, from ``Event.set()``
  until its future is done;
* ``with CancelScope():`` (and ``timeout_after``) around nothing vs a bare
  ``with`` of a no-op context manager written in Python.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

import threadpatch
from benchmarks._harness import Row, Table, compare, one_cpu, percentile
from threadpatch import _core
from threadpatch.futures import ThreadPoolExecutor


def _submit_result(pool: concurrent.futures.ThreadPoolExecutor) -> Any:
    def loop(n: int) -> None:
        submit = pool.submit
        for _ in range(n):
            submit(int).result()

    return loop


def _submit_rows(table: Table, label: str) -> None:
    with ThreadPoolExecutor(1) as ours, concurrent.futures.ThreadPoolExecutor(1) as native:
        a, b = compare(_submit_result(ours), _submit_result(native), 3000, rounds=7)
    table.add(Row(f"submit + result, trivial call ({label})", a, b, "<= 1.2x", a / b <= 1.2))


def _wait_parked(state_of: list[_core.ThreadState]) -> None:
    deadline = time.monotonic() + 10
    while not (state_of and state_of[0].parked):
        if time.monotonic() > deadline:
            raise RuntimeError("the work never blocked")
        time.sleep(0.0002)


def _cancel_latencies(samples: int) -> list[float]:
    out = []
    with ThreadPoolExecutor(1) as pool:
        for _ in range(samples):
            state_of: list[_core.ThreadState] = []

            def work(state_of: list[_core.ThreadState] = state_of) -> None:
                state_of.append(_core.current_state())
                threadpatch.Event().wait()

            future = pool.submit(work)
            _wait_parked(state_of)
            time.sleep(0.0005)  # well inside the wait (a benchmark, not a test)
            t0 = time.perf_counter()
            future.cancel()
            concurrent.futures.wait([future])
            out.append(time.perf_counter() - t0)
            assert future.cancelled()
    return out


def _native_finish_latencies(samples: int) -> list[float]:
    out = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        for _ in range(samples):
            event, started = threading.Event(), threading.Event()

            def work(event: threading.Event = event, started: threading.Event = started) -> None:
                started.set()
                event.wait()

            future = pool.submit(work)
            started.wait()
            time.sleep(0.001)  # let it reach event.wait()
            t0 = time.perf_counter()
            event.set()
            concurrent.futures.wait([future])
            out.append(time.perf_counter() - t0)
    return out


class _Noop:
    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False


def _scope_loop(n: int) -> None:
    scope = threadpatch.CancelScope
    for _ in range(n):
        with scope():
            pass


def _deadline_loop(n: int) -> None:
    after = threadpatch.timeout_after
    for _ in range(n):
        with after(60):
            pass


def _noop_loop(n: int) -> None:
    noop = _Noop
    for _ in range(n):
        with noop():
            pass


def run() -> Table:
    table = Table("futures: the cancellable executor and cancel scopes")
    _core.current_state()  # adopt the caller before timing
    with one_cpu():
        _submit_rows(table, "unpatched, one CPU")
        with threadpatch.patched():
            _submit_rows(table, "both patched, one CPU")
    # Latencies as bench_core measures them: the scheduler's choice of CPUs.
    lat = _cancel_latencies(300)
    ref = _native_finish_latencies(300)
    table.add(
        Row(
            "cancel latency of a running future: median",
            percentile(lat, 50),
            percentile(ref, 50),
            "-",
            True,
            note="native: Event.set until the future is done",
        )
    )
    p99 = percentile(lat, 99)
    table.add(
        Row(
            "cancel latency of a running future: p99",
            p99,
            percentile(ref, 99),
            "p99 <= 1 ms",
            p99 <= 1e-3,
        )
    )
    a, b = compare(_scope_loop, _noop_loop, 100_000)
    table.add(Row("with CancelScope(): vs with a no-op context manager", a, b, "report", True))
    a, b = compare(_deadline_loop, _noop_loop, 20_000)
    table.add(Row("with timeout_after(60): vs with a no-op context manager", a, b, "report", True))
    return table


if __name__ == "__main__":
    run()
