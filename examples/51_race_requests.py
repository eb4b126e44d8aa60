"""Race four unmodified ``requests.get`` calls: the fastest wins, the rest are cancelled.

Four loopback HTTP servers answer after different delays.  A
``ThreadGroup(wait=any)`` spawns one ``requests.get`` per server; when the
fastest returns, the group cancels the three still waiting in socket reads.
"""

import contextlib
import socketserver
import threading
import time

import requests

import threadpatch

DELAYS = {"mirror-a": 2.0, "mirror-b": 0.2, "mirror-c": 1.5, "mirror-d": 3.0}


def start_server(delay: float) -> socketserver.TCPServer:
    class Slow(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()  # the request line is enough for us
            time.sleep(delay)
            body = f"answered after {delay} s".encode()
            head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            with contextlib.suppress(OSError):  # the client gave up (it was cancelled)
                self.wfile.write(head + body)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


servers = {name: start_server(delay) for name, delay in DELAYS.items()}
urls = {name: f"http://127.0.0.1:{s.server_address[1]}/" for name, s in servers.items()}
for name, delay in DELAYS.items():
    print(f"{name} at {urls[name]} answers after {delay} s")

threadpatch.patch_all()


def fetch(name: str) -> str:
    try:
        return f"{name}: {requests.get(urls[name]).text}"
    except threadpatch.ThreadCancelled:
        print(f"  {name}: cancelled while waiting in requests.get")
        raise


t0 = time.monotonic()
with threadpatch.ThreadGroup(wait=any) as g:
    for name in DELAYS:
        g.spawn(fetch, name, name=name)
elapsed = time.monotonic() - t0
print(f"winner: {g.result!r} after {elapsed:.2f} s")
cancelled = [t.name for t in g.threads if t.cancelled]
print(f"cancelled: {cancelled}")
assert g.result.startswith("mirror-b") and len(cancelled) == 3 and elapsed < 1.5

threadpatch.unpatch_all()
for server in servers.values():
    server.shutdown()
    server.server_close()
