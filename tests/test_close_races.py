"""Another thread closes or shuts down what a blocked call waits on: the native outcome.

Each case blocks one thread in a call, then, from the test's thread, closes or
shuts down what it waits on (a socket, a selector, the TLS layer) and, where
that alone wakes nobody (``close()`` does not wake a ``poll()`` on Linux),
makes a waited-on object ready.  The case runs twice: on the stdlib's own
objects with nothing of threadpatch in the way, and on threadpatch's.  The
outcomes (the result, or the exception's type and errno) must be equal, and
the blocked thread must end.

What the native call reads once, at entry (descriptors, the poll or epoll
registrations, the TLS object), threadpatch must read once too: looking it up
again after the wait turns the native EOF or ``EBADF`` into a ``ValueError``
("file descriptor cannot be a negative integer", "Read on closed or unwrapped
SSL socket") or an ``AttributeError``.

The stdlib sockets get a socket timeout: the native call then waits in
``poll()`` and retries on the socket's current descriptor, which is what a
threadpatch socket always does (its descriptor is non-blocking whatever its
timeout).  A native call on a socket without a timeout blocks in the
receive itself and reads from the closed file: that one difference is by
design.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import select as std_select
import selectors as std_selectors
import socket as std_socket
import ssl as std_ssl
import threading
from collections.abc import Callable
from typing import Any

import pytest

from threadpatch import _core, _socket
from threadpatch import select as tp_select
from threadpatch import selectors as tp_selectors
from threadpatch import socket as tp_socket
from threadpatch import ssl as tp_ssl

from ._helpers import wait_until
from .servers import BacklogServer, TLSCerts
from .test_socket import wait_path  # noqa: F401 - the fixture: C and pure-Python socket methods

Outcome = tuple[Any, Any]


@dataclasses.dataclass(frozen=True)
class Impl:
    """The modules a case builds its objects from: the stdlib's, or threadpatch's."""

    name: str
    socket: Any
    select: Any
    selectors: Any
    ssl_context: type[std_ssl.SSLContext]


NATIVE = Impl("native", std_socket, std_select, std_selectors, std_ssl.SSLContext)
OURS = Impl("threadpatch", tp_socket, tp_select, tp_selectors, tp_ssl.SSLContext)

BIG = b"x" * (8 << 20)  # more than any socket buffer: a send of it waits


@dataclasses.dataclass
class Setup:
    """What a case builder gets: the implementation, its timeout, and clean-up."""

    impl: Impl
    timeout: float | None
    stack: contextlib.ExitStack
    certs: TLSCerts
    poll_first: bool = False  # threadpatch's receives wait before they try (after a wait)

    def pair(self) -> tuple[std_socket.socket, std_socket.socket]:
        a, b = self.impl.socket.socketpair()
        self.stack.callback(a.close)
        self.stack.callback(b.close)
        a.settimeout(self.timeout)
        if self.poll_first and isinstance(a, tp_socket.socket):
            a._tp_wait = _socket._POLL_FIRST  # as after a receive that had to wait
        return a, b

    def fill(self, sock: std_socket.socket) -> None:
        """Fill ``sock``'s send buffer: its next send waits."""
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:
                sock.send(b"\0" * 65536)
        sock.settimeout(self.timeout)

    def listener(self) -> std_socket.socket:
        sock = self.impl.socket.create_server(("127.0.0.1", 0))
        self.stack.callback(sock.close)
        sock.settimeout(self.timeout)
        return sock

    def tls_pair(self) -> tuple[std_ssl.SSLSocket, std_ssl.SSLSocket]:
        """A TLS client of ``impl`` and its peer (always the stdlib's, in its own thread)."""
        listener = std_socket.create_server(("127.0.0.1", 0))
        server_ctx = self.certs.server_context()
        peers: list[std_ssl.SSLSocket] = []

        def serve() -> None:
            conn, _ = listener.accept()
            conn.settimeout(10)
            peers.append(server_ctx.wrap_socket(conn, server_side=True))

        with listener:
            t = threading.Thread(target=serve)
            t.start()
            raw = self.impl.socket.create_connection(listener.getsockname(), timeout=10)
            self.stack.callback(raw.close)
            client = self.certs.client_context(self.impl.ssl_context).wrap_socket(
                raw, server_hostname="localhost"
            )
            self.stack.callback(client.close)
            t.join(10)
        assert peers, "TLS handshake failed"
        self.stack.callback(peers[0].close)
        client.settimeout(self.timeout)
        return client, peers[0]


@dataclasses.dataclass(frozen=True)
class Case:
    build: Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]
    # A native outcome that is itself a race threadpatch may resolve the other
    # way: what threadpatch may give instead (None: exactly the native outcome).
    ours_instead: Callable[[Outcome], bool] | None = None


def _labels(**objs: object) -> Callable[[object], str]:
    names = {id(o): name for name, o in objs.items()}
    return lambda o: names[id(o)]


# -- select(), poll and epoll objects ------------------------------------------------


def select_close(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    (a, _), (c, d) = s.pair(), s.pair()
    label = _labels(a=a, c=c)

    def call() -> object:
        return [[label(o) for o in ready] for ready in s.impl.select.select([a, c], [], [c, a], 30)]

    def act() -> None:
        a.close()
        d.send(b"x")

    return call, act


def select_fds_close(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    (a, _), (c, d) = s.pair(), s.pair()
    fa, fc = a.fileno(), c.fileno()
    label = {fa: "a", fc: "c"}

    def call() -> object:
        return [[label[fd] for fd in ready] for ready in s.impl.select.select([fa, fc], [], [], 30)]

    def act() -> None:
        a.close()
        d.send(b"x")

    return call, act


def select_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    a, _ = s.pair()
    return (lambda: s.impl.select.select([a], [], [], 30) == ([a], [], [])), (
        lambda: a.shutdown(std_socket.SHUT_RDWR)
    )


def _poll_with(s: Setup, a: Any, c: Any) -> Callable[[], object]:
    p = s.impl.select.poll()
    label = {a.fileno(): "a", c.fileno(): "c"}
    p.register(a, std_select.POLLIN)
    p.register(c, std_select.POLLIN)
    return lambda: sorted((label[fd], ev) for fd, ev in p.poll(30_000))


def poll_close(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    (a, _), (c, d) = s.pair(), s.pair()

    def act() -> None:
        a.close()
        d.send(b"x")

    return _poll_with(s, a, c), act


def poll_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    (a, _), (c, _) = s.pair(), s.pair()
    return _poll_with(s, a, c), lambda: a.shutdown(std_socket.SHUT_RDWR)


def _epoll_with(s: Setup, *socks: Any) -> tuple[Any, Callable[[], object]]:
    ep = s.impl.select.epoll()
    s.stack.callback(ep.close)
    label = {sock.fileno(): "abc"[i] for i, sock in enumerate(socks)}
    for sock in socks:
        ep.register(sock, std_select.EPOLLIN)
    return ep, lambda: sorted((label[fd], ev) for fd, ev in ep.poll(30))


def epoll_close(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    (a, _), (c, d) = s.pair(), s.pair()
    _, call = _epoll_with(s, a, c)

    def act() -> None:
        a.close()
        d.send(b"x")

    return call, act


def epoll_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    a, _ = s.pair()
    _, call = _epoll_with(s, a)
    return call, lambda: a.shutdown(std_socket.SHUT_RDWR)


def epoll_closed_itself(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    a, b = s.pair()
    ep, call = _epoll_with(s, a)

    def act() -> None:
        ep.close()
        b.send(b"x")

    return call, act


# -- selectors -------------------------------------------------------------------------


def _selector(s: Setup, cls: str, *socks: Any) -> tuple[Any, Callable[[], object]]:
    sel = getattr(s.impl.selectors, cls)()
    s.stack.callback(sel.close)
    for i, sock in enumerate(socks):
        sel.register(sock, std_selectors.EVENT_READ, "abc"[i])
    return sel, lambda: sorted((key.data, ev) for key, ev in sel.select(30))


def selector_close(cls: str) -> Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]:
    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        (a, _), (c, d) = s.pair(), s.pair()
        _, call = _selector(s, cls, a, c)

        def act() -> None:
            a.close()
            d.send(b"x")

        return call, act

    return build


def selector_shutdown(
    cls: str,
) -> Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]:
    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        a, _ = s.pair()
        _, call = _selector(s, cls, a)
        return call, lambda: a.shutdown(std_socket.SHUT_RDWR)

    return build


def selector_closed_itself(
    cls: str,
) -> Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]:
    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        a, b = s.pair()
        sel, call = _selector(s, cls, a)

        def act() -> None:
            sel.close()
            b.send(b"x")

        return call, act

    return build


# -- sockets -----------------------------------------------------------------------------

RECEIVES: dict[str, Callable[[Any], object]] = {
    "recv": lambda a: a.recv(10),
    "recv_into": lambda a: _into(a.recv_into),
    "recvfrom": lambda a: a.recvfrom(10),
    "recvfrom_into": lambda a: _into(lambda buf: a.recvfrom_into(buf)[0]),
    "recvmsg": lambda a: a.recvmsg(10),
    "recvmsg_into": lambda a: _into(lambda buf: a.recvmsg_into([buf])[0]),
}


def _into(receive: Callable[[bytearray], int]) -> bytes:
    buf = bytearray(10)
    return bytes(buf[: receive(buf)])


Build = Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]


def shutdown_case(
    op: Callable[[Any], object],
    how: int = std_socket.SHUT_RDWR,
    *,
    tls: bool = False,
    fill: bool = False,
) -> Build:
    """``op`` on one end of a pair (TLS: the client side) waits; another thread shuts it down."""

    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        a, _ = s.tls_pair() if tls else s.pair()
        if fill:
            s.fill(a)  # its send buffer is full: a send waits
        return (lambda: op(a)), lambda: a.shutdown(how)

    return build


def close_case(
    op: Callable[[Any], object], *, tls: bool = False, fill: bool = False, peer_leaves: bool = False
) -> Build:
    """``op`` waits; another thread closes it, then the peer sends, or leaves (``peer_leaves``).

    What the peer does wakes the wait (a receive by data, a send by the peer's close).
    """

    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        a, peer = s.tls_pair() if tls else s.pair()
        if fill:
            s.fill(a)

        def act() -> None:
            a.close()
            if peer_leaves:
                peer.close()  # the peer is gone
            else:
                peer.send(b"x")

        return (lambda: op(a)), act

    return build


def receive_close_reused(
    op: Callable[[Any], object],
) -> Callable[[Setup], tuple[Callable[[], object], Callable[[], None]]]:
    """Closed while waiting, and its descriptor number given to another socket with data."""

    def build(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
        a, b = s.pair()

        c, d = std_socket.socketpair()
        s.stack.callback(c.close)
        s.stack.callback(d.close)

        def act() -> None:
            number = a.fileno()
            a.close()
            os.dup2(c.fileno(), number)  # the number now names another socket...
            s.stack.callback(os.close, number)
            d.send(b"not yours")  # ...with data in it
            b.send(b"x")  # wakes the wait: the closed socket's file is still alive

        return (lambda: op(a)), act

    return build


def _accepted(listener: Any) -> str:
    conn, _ = listener.accept()
    conn.close()
    return "accepted"


def accept_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    listener = s.listener()
    return (lambda: _accepted(listener)), lambda: listener.shutdown(std_socket.SHUT_RDWR)


def connect_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    srv = s.stack.enter_context(BacklogServer())
    sock = s.impl.socket.socket(std_socket.AF_INET, std_socket.SOCK_STREAM)
    s.stack.callback(sock.close)
    sock.settimeout(s.timeout)
    return (lambda: sock.connect(srv.address)), lambda: sock.shutdown(std_socket.SHUT_RDWR)


def readline_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    a, _ = s.pair()
    f = a.makefile("rb")
    s.stack.callback(f.close)
    return f.readline, lambda: a.shutdown(std_socket.SHUT_RDWR)


def readline_close(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    a, b = s.pair()
    f = a.makefile("rb")
    s.stack.callback(f.close)

    def act() -> None:
        a.close()  # the file keeps the descriptor open
        b.send(b"line\n")

    return f.readline, act


# -- TLS ---------------------------------------------------------------------------------

TLS_READS: dict[str, Callable[[Any], object]] = {
    "read": lambda c: c.read(10),
    "read_into": lambda c: _into(lambda buf: c.read(10, buf)),
    "recv": lambda c: c.recv(10),
    "recv_into": lambda c: _into(c.recv_into),
}


TLS_WRITES: dict[str, Callable[[Any], object]] = {
    "write": lambda c: c.write(BIG),
    "send": lambda c: c.send(BIG),
    "sendall": lambda c: c.sendall(BIG),
}


def _unwrapped(c: Any) -> str:
    c.unwrap()
    return "unwrapped"


def tls_unwrap_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    c, _ = s.tls_pair()  # the peer never answers our close_notify: unwrap waits
    return (lambda: _unwrapped(c)), lambda: c.shutdown(std_socket.SHUT_RDWR)


def tls_readline_shutdown(s: Setup) -> tuple[Callable[[], object], Callable[[], None]]:
    c, _ = s.tls_pair()
    f = c.makefile("rb")
    s.stack.callback(f.close)
    return f.readline, lambda: c.shutdown(std_socket.SHUT_RD)


def _is_os_error(outcome: Outcome) -> bool:
    return isinstance(outcome[0], type) and issubclass(outcome[0], OSError)


SELECTOR_CLASSES = ["SelectSelector", "PollSelector", "EpollSelector"]

SELECT_CASES: dict[str, Case] = {
    "select_close": Case(select_close),
    "select_fds_close": Case(select_fds_close),
    "select_shutdown": Case(select_shutdown),
    "poll_close": Case(poll_close),
    "poll_shutdown": Case(poll_shutdown),
    "epoll_close": Case(epoll_close),
    "epoll_shutdown": Case(epoll_shutdown),
    # The native epoll_wait() holds the closed epoll file and returns the
    # event; once the epoll object is closed, nobody can read its events.
    "epoll_closed_itself": Case(epoll_closed_itself, lambda outcome: outcome == ("ok", [])),
    **{f"{cls}_close": Case(selector_close(cls)) for cls in SELECTOR_CLASSES},
    **{f"{cls}_shutdown": Case(selector_shutdown(cls)) for cls in SELECTOR_CLASSES},
    **{f"{cls}_closed_itself": Case(selector_closed_itself(cls)) for cls in SELECTOR_CLASSES},
}

SOCKET_CASES: dict[str, Case] = {
    **{f"{name}_shutdown": Case(shutdown_case(op)) for name, op in RECEIVES.items()},
    "recv_shut_rd": Case(shutdown_case(RECEIVES["recv"], std_socket.SHUT_RD)),
    **{f"{name}_close": Case(close_case(op)) for name, op in RECEIVES.items()},
    **{f"{name}_close_reused": Case(receive_close_reused(op)) for name, op in RECEIVES.items()},
    "accept_shutdown": Case(accept_shutdown),
    "connect_shutdown": Case(connect_shutdown),
    "send_shutdown": Case(shutdown_case(lambda a: a.send(BIG), fill=True)),
    "sendall_shutdown": Case(shutdown_case(lambda a: a.sendall(BIG), fill=True)),
    "send_close": Case(close_case(lambda a: a.send(BIG), fill=True, peer_leaves=True)),
    "sendall_close": Case(close_case(lambda a: a.sendall(BIG), fill=True, peer_leaves=True)),
    "readline_shutdown": Case(readline_shutdown),
    "readline_close": Case(readline_close),
}

TLS_CASES: dict[str, Case] = {
    **{f"tls_{name}_shutdown": Case(shutdown_case(op, tls=True)) for name, op in TLS_READS.items()},
    **{
        f"tls_{name}_shut_rd": Case(shutdown_case(op, std_socket.SHUT_RD, tls=True))
        for name, op in TLS_READS.items()
    },
    **{f"tls_{name}_close": Case(close_case(op, tls=True)) for name, op in TLS_READS.items()},
    **{
        f"tls_{name}_shutdown": Case(shutdown_case(op, tls=True)) for name, op in TLS_WRITES.items()
    },
    **{
        f"tls_{name}_close": Case(close_case(op, tls=True, peer_leaves=True))
        for name, op in TLS_WRITES.items()
    },
    "tls_unwrap_shutdown": Case(tls_unwrap_shutdown),
    # The retried C shutdown() checks the socket first ("Underlying socket
    # connection gone"); the native one, inside its own loop, gets EBADF.
    "tls_unwrap_close": Case(close_case(_unwrapped, tls=True, peer_leaves=True), _is_os_error),
    "tls_readline_shut_rd": Case(tls_readline_shutdown),
}


# -- the harness -----------------------------------------------------------------------


def _outcome(call: Callable[[], object]) -> Outcome:
    try:
        return "ok", call()
    except Exception as exc:
        return type(exc), getattr(exc, "errno", None)


def _wait_native_blocked(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Wait until ``thread`` sleeps in a system call other than a futex (the GIL, a lock)."""
    task = f"/proc/self/task/{thread.native_id}"
    seen = {"state": "?", "wchan": "?", "any_wchan": ""}

    def in_a_native_call_or_ended() -> bool:
        if not thread.is_alive():
            return True
        with open(f"{task}/stat") as f:
            state = seen["state"] = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"{task}/wchan") as f:
            wchan = seen["wchan"] = f.read()  # "0" while running
        if wchan not in ("", "0"):
            seen["any_wchan"] = wchan
        return state == "S" and wchan not in ("", "0") and "futex" not in wchan

    def what() -> str:
        return f"the native call blocked (last seen: state {seen['state']}, in {seen['wchan']})"

    try:
        wait_until(in_a_native_call_or_ended, timeout, what)
    except AssertionError:
        if not seen["any_wchan"]:  # pragma: no cover - a kernel that hides wchan
            pytest.skip("cannot see where a native thread blocks")
        raise
    if not thread.is_alive():
        pytest.fail(f"the thread ended before its native call blocked ({what()})")


def _make_wake_fd() -> None:
    """Let the calling thread make its wake-up descriptor, as any earlier wait does."""
    r, w = os.pipe()
    try:
        _core.current_state().wait_fd(r, std_select.POLLIN, 0)
    finally:
        os.close(r)
        os.close(w)


def run_case(
    case: Case,
    impl: Impl,
    timeout: float | None,
    certs: TLSCerts,
    wait_blocked: Callable[[threading.Thread], None],
    order: str = "cold",
) -> Outcome:
    """Block a plain thread in the case's call, act on it, and return what the call gave.

    ``order`` is where threadpatch's receive is: "cold", a thread's first
    wait; "try_first", a thread that has waited before (its wake-up
    descriptor exists: with the C accelerator, the retry waits and receives
    in one C call); "poll_first", that too, and the receive waits before it
    tries, as after a receive that had to wait.
    """
    poll_first = order == "poll_first"
    with contextlib.ExitStack() as stack:
        call, act = case.build(Setup(impl, timeout, stack, certs, poll_first))
        outcomes: list[Outcome] = []

        def target() -> None:
            if order != "cold" and impl is OURS:
                _make_wake_fd()
            outcomes.append(_outcome(call))

        thread = threading.Thread(target=target, name=impl.name)
        thread.start()
        try:
            wait_blocked(thread)
        finally:
            act()  # even if the wait failed: the thread must end
            thread.join(timeout=10)
        assert not thread.is_alive(), f"{impl.name}: the call did not end"
    assert outcomes, f"{impl.name}: the call raised a BaseException"
    return outcomes[0]


@pytest.fixture(scope="module")
def certs() -> TLSCerts:
    return TLSCerts()


class TestCloseRaces:
    """One thread waits; another closes or shuts down under it; the stdlib's outcome."""

    def check(
        self,
        case: Case,
        timeout: float | None,
        certs: TLSCerts,
        wait_all_threads_blocked: Callable[..., None],
        order: str = "cold",
    ) -> None:
        native = run_case(case, NATIVE, 30.0, certs, _wait_native_blocked)
        ours = run_case(
            case,
            OURS,
            timeout,
            certs,
            # Parked, and (parked is set just before the poll) inside the poll.
            lambda t: (wait_all_threads_blocked(expected=1), _wait_native_blocked(t)),
            order,
        )
        assert ours[0] not in (ValueError, AttributeError, TypeError)
        if case.ours_instead is not None and ours != native:
            assert case.ours_instead(ours), (ours, native)
        else:
            assert ours == native

    @pytest.mark.parametrize("name", SELECT_CASES)
    def test_select(
        self, name: str, certs: TLSCerts, wait_all_threads_blocked: Callable[..., None]
    ) -> None:
        self.check(SELECT_CASES[name], None, certs, wait_all_threads_blocked)

    @pytest.mark.parametrize("order", ["cold", "try_first", "poll_first"])
    @pytest.mark.parametrize("timeout", [None, 30.0])
    @pytest.mark.parametrize("name", SOCKET_CASES)
    def test_socket(
        self,
        name: str,
        timeout: float | None,
        order: str,
        wait_path: str,  # noqa: F811 - the fixture
        certs: TLSCerts,
        wait_all_threads_blocked: Callable[..., None],
    ) -> None:
        self.check(SOCKET_CASES[name], timeout, certs, wait_all_threads_blocked, order)

    @pytest.mark.parametrize("timeout", [None, 30.0])
    @pytest.mark.parametrize("name", TLS_CASES)
    def test_tls(
        self,
        name: str,
        timeout: float | None,
        certs: TLSCerts,
        wait_all_threads_blocked: Callable[..., None],
    ) -> None:
        self.check(TLS_CASES[name], timeout, certs, wait_all_threads_blocked)


def test_expected_native_outcomes(certs: TLSCerts) -> None:
    """The cases test what they mean to: the native outcomes of a few, spelled out."""
    by_name = {**SELECT_CASES, **SOCKET_CASES, **TLS_CASES}

    def native(name: str) -> Outcome:
        return run_case(by_name[name], NATIVE, 30.0, certs, _wait_native_blocked)

    # A descriptor closed while select() waits is reported ready, in every list.
    assert native("select_close") == ("ok", [["a", "c"], [], ["a"]])
    assert native("poll_close") == ("ok", [("a", std_select.POLLNVAL), ("c", std_select.POLLIN)])
    assert native("recv_shutdown") == ("ok", b"")
    assert native("recv_close") == (OSError, errno.EBADF)
    assert native("recv_close_reused") == (OSError, errno.EBADF)
    assert native("accept_shutdown") == (OSError, errno.EINVAL)
    assert native("tls_read_shut_rd") == ("ok", b"")
    assert native("tls_recv_into_shut_rd") == ("ok", b"")
