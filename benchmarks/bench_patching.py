"""Patching: a requests loop patched vs unpatched, import time, patch/unpatch cost.

* requests GET loop: one keep-alive ``requests.Session`` against a local
  HTTP/1.1 server in a thread of the same process; "ours" runs the loop
  inside ``patched()`` (client and server both patched), "native" outside.
  The target is a throughput ratio >= 0.9, i.e. a time ratio <= 1/0.9.
* ``import threadpatch``: cumulative ``-X importtime`` figure of a fresh
  interpreter (median of several, byte-code cached as for any user), which
  excludes interpreter start-up.
* ``patch_all()`` + ``unpatch_all()``: one full cycle in-process once the
  tables are loaded; and the first cycle of a fresh interpreter, which also
  imports the tables, the I/O modules and wrapt (reported, not a target).
"""

from __future__ import annotations

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

import requests

import threadpatch
from benchmarks._harness import Row, Table, compare, one_cpu


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two sends

    def do_GET(self) -> None:
        body = b"x" * 512
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _requests_row(table: Table) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    session = requests.Session()
    session.trust_env = False

    def loop(n: int) -> None:
        get = session.get
        for _ in range(n):
            get(url).content  # noqa: B018 - read the body

    def ours(n: int) -> None:
        with threadpatch.patched():
            loop(n)

    try:
        a, b = compare(ours, loop, 300, rounds=7)
    finally:
        session.close()
        server.shutdown()
        server.server_close()
    limit = 1 / 0.9
    table.add(
        Row(
            "requests GET loop (keep-alive, one CPU), patched vs not",
            a,
            b,
            f"<= {limit:.2f}x",
            a / b <= limit,
            note=f"throughput ratio {b / a:.2f}",
        )
    )


def _import_row(table: Table) -> None:
    # As users import it: with byte-code caches (the first run writes them,
    # even where PYTHONDONTWRITEBYTECODE is set for this process).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    figures = []
    for run in range(8):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import threadpatch"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        if run == 0:
            continue
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == "threadpatch":
                figures.append(int(parts[1]) / 1e6)
    seconds = statistics.median(figures)
    table.add(
        Row(
            "import threadpatch (-X importtime, cumulative)",
            seconds,
            None,
            "<= 50 ms",
            seconds <= 0.050,
        )
    )


def _cycle_rows(table: Table) -> None:
    threadpatch.patch_all()  # load the tables once
    threadpatch.unpatch_all()
    samples = []
    for _ in range(50):
        t0 = time.perf_counter()
        threadpatch.patch_all()
        threadpatch.unpatch_all()
        samples.append(time.perf_counter() - t0)
    seconds = statistics.median(samples)
    table.add(Row("patch_all() + unpatch_all()", seconds, None, "<= 20 ms", seconds <= 0.020))
    code = (
        "import time, threadpatch; t = time.perf_counter(); threadpatch.patch_all(); "
        "threadpatch.unpatch_all(); print(time.perf_counter() - t)"
    )
    first = statistics.median(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(5)
    )
    table.add(
        Row(
            "first patch_all() + unpatch_all() in a process",
            first,
            None,
            "(info)",
            True,
            note="imports tables, I/O modules, wrapt",
        )
    )


def run() -> Table:
    table = Table("patching")
    with one_cpu():  # client and server threads ping-pong: see one_cpu()
        _requests_row(table)
    _import_row(table)
    _cycle_rows(table)
    return table
