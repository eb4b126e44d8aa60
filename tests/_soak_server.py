"""A loopback HTTP/1.1 server that stalls, drips and resets on request (for tests/test_soak.py).

Run as a script in a child process (``python tests/_soak_server.py``), so that
it depends on nothing of the code under test and its descriptors and threads
are not the soak's: it prints its port on the first line of stdout and runs
until its stdin reaches end of file (or for at most ``MAX_LIFETIME`` seconds).

One thread, one ``selectors`` loop and a heap of timed actions.  The client
picks the fault in the query string, so a seeded client is a reproducible
plan; every fault is bounded by what the client asked for, except ``stall``,
which holds the connection until the client closes it.

    GET /?mode=ok&n=100&tok=ab&ka=1     200, n body bytes, keep-alive if ka=1
    mode=delay&ms=50                    respond as ok after ms milliseconds
    mode=stall                          read the request, never answer
    mode=slowhead&ms=50                 half a status line, ms later the rest
    mode=drip&n=100&c=7&ms=2            headers, then c body bytes every ms
    mode=chunked&n=100&c=7&ms=2         the same with Transfer-Encoding: chunked
    mode=reset&at=k                     send k bytes of the response, then RST
    mode=close&at=k                     send k bytes of the response, then FIN

The body is ``tok`` repeated and cut to ``n`` bytes (see :func:`body`).
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import socket
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

MAX_LIFETIME = 900.0
MAX_REQUEST = 16384


def body(tok: str, n: int) -> bytes:
    """The body the server sends for ``tok`` and ``n`` (clients check what they read)."""
    unit = (tok or "x").encode()
    return (unit * (n // len(unit) + 1))[:n]


class _Conn:
    __slots__ = ("busy", "closed", "inbuf", "outbuf", "sock", "steps")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.steps: list[tuple[float, object]] = []  # (delay, bytes | "reset" | "close" | "end")
        self.busy = False  # a response is in progress: do not parse the next request yet
        self.closed = False


def _plan(query: dict[str, str]) -> list[tuple[float, object]]:
    """The steps of one response: (delay before it in seconds, what to do)."""
    mode = query.get("mode", "ok")
    n = int(query.get("n", "16"))
    tok = query.get("tok", "x")
    keep = query.get("ka", "0") == "1"
    ms = int(query.get("ms", "0")) / 1000
    chunk = max(1, int(query.get("c", "1")))
    conn_header = b"keep-alive" if keep else b"close"
    payload = body(tok, n)
    finish: object = "end" if keep else "close"
    if mode == "stall":
        return []
    if mode in ("chunked",):
        head = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: "
            + conn_header
            + b"\r\n\r\n"
        )
        steps: list[tuple[float, object]] = [(0.0, head)]
        for i in range(0, n, chunk):
            piece = payload[i : i + chunk]
            steps.append((ms, b"%x\r\n" % len(piece) + piece + b"\r\n"))
        steps.append((ms, b"0\r\n\r\n"))
        steps.append((0.0, finish))
        return steps
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: " % n + conn_header + b"\r\n\r\n"
    whole = head + payload
    if mode == "drip":
        steps = [(0.0, head)]
        steps += [(ms, payload[i : i + chunk]) for i in range(0, n, chunk)]
        steps.append((0.0, finish))
        return steps
    if mode == "slowhead":
        return [(0.0, whole[:9]), (ms, whole[9:]), (0.0, finish)]
    if mode in ("reset", "close"):
        at = min(int(query.get("at", "0")), len(whole))
        return [(ms, whole[:at]), (0.0, mode)]
    if mode == "delay":
        return [(ms, whole), (0.0, finish)]
    return [(0.0, whole), (0.0, finish)]


class Server:
    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.listener.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
        self.timers: list[tuple[float, int, _Conn]] = []
        self.seq = itertools.count()
        self.running = True

    def serve(self) -> None:
        started = time.monotonic()
        while self.running and time.monotonic() - started < MAX_LIFETIME:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, conn = heapq.heappop(self.timers)
                self._step(conn)
            timeout = max(0.0, self.timers[0][0] - now) if self.timers else 1.0
            for key, _ in self.sel.select(min(timeout, 1.0)):
                if key.data == "accept":
                    self._accept()
                elif key.data == "stdin":
                    self.running = False
                else:
                    self._readable(key.data)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn, reset: bool = False) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.sel.unregister(conn.sock)
        if reset:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        if len(conn.inbuf) > MAX_REQUEST:
            self._close(conn, reset=True)
            return
        self._maybe_start(conn)

    def _maybe_start(self, conn: _Conn) -> None:
        if conn.busy or conn.closed or b"\r\n\r\n" not in conn.inbuf:
            return
        head, conn.inbuf = conn.inbuf.split(b"\r\n\r\n", 1)
        try:
            target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
            query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
            steps = _plan(query)
        except (IndexError, ValueError, UnicodeDecodeError):
            steps = [
                (0.0, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                (0.0, "close"),
            ]
        conn.busy = True
        conn.steps = steps
        self._schedule(conn)

    def _schedule(self, conn: _Conn) -> None:
        if conn.closed or not conn.steps:
            return  # a stall: nothing more until the client goes away
        delay = conn.steps[0][0]
        heapq.heappush(self.timers, (time.monotonic() + delay, next(self.seq), conn))

    def _step(self, conn: _Conn) -> None:
        if conn.closed:
            return
        if conn.outbuf and not self._send(conn, b""):  # the last write did not fit
            if not conn.closed:
                heapq.heappush(self.timers, (time.monotonic() + 0.005, next(self.seq), conn))
            return
        _, action = conn.steps.pop(0)
        if action == "reset":
            self._close(conn, reset=True)
            return
        if action == "close":
            self._close(conn)
            return
        if action == "end":
            conn.busy = False
            self._maybe_start(conn)
            return
        assert isinstance(action, bytes)
        if not self._send(conn, action):
            conn.steps.insert(0, (0.0, b""))  # retry the rest soon
            heapq.heappush(self.timers, (time.monotonic() + 0.005, next(self.seq), conn))
            return
        self._schedule(conn)

    def _send(self, conn: _Conn, data: bytes) -> bool:
        """Send what is buffered plus ``data``; True if it all went out."""
        conn.outbuf += data
        try:
            sent = conn.sock.send(conn.outbuf)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return False
        conn.outbuf = conn.outbuf[sent:]
        return not conn.outbuf


def main() -> None:
    server = Server()
    print(server.listener.getsockname()[1], flush=True)
    server.serve()


if __name__ == "__main__":
    main()
