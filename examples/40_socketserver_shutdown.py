"""A threading server shuts down promptly even though its clients hang.

Three clients connect and never send a line.  Their handler threads block
reading from them.  With the stdlib's ThreadingTCPServer, shutdown() would
stop accepting but the handlers would wait forever (and server_close() would
join them forever).  threadpatch's ThreadingTCPServer cancels them: each
handler gets ThreadCancelled at its blocked read, runs its finally block, and
the whole shutdown takes milliseconds.
"""

from __future__ import annotations

import socket
import threading
import time

import threadpatch
from threadpatch import socketserver

N_CLIENTS = 3
started = threading.Semaphore(0)
# Handler threads print concurrently; print() writes the text and the newline
# separately, so without a lock their lines interleave mid-line.  A native lock
# (this demo does not patch threading): taking it in a cancelled handler's
# finally block must not be a cancellation point.
_print_lock = threading.Lock()


def say(*args: object) -> None:
    with _print_lock:
        print(*args, flush=True)


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        peer = self.client_address[1]
        say(f"  handler for client :{peer}: waiting for a line...")
        started.release()
        try:
            line = self.rfile.readline()  # the client never sends one
            self.wfile.write(line.upper())
        except threadpatch.ThreadCancelled:
            say(f"  handler for client :{peer}: cancelled at its blocked read")
            raise
        finally:
            say(f"  handler for client :{peer}: finally block ran, connection closing")


def main() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    say(f"server listening on {server.server_address}")
    serving = threadpatch.spawn(server.serve_forever, name="serve_forever")

    clients = [socket.create_connection(server.server_address) for _ in range(N_CLIENTS)]
    for _ in range(N_CLIENTS):
        started.acquire(timeout=10)
    say(f"{N_CLIENTS} clients connected and hanging; handler threads:", len(server.handler_threads))

    t0 = time.monotonic()
    say("calling server.shutdown() ...")
    server.shutdown()
    server.server_close()
    elapsed = time.monotonic() - t0
    serving.join(5)
    say(
        f"shutdown() + server_close() returned in {elapsed * 1000:.1f} ms;"
        f" handler threads left: {len(server.handler_threads)}"
    )

    for c in clients:
        say(f"  client :{c.getsockname()[1]} sees the connection closed:", c.recv(10) == b"")
        c.close()
    assert elapsed < 5, "shutdown was not prompt"


if __name__ == "__main__":
    main()
