"""Tiny benchmark harness shared by every ``benchmarks/bench_*.py`` module.

Each benchmark measures threadpatch and the native operation in the same run,
alternating rounds so that drift of the machine affects both, and reports the
ratio of the medians against a target.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@dataclass
class Row:
    name: str
    ours: float  # seconds per operation (or the figure named by unit)
    native: float | None
    target: str  # e.g. "<= 1.5x", "p99 <= 1 ms"
    ok: bool
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if not self.native else self.ours / self.native


@dataclass
class Table:
    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {format_row(row)}", flush=True)
        return row


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"


def format_row(row: Row) -> str:
    ours = fmt_time(row.ours) if row.unit == "s" else f"{row.ours:.3g} {row.unit}"
    native = ""
    if row.native is not None:
        native = fmt_time(row.native) if row.unit == "s" else f"{row.native:.3g} {row.unit}"
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    status = "ok" if row.ok else "MISS"
    return f"{row.name:<52} {ours:>12} {native:>12} {ratio:>7}  {row.target:<16} {status}" + (
        f"  ({row.note})" if row.note else ""
    )


def header() -> str:
    return f"{'benchmark':<52} {'threadpatch':>12} {'native':>12} {'ratio':>7}  {'target':<16}"


def per_op(func: Callable[[int], object], n: int) -> float:
    """Seconds per operation of ``func(n)``, which performs ``n`` operations."""
    t0 = time.perf_counter()
    func(n)
    return (time.perf_counter() - t0) / n


def compare(
    ours: Callable[[int], object], native: Callable[[int], object], n: int, rounds: int = 7
) -> tuple[float, float]:
    """Median seconds per operation of both, measured in alternating rounds."""
    ours(max(1, n // 10))  # warm up
    native(max(1, n // 10))
    a, b = [], []
    for _ in range(rounds):
        a.append(per_op(ours, n))
        b.append(per_op(native, n))
    return statistics.median(a), statistics.median(b)


def ratio_row(
    table: Table,
    name: str,
    ours: Callable[[int], object],
    native: Callable[[int], object],
    n: int,
    limit: float,
    rounds: int = 7,
) -> Row:
    a, b = compare(ours, native, n, rounds)
    return table.add(Row(name, a, b, f"<= {limit:g}x", a / b <= limit))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """Run every thread of this process (and those it starts) on one CPU.

    Round trips between two threads on a small VM vary 2-10x from run to run
    with where the scheduler puts the threads (a wake-up across CPUs costs an
    inter-processor interrupt); on one CPU both sides of a ratio pay the same.
    """
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    cpu = {min(before)}
    tids = {t.native_id for t in threading.enumerate() if t.native_id is not None}
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(tid, cpu)
    try:
        yield
    finally:
        for t in threading.enumerate():
            if t.native_id is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(t.native_id, before)
