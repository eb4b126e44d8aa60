"""Sockets and TLS: threadpatch against the stdlib (and gevent's patched sockets).

Rows: 1 KiB echo round trip on loopback TCP; 100 MiB bulk transfer; 100
connections echoing concurrently, one thread per connection on each side; TLS
echo; and the same echo on gevent's monkey-patched sockets (in a subprocess,
so its patching stays out of this process), as a ratio to the stdlib here.
"""

from __future__ import annotations

import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks import _harness
from benchmarks._echo import concurrent_round_trips, echo_setup, round_trips
from threadpatch import socket as tp_socket
from threadpatch import ssl as tp_ssl

BULK = 100 << 20


def _bulk(sock_mod: object) -> float:
    """Seconds to move 100 MiB through one loopback TCP connection."""
    listener = sock_mod.create_server(("127.0.0.1", 0))  # type: ignore[attr-defined]
    done = threading.Event()
    received = [0]

    def sink() -> None:
        conn, _ = listener.accept()
        buf = bytearray(1 << 18)
        with conn:
            while received[0] < BULK:
                n = conn.recv_into(buf)
                if not n:
                    break
                received[0] += n
        done.set()

    t = threading.Thread(target=sink)
    t.start()
    chunk = b"\0" * (1 << 20)
    with sock_mod.create_connection(listener.getsockname()) as c:  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for _ in range(BULK // len(chunk)):
            c.sendall(chunk)
        done.wait(60)
        elapsed = time.perf_counter() - t0
    t.join(10)
    listener.close()
    return elapsed


def _tls_contexts(tp: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cls = tp_ssl.SSLContext if tp else ssl.SSLContext
    server = cls(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server)
    client = cls(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    return server, client


def _echo_rows(table: _harness.Table, name: str, limit: float | None) -> _harness.Row:
    """The echo row (gated by ``limit``, or reported) and its poll-before-recv reference."""
    (ours,), close_ours = echo_setup(tp_socket)
    (native,), close_native = echo_setup(__import__("socket"))
    (polled,), close_polled = echo_setup(__import__("socket"), poll_first=True)
    try:
        a, b = _harness.compare(
            lambda n: round_trips(ours, n), lambda n: round_trips(native, n), 3000
        )
        target = "report" if limit is None else f"<= {limit:g}x"
        echo = table.add(_harness.Row(name, a, b, target, limit is None or a / b <= limit))
        # The floor of waiting in poll() at all: native sockets, both ends
        # polling before each recv, against plain blocking recv.
        floor, native_again = _harness.compare(
            lambda n: round_trips(polled, n, poll_first=True),
            lambda n: round_trips(native, n),
            3000,
        )
        table.add(
            _harness.Row(
                "  reference: native sockets, poll() before recv",
                floor,
                native_again,
                "report",
                True,
                note=f"threadpatch / this: {echo.ours / floor:.2f}x",
            )
        )
    finally:
        close_ours()
        close_native()
        close_polled()
    return echo


def run() -> _harness.Table:
    table = _harness.Table("sockets and TLS")

    with _harness.one_cpu():
        echo = _echo_rows(table, "echo 1 KiB round trip (loopback TCP, one CPU)", 1.3)
    _echo_rows(table, "echo 1 KiB round trip (loopback TCP, any CPU)", None)

    a, b = [], []
    for _ in range(3):
        a.append(_bulk(tp_socket))
        b.append(_bulk(__import__("socket")))
    mib = BULK / (1 << 20)
    ours_tp, native_tp = mib / statistics.median(a), mib / statistics.median(b)
    table.add(
        _harness.Row(
            "100 MiB bulk transfer throughput",
            ours_tp,
            native_tp,
            ">= 0.9x",
            ours_tp / native_tp >= 0.9,
            unit="MiB/s",
        )
    )

    with _harness.one_cpu():
        _concurrent_row(table)
        _tls_row(table)
        _gevent_row(table, echo)
    return table


def _concurrent_row(table: _harness.Table) -> None:
    ours_c, close_ours = echo_setup(tp_socket, connections=100)
    native_c, close_native = echo_setup(__import__("socket"), connections=100)
    try:
        a2, b2 = _harness.compare(
            lambda n: concurrent_round_trips(ours_c, n),
            lambda n: concurrent_round_trips(native_c, n),
            50,
            rounds=5,
        )
        table.add(
            _harness.Row(
                "100 connections x 50 echoes, one thread each (one CPU)",
                a2 / 100,
                b2 / 100,
                "<= 1.3x",
                a2 / b2 <= 1.3,
                note="per round trip",
            )
        )
    finally:
        close_ours()
        close_native()


def _tls_row(table: _harness.Table) -> None:
    s_tp, c_tp = _tls_contexts(True)
    s_std, c_std = _tls_contexts(False)
    (ours,), close_ours = echo_setup(tp_socket, s_tp, c_tp)
    (native,), close_native = echo_setup(__import__("socket"), s_std, c_std)
    try:
        _harness.ratio_row(
            table,
            "TLS echo 1 KiB round trip (one CPU)",
            lambda n: round_trips(ours, n),
            lambda n: round_trips(native, n),
            2000,
            1.3,
        )
    finally:
        close_ours()
        close_native()


def _gevent_row(table: _harness.Table, echo: _harness.Row) -> None:
    script = Path(__file__).with_name("_gevent_echo.py")
    try:
        out = subprocess.run(
            [sys.executable, str(script), "3000", "7"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        gevent_echo = float(out.stdout.strip().splitlines()[-1])
        table.add(
            _harness.Row(
                "gevent monkey-patched echo (for comparison)",
                gevent_echo,
                echo.native,
                "report",
                True,
                note=f"threadpatch: {echo.ratio:.2f}x",
            )
        )
    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
        table.add(
            _harness.Row(
                "gevent monkey-patched echo",
                0.0,
                None,
                "report",
                True,
                note=f"not run: {type(exc).__name__} (pip install '.[bench]')",
            )
        )
