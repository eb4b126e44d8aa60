"""Patched programs whose threads close or shut down what another thread waits on.

The shapes of two third-party test suites that met ``ValueError`` from
threadpatch where the stdlib gives EOF or ``EBADF``: urllib3's
``test_socket_shutdown_stops_recv`` (``HTTPResponse.shutdown()`` ends a TLS
read blocked in another thread) and requests' test server (the main thread
closes the listening socket its server thread waits on in ``select()``).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
import urllib3
from urllib3.exceptions import ProtocolError

import threadpatch
from tests.servers import TLSCerts

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def test_urllib3_response_shutdown_stops_a_tls_read(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    certs = TLSCerts()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done, got_headers = threading.Event(), threading.Event()

    def serve() -> None:  # sends half a body, then holds the line until the test is done
        conn, _ = listener.accept()
        conn.settimeout(10)
        with certs.server_context().wrap_socket(conn, server_side=True) as tls:
            request = b""
            while not request.endswith(b"\r\n\r\n"):
                request += tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHi-")
            done.wait(10)

    outcome: list[BaseException | bytes] = []
    responses: list[urllib3.BaseHTTPResponse] = []

    def client() -> None:
        ctx = certs.client_context(ssl.SSLContext)  # the stdlib's: patching swaps its socket
        with urllib3.HTTPSConnectionPool("127.0.0.1", port, ssl_context=ctx) as pool:
            response = pool.urlopen("GET", "/", preload_content=False, retries=0)
            responses.append(response)
            got_headers.set()
            try:
                outcome.append(response.read())
            except Exception as exc:
                outcome.append(exc)

    with listener, threadpatch.patched():
        server = threading.Thread(target=serve)
        server.start()
        reader = threading.Thread(target=client)
        reader.start()
        try:
            assert got_headers.wait(10), "the reader never got the response headers"
            wait_all_threads_blocked(expected=2)  # the reader in its read, the server on done
            responses[0].shutdown()
        finally:
            reader.join(timeout=10)
            done.set()
            server.join(timeout=10)
        assert not reader.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ProtocolError), outcome
    assert "Connection broken" in str(outcome[0])


# requests' tests/testserver/server.py: the server thread waits for a
# connection in select() with a timeout; the main thread closes the listening
# socket under it.  Unpatched, select() reports the closed socket ready at its
# timeout and the accept() that follows raises EBADF, which the server catches.
REQUESTS_SERVER = """\
import select, socket, sys, threading, time

listener = socket.create_server(("127.0.0.1", 0))
outcome = []

def serve():
    try:
        ready, _, _ = select.select([listener], [], [], 1.0)
        outcome.append("ready" if ready == [listener] else repr(ready))
        if ready:
            listener.accept()
    except OSError as exc:
        outcome.append(f"OSError {exc.errno}")
    except Exception as exc:
        outcome.append(f"{type(exc).__name__}: {exc}")

t = threading.Thread(target=serve)
t.start()
deadline = time.monotonic() + 10
while time.monotonic() < deadline:  # until the thread sleeps in a system call, not a futex
    with open(f"/proc/self/task/{t.native_id}/stat") as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    with open(f"/proc/self/task/{t.native_id}/wchan") as f:
        wchan = f.read()
    if state == "S" and wchan not in ("", "0") and "futex" not in wchan:
        break
    time.sleep(0.001)
listener.close()
t.join(10)
print(outcome, t.is_alive())
"""


@pytest.mark.slow  # select() in the child waits for its 1 s timeout
def test_requests_server_shape_select_on_a_closed_listener(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(REQUESTS_SERVER)
    outputs = []
    for prefix in ([], ["-m", "threadpatch"]):
        proc = subprocess.run(
            [sys.executable, *prefix, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    native, patched = outputs
    assert native == "['ready', 'OSError 9'] False\n"
    assert patched == native
