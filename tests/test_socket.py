"""threadpatch.socket: stdlib semantics, and every blocking call is a cancellation point."""

from __future__ import annotations

import os
import socket as std_socket
import tempfile
import time
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _core, _dns, _socket, _socket_methods
from threadpatch import socket as tp_socket
from threadpatch._core import ThreadCancelled, ThreadTimeout

from ._helpers import blocked_in, wait_until
from .servers import BacklogServer, DripServer, EchoServer, SilentServer, fd_count

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def settle_fds(before: int) -> None:
    """Wait (bounded) until the descriptor count is back to ``before``.

    Threads close their private wake-up descriptor as they end, which can be
    a moment after join() returns; anything still open after 5 s is a leak.
    """
    wait_until(lambda: fd_count() <= before, 5, lambda: f"{fd_count() - before} descriptors closed")


@pytest.fixture
def baseline() -> int:
    _core.get_hub().ensure_started()
    a, b = tp_socket.socketpair()  # the main thread's poller and wake fd exist afterwards
    with a, b:
        b.send(b"x")
        _core.current_state().wait_fd(a.fileno(), _socket_methods.POLLIN, 0)
    return fd_count()


@pytest.fixture
def pair() -> Iterator[tuple[tp_socket.socket, tp_socket.socket]]:
    a, b = tp_socket.socketpair()
    with a, b:
        yield a, b


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as srv:
        yield srv


def fill(sock: std_socket.socket) -> int:
    """Make ``sock``'s send side full (the peer never reads); the bytes written."""
    sock.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    total = 0
    poller = _core._natives.poll()
    poller.register(sock.fileno(), _socket_methods.POLLOUT)
    while True:
        try:
            total += sock.send(b"\0" * 65536)
        except BlockingIOError:
            # In-flight data may still move to the peer's buffer: full means
            # not writable for a while.
            if not poller.poll(20):
                break
    sock.settimeout(timeout)
    return total


# -- the class and its timeouts ------------------------------------------------------


def test_is_a_stdlib_socket(pair: tuple[tp_socket.socket, tp_socket.socket]) -> None:
    a, _ = pair
    assert isinstance(a, std_socket.socket)
    assert type(a) is tp_socket.socket
    assert repr(a).startswith("<threadpatch.socket.socket fd=")
    assert a.gettimeout() is None
    assert a.getblocking() is True
    assert a.timeout is None
    assert os.get_blocking(a.fileno())  # the stdlib's mode (tests/test_socket_fd_flags.py)


@pytest.mark.parametrize(
    "value",
    [None, 0, 0.0, 1, 2.5, 0.1, 1e-10, True, "x", -1, -0.5, float("nan"), 1e30, 2**70, [], -0.0],
)
def test_settimeout_matches_stdlib(value: Any) -> None:
    ours, std = tp_socket.socket(), std_socket.socket()
    with ours, std:
        results = []
        for s in (ours, std):
            try:
                s.settimeout(value)
            except Exception as exc:
                results.append((type(exc), str(exc)))
            else:
                results.append((s.gettimeout(), s.getblocking(), s.timeout))
        assert results[0] == results[1]


@pytest.mark.parametrize("flag", [True, False, 0, 1, 2, "x", 2.5, None])
def test_setblocking_matches_stdlib(flag: Any) -> None:
    ours, std = tp_socket.socket(), std_socket.socket()
    with ours, std:
        results = []
        for s in (ours, std):
            try:
                s.setblocking(flag)
            except Exception as exc:
                results.append((type(exc), str(exc)))
            else:
                results.append((s.gettimeout(), s.getblocking()))
        assert results[0] == results[1]


def test_default_timeout_applies() -> None:
    old = std_socket.getdefaulttimeout()
    std_socket.setdefaulttimeout(3.0)
    try:
        with tp_socket.socket() as s:
            assert s.gettimeout() == 3.0
    finally:
        std_socket.setdefaulttimeout(old)


def test_closed_socket_errors_match_stdlib() -> None:
    for cls in (tp_socket.socket, std_socket.socket):
        s = cls()
        s.close()
        with pytest.raises(OSError, match="Bad file descriptor"):
            s.recv(1)
        with pytest.raises(OSError, match="Bad file descriptor"):
            s.settimeout(1)
        with pytest.raises(OSError, match="Bad file descriptor"):
            s.sendall(b"x")


def _outcome(func: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("ok", func())
    except Exception as exc:
        return (type(exc), str(exc))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.socket(12345, m.SOCK_STREAM),
        lambda m: m.socket(m.AF_INET, 12345),
        lambda m: m.socket("inet"),
        lambda m, /: m.socketpair(m.AF_INET, m.SOCK_DGRAM, 999),
        lambda m: m.create_connection(("127.0.0.1", "notaport")),
        lambda m: m.getaddrinfo("127.0.0.1", 80, 12345),
        lambda m: m.getaddrinfo(b"\xff", 80),
        lambda m: m.gethostbyname(12),
        lambda m: m.getnameinfo(("127.0.0.1",), 0),
        lambda m: m.fromfd(-1, m.AF_INET, m.SOCK_STREAM),
    ],
)
def test_bad_input_matches_stdlib(call: Callable[[Any], Any]) -> None:
    assert _outcome(lambda: call(tp_socket)) == _outcome(lambda: call(std_socket))


@pytest.mark.parametrize(
    "method",
    [
        lambda s: s.recv("x"),
        lambda s: s.recv(-1),
        lambda s: s.recv_into(b"immutable"),
        lambda s: s.send("text"),
        lambda s: s.sendall(12),
        lambda s: s.sendto(b"x", ("127.0.0.1",)),
        lambda s: s.connect("notatuple"),
        lambda s: s.connect(("127.0.0.1", 70000)),
        lambda s: s.connect_ex(("127.0.0.1",)),
        lambda s: s.recvmsg(-1),
        lambda s: s.sendmsg(["x"]),
    ],
)
def test_bad_arguments_match_stdlib(method: Callable[[Any], Any]) -> None:
    results = []
    for cls in (tp_socket.socket, std_socket.socket):
        with cls() as s:
            results.append(_outcome(lambda s=s: method(s)))
    assert results[0] == results[1]


def test_nonblocking_socket_raises_blockingioerror(
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    a, _ = pair
    a.setblocking(False)
    for op in (lambda: a.recv(1), lambda: a.recv_into(bytearray(1)), lambda: a.recvmsg(1)):
        with pytest.raises(BlockingIOError):
            op()
    with tp_socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_socket_timeout_raises_timeouterror(
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    a, _ = pair
    a.settimeout(0.01)
    with pytest.raises(std_socket.timeout, match="timed out") as info:
        a.recv(1)
    assert type(info.value) is TimeoutError


def test_data_flows_and_makefile(pair: tuple[tp_socket.socket, tp_socket.socket]) -> None:
    a, b = pair
    a.sendall(b"hello\nworld\n" * 1000)
    with b.makefile("rb", buffering=0) as f:
        assert f.readline() == b"hello\n"
        assert f.read(6) == b"world\n"
    buf = bytearray(10)
    assert b.recv_into(buf, 5) == 5
    assert bytes(buf[:5]) == b"hello"
    with a.makefile("wb") as w:
        w.write(b"xyz")
    assert b.recv(1 << 20).endswith(b"xyz")


def test_sendall_large_buffer_and_memoryview(
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    import array

    a, b = pair
    data = array.array("i", range(300_000))  # 1.2 MB, itemsize 4
    got = bytearray()

    def reader() -> None:
        while len(got) < len(data) * 4:
            got.extend(b.recv(1 << 16))

    t = threadpatch.spawn(reader)
    a.sendall(memoryview(data))
    t.join(timeout=10)
    assert bytes(got) == data.tobytes()


def test_dup_accept_detach_fromfd_socketpair() -> None:
    with tp_socket.create_server(("127.0.0.1", 0)) as listener:
        assert type(listener) is tp_socket.socket
        listener.settimeout(5)
        with tp_socket.create_connection(listener.getsockname(), timeout=5) as c:
            conn, addr = listener.accept()
            with conn:
                assert type(conn) is tp_socket.socket
                assert conn.gettimeout() is None  # the default timeout, as the stdlib
                assert addr == c.getsockname()
                d = conn.dup()
                with d:
                    assert type(d) is tp_socket.socket
                    assert d.gettimeout() is None
                f = tp_socket.fromfd(c.fileno(), std_socket.AF_INET, std_socket.SOCK_STREAM)
                with f:
                    assert type(f) is tp_socket.socket
                c.sendall(b"ping")
                assert conn.recv(4) == b"ping"
                fd = conn.detach()
                assert os.get_blocking(fd)  # blocking, as a stdlib socket without timeout
                os.close(fd)


# -- cancellation of each blocking call -----------------------------------------------


def _connected(srv: Any) -> tp_socket.socket:
    return tp_socket.create_connection(srv.address, timeout=5)


def _with_file(s: tp_socket.socket, mode: str, func: Callable[[Any], Any], *args: Any) -> Any:
    with s.makefile(mode, *args) as f:
        return func(f)


BLOCKING_READS: dict[str, Callable[[tp_socket.socket], Any]] = {
    "recv": lambda s: s.recv(10),
    "recv_into": lambda s: s.recv_into(bytearray(10)),
    "recvfrom": lambda s: s.recvfrom(10),
    "recvfrom_into": lambda s: s.recvfrom_into(bytearray(10)),
    "recvmsg": lambda s: s.recvmsg(10),
    "recvmsg_into": lambda s: s.recvmsg_into([bytearray(10)]),
    "makefile_read": lambda s: _with_file(s, "rb", lambda f: f.read(10)),
}


@pytest.mark.parametrize("op", BLOCKING_READS.values(), ids=BLOCKING_READS.keys())
@pytest.mark.parametrize("timeout", [None, 30.0])
def test_read_is_cancellable(
    op: Callable[[tp_socket.socket], Any],
    timeout: float | None,
    baseline: int,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = tp_socket.socketpair()
    with a, b:
        a.settimeout(timeout)
        t = threadpatch.spawn(op, a)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        assert isinstance(t.exception, ThreadCancelled)
        # The socket stays usable, and nothing was consumed.
        b.sendall(b"data")
        assert a.recv(10) == b"data"
    settle_fds(baseline)


@pytest.mark.parametrize("op", BLOCKING_READS.values(), ids=BLOCKING_READS.keys())
def test_read_deadline_and_socket_timeout(
    op: Callable[[tp_socket.socket], Any],
    silent: SilentServer,
    baseline: int,
) -> None:
    with _connected(silent) as s:
        s.settimeout(30)
        with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.02):
            op(s)
        s.settimeout(0.02)  # now the socket's own timeout is the earlier one
        with threadpatch.timeout_after(30), pytest.raises(TimeoutError, match="timed out") as info:
            op(s)
        assert not isinstance(info.value, ThreadTimeout)
    silent.close()
    settle_fds(baseline)


def test_cancel_before_and_after(pair: tuple[tp_socket.socket, tp_socket.socket]) -> None:
    a, b = pair
    st = _core.current_state()
    b.sendall(b"ready")

    def cancelled_reader() -> tuple[bytes, str]:
        threadpatch.cancel(threadpatch.current())  # records the request only
        first = a.recv(5)  # data already there: completes without blocking
        try:
            a.recv(5)
        except ThreadCancelled:
            return first, "cancelled"
        return first, "not cancelled"

    assert threadpatch.spawn(cancelled_reader).join(timeout=5) == (b"ready", "cancelled")
    t = threadpatch.spawn(lambda: None)
    t.join(timeout=5)
    assert t.cancel() is True  # after: a no-op
    assert not st.interrupt


WRITES: dict[str, Callable[[tp_socket.socket], Any]] = {
    "send": lambda s: s.send(b"x" * 65536),
    "sendall": lambda s: s.sendall(b"x" * (1 << 22)),
    "sendto": lambda s: s.sendto(b"x" * 65536, s.getpeername()),
    "sendmsg": lambda s: s.sendmsg([b"x" * 65536]),
    "makefile_write": lambda s: _with_file(s, "wb", lambda f: f.write(b"x" * 65536), 0),
}


@pytest.mark.parametrize("op", WRITES.values(), ids=WRITES.keys())
def test_write_is_cancellable_and_has_deadlines(
    op: Callable[[tp_socket.socket], Any],
    silent: SilentServer,
    baseline: int,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    def until_blocked() -> None:  # the peer never reads: writing eventually waits
        while True:
            op(s)

    with _connected(silent) as s:
        s.settimeout(None)
        fill(s)
        t = threadpatch.spawn(until_blocked)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.02):
            until_blocked()
        s.settimeout(0.02)
        with pytest.raises(TimeoutError, match="timed out"):
            until_blocked()
    silent.close()
    settle_fds(baseline)


def test_message_calls_take_one_shot_iterables(
    pair: tuple[tp_socket.socket, tp_socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    """A generator of buffers survives the wait: the retry does not see it drained."""
    a, b = pair
    buf = bytearray(4)
    t = threadpatch.spawn(a.recvmsg_into, (x for x in [buf]))
    wait_all_threads_blocked(expected=1)  # the first attempt found nothing and waits
    b.sendall(b"data")
    nbytes, _, _, _ = t.join(timeout=5)
    assert (nbytes, buf) == (4, bytearray(b"data"))

    queued = fill(b)  # nobody reads a yet: the first sendmsg attempt says EAGAIN
    t = threadpatch.spawn(b.sendmsg, (x for x in [b"x" * 1024]), iter([]))
    wait_all_threads_blocked(expected=1)
    while queued:
        queued -= len(a.recv(queued))
    assert t.join(timeout=5) == 1024
    assert a.recv(2048) == b"x" * 1024


def test_sendall_reports_bytes_sent(
    silent: SilentServer, wait_all_threads_blocked: Callable[..., None]
) -> None:
    with _connected(silent) as s:
        s.settimeout(None)
        s.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
        data = b"x" * (8 << 20)
        t = threadpatch.spawn(s.sendall, data)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        assert 0 < t.exception.bytes_sent < len(data)  # type: ignore[union-attr]
        s.settimeout(0.02)
        with pytest.raises(TimeoutError) as info:
            s.sendall(data)
        assert 0 <= info.value.bytes_sent < len(data)  # type: ignore[attr-defined]


def test_accept_is_cancellable(
    baseline: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    with tp_socket.create_server(("127.0.0.1", 0)) as listener:
        t = threadpatch.spawn(listener.accept)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.02):
            listener.accept()
        listener.settimeout(0.02)
        with pytest.raises(TimeoutError):
            listener.accept()
        # still usable
        listener.settimeout(5)
        with std_socket.create_connection(listener.getsockname()):
            conn, _ = listener.accept()
            conn.close()
    settle_fds(baseline)


@pytest.mark.parametrize("method", ["connect", "connect_ex"])
def test_connect_to_full_backlog(
    method: str, baseline: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    with BacklogServer() as srv:
        s = tp_socket.socket()
        t = threadpatch.spawn(getattr(s, method), srv.address)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        s.close()
        with tp_socket.socket() as s, pytest.raises(ThreadTimeout):
            with threadpatch.timeout_after(0.02):
                getattr(s, method)(srv.address)
        with tp_socket.socket() as s:
            s.settimeout(0.02)
            if method == "connect":
                with pytest.raises(TimeoutError, match="timed out"):
                    s.connect(srv.address)
            else:
                assert s.connect_ex(srv.address) == 11  # EAGAIN, as the stdlib
    settle_fds(baseline)


def test_connect_errors_match_stdlib() -> None:
    with tp_socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        for timeout in (None, 5.0):
            results = []
            for cls in (tp_socket.socket, std_socket.socket):
                with cls() as s:
                    s.settimeout(timeout)
                    results.append(_outcome(lambda s=s: s.connect(("127.0.0.1", port))))
                with cls() as s:
                    s.settimeout(timeout)
                    results.append(s.connect_ex(("127.0.0.1", port)))
            assert results[0] == results[2]
            assert results[0][0] is ConnectionRefusedError
            assert results[1] == results[3] == 111


def test_connect_resolves_names_through_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = _dns._NATIVE["getaddrinfo"]

    def spy(*args: Any) -> Any:
        calls.append(args[0])
        return real("127.0.0.1", *args[1:])

    monkeypatch.setitem(_dns._NATIVE, "getaddrinfo", spy)
    with EchoServer() as srv, tp_socket.socket() as s:
        s.connect(("echo.invalid", srv.address[1]))
        s.sendall(b"hi")
        assert s.recv(2) == b"hi"
    assert calls == ["echo.invalid"]


def test_sendfile_cancellable_and_complete(
    silent: SilentServer, baseline: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    with tempfile.TemporaryFile() as f:
        f.write(b"y" * (4 << 20))
        f.flush()
        f.seek(0)
        with _connected(silent) as s:
            s.settimeout(None)
            t = threadpatch.spawn(s.sendfile, f)
            wait_all_threads_blocked(expected=1)
            assert t.cancel(timeout=5)
            assert t.cancelled
            assert 0 < f.tell() < 4 << 20  # the file position tells the progress
            s.settimeout(0.02)
            with pytest.raises(TimeoutError):
                s.sendfile(f)
        a, b = tp_socket.socketpair()
        with a, b:
            f.seek(0)
            got = bytearray()

            def reader() -> None:
                while len(got) < 4 << 20:
                    got.extend(b.recv(1 << 16))

            t = threadpatch.spawn(reader)
            assert a.sendfile(f) == 4 << 20
            t.join(timeout=10)
            assert len(got) == 4 << 20
    silent.close()
    settle_fds(baseline)


def test_drip_server_partial_reads_survive_a_deadline() -> None:
    with DripServer(payload=b"abcdefghij", interval=0.005) as srv, _connected(srv) as s:
        s.settimeout(None)
        f = s.makefile("rb", buffering=0)
        got = b""
        while len(got) < 10:
            with threadpatch.ignore_after(0.001):
                got += f.read(1)
        assert got == b"abcdefghij"


def test_create_connection_tries_each_address(monkeypatch: pytest.MonkeyPatch) -> None:
    with tp_socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))
        with EchoServer() as srv:

            def two(*args: Any) -> Any:
                return [
                    (std_socket.AF_INET, std_socket.SOCK_STREAM, 6, "", refused.getsockname()),
                    (std_socket.AF_INET, std_socket.SOCK_STREAM, 6, "", srv.address),
                ]

            monkeypatch.setattr(tp_socket, "getaddrinfo", two)
            with tp_socket.create_connection(("x", 1), timeout=5) as s:
                assert type(s) is tp_socket.socket
                assert s.gettimeout() == 5
                assert s.getpeername() == srv.address
            monkeypatch.setattr(tp_socket, "getaddrinfo", lambda *a: two()[:1])
            with pytest.raises(ConnectionRefusedError):
                tp_socket.create_connection(("x", 1))
            with pytest.raises(ExceptionGroup):
                tp_socket.create_connection(("x", 1), all_errors=True)


class _TimesOut(std_socket.socket):
    """A mock socket class, as CPython's tests make: connect() times out."""

    def connect(self, address: Any, /) -> None:
        raise TimeoutError("timed out")


@pytest.mark.parametrize("module", ["threadpatch.socket", "patched stdlib"])
def test_create_connection_uses_replaced_socket_and_getaddrinfo(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the stdlib's, it looks ``socket`` and ``getaddrinfo`` up in its module at each call."""
    with EchoServer() as srv, threadpatch.patched():
        namespace: Any = tp_socket if module == "threadpatch.socket" else std_socket
        create = namespace.create_connection
        asked: list[tuple[Any, ...]] = []

        def lookup(*args: Any) -> Any:
            asked.append(args)
            return [(std_socket.AF_INET, std_socket.SOCK_STREAM, 6, "", srv.address)]

        with monkeypatch.context() as m:
            m.setattr(namespace, "getaddrinfo", lookup)
            with create(("no-such-host.invalid", 1), timeout=5) as s:
                assert s.getpeername() == srv.address
                assert type(s) is tp_socket.socket  # the stdlib's class stands for ours
                assert s.gettimeout() == 5
        assert asked == [("no-such-host.invalid", 1, 0, std_socket.SOCK_STREAM)]
        with monkeypatch.context() as m:
            m.setattr(namespace, "socket", _TimesOut)
            with pytest.raises(TimeoutError):
                create(srv.address)
        # Nothing replaced: our class and the cancellable resolver.
        with create(srv.address) as s:
            assert type(s) is tp_socket.socket


def test_create_connection_cancelled_closes_its_socket(
    baseline: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    with BacklogServer() as srv:
        t = threadpatch.spawn(tp_socket.create_connection, srv.address)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
    settle_fds(baseline)


def test_hub_thread_waits_natively(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[tp_socket.socket, tp_socket.socket]
) -> None:
    a, b = pair
    b.sendall(b"hub!")
    for name in ("wait_fd", "wait_fds", "begin_fd_wait"):
        monkeypatch.setattr(_core.ThreadState, name, None)  # must not be used
    done = _core._natives.allocate_lock()
    done.acquire()
    result: list[object] = []

    def in_hub() -> None:
        try:
            assert _core.is_hub_thread()
            a._tp_wait = _socket._POLL_FIRST  # a receive that waits first, in C if built
            result.append(a.recv(1))
            a.settimeout(5)
            result.append(a.recv(3))  # ready: the C call
            a.settimeout(0.001)
            try:
                a.recv(1)  # waits natively (poll), then times out
            except TimeoutError as exc:
                result.append(type(exc))
        finally:
            done.release()

    _core.get_hub().call_at(time.monotonic(), in_hub)
    assert done.acquire(True, 10)
    assert result == [b"h", b"ub!", TimeoutError]


def test_blocking_methods_work_on_plain_stdlib_sockets(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    # The patch layer installs these functions on socket.socket itself.
    a, b = std_socket.socketpair()
    with a, b:
        a.settimeout(7)
        assert _socket.BLOCKING_METHODS["recv"](a, 1) if b.send(b"z") else False
        assert _socket.TIMEOUT_METHODS["gettimeout"](a) == 7
        assert a.gettimeout() == 0.0  # adopted: the C timeout is 0 until released
        t = threadpatch.spawn(_socket.BLOCKING_METHODS["recv"], a, 1)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        _socket.release_adopted()
        assert a.gettimeout() == 7


# -- the waiting receive of a blocking socket, C and Python -------------------------
# After a receive had to wait, the next ones wait first (poll-first); with the C
# accelerator that wait and the receive are one C call (_speedups.poll_recv).
# Each test runs on both paths and checks that the chosen one was taken.

RECEIVES: dict[str, Callable[[tp_socket.socket], Any]] = {
    "recv": lambda s: s.recv(64),
    "recv_into": lambda s: _recv_into_bytes(s, 0),
    "recv_into_nbytes": lambda s: _recv_into_bytes(s, 3),
}


def _recv_into_bytes(s: tp_socket.socket, nbytes: int) -> bytes:
    buf = bytearray(64)
    return bytes(buf[: s.recv_into(buf, nbytes)])


@pytest.fixture(params=["c", "python"])
def wait_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run on the C methods (when built) or on the pure-Python reference."""
    if request.param == "python":
        for name, method in _socket.PY_METHODS.items():
            monkeypatch.setattr(tp_socket.socket, name, method)
        monkeypatch.setattr(_socket_methods, "FAST_WAITS", {})
    elif not _socket_methods.FAST_WAITS:
        pytest.skip("the C accelerator is not in use (not built, or THREADPATCH_PURE_PYTHON)")
    else:
        for name in _socket.PY_METHODS:
            assert type(vars(tp_socket.socket)[name]).__name__ == "method_descriptor"
    return str(request.param)


@pytest.fixture(params=["poll_first", "try_first"])
def prime(request: pytest.FixtureRequest) -> Callable[[tp_socket.socket], tp_socket.socket]:
    """Set a socket to wait before its next receive, or to try it first (and retry)."""
    wait = _socket._POLL_FIRST if request.param == "poll_first" else 0

    def prime(s: tp_socket.socket) -> tp_socket.socket:
        s._tp_wait = wait  # as after a receive that had to wait, or long after
        return s

    return prime


def _blocked_in(
    op: Callable[[tp_socket.socket], bytes],
    s: tp_socket.socket,
    wait_all_threads_blocked: Callable[..., None],
) -> threadpatch.Thread[bytes]:
    t = threadpatch.spawn(op, s)
    wait_all_threads_blocked(expected=1)
    return t


@pytest.mark.parametrize("op", RECEIVES.values(), ids=RECEIVES.keys())
def test_waiting_receive_gets_data_and_eof(
    op: Callable[[tp_socket.socket], bytes],
    wait_path: str,
    prime: Callable[[tp_socket.socket], tp_socket.socket],
    pair: tuple[tp_socket.socket, tp_socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    t = _blocked_in(op, prime(a), wait_all_threads_blocked)
    b.sendall(b"abc")
    assert t.join(timeout=5) == b"abc"
    b.sendall(b"xyz")  # already there: no wait
    assert op(prime(a)) == b"xyz"
    b.shutdown(std_socket.SHUT_WR)
    assert op(prime(a)) == b""


@pytest.mark.parametrize("op", RECEIVES.values(), ids=RECEIVES.keys())
def test_waiting_receive_cancel_and_deadline_lose_nothing(
    op: Callable[[tp_socket.socket], bytes],
    wait_path: str,
    prime: Callable[[tp_socket.socket], tp_socket.socket],
    pair: tuple[tp_socket.socket, tp_socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    t = _blocked_in(op, prime(a), wait_all_threads_blocked)
    assert t.cancel(timeout=5)
    assert isinstance(t.exception, ThreadCancelled)
    with pytest.raises(ThreadTimeout), threadpatch.timeout_after(0.01):
        op(prime(a))
    b.sendall(b"abc")
    assert op(prime(a)) == b"abc"


def test_waiting_receive_pending_cancel_and_shield(
    wait_path: str,
    prime: Callable[[tp_socket.socket], tp_socket.socket],
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    a, b = pair
    me = _core.current_state()
    _core.cancel(threadpatch.current())
    try:
        with pytest.raises(ThreadCancelled):
            prime(a).recv(10)
        with threadpatch.shield():  # pending, not deliverable: the wait goes on
            b.sendall(b"abc")
            assert prime(a).recv(10) == b"abc"
    finally:
        me.cancel_requested = False
        me.recompute_interrupt()


def test_waiting_receive_bad_arguments_match_stdlib(
    wait_path: str,
    prime: Callable[[tp_socket.socket], tp_socket.socket],
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    a, _ = pair
    n, m = std_socket.socketpair()
    with n, m:
        for call in (
            lambda s: s.recv(-1),
            lambda s: s.recv("x"),
            lambda s: s.recv_into(bytearray(2), 5),
            lambda s: s.recv_into(b"read-only"),
            lambda s: s.recv_into(bytearray(2), -1),
        ):
            ours = _outcome(lambda call=call: call(prime(a)))
            assert ours == _outcome(lambda call=call: call(n))
            assert ours[0] != "ok"  # it raised at once, it did not wait


def test_waiting_receive_of_zero_bytes_returns_at_once(
    wait_path: str, prime: Callable[[tp_socket.socket], tp_socket.socket]
) -> None:
    """As the native call: a 0-byte receive returns at once, data or not."""
    a, b = tp_socket.socketpair()
    n, m = std_socket.socketpair()

    def zero_byte_receives() -> list[object]:
        b.sendall(b"x")  # make this thread's wake-up fd exist: its first wait creates it
        _core.current_state().wait_fd(a.fileno(), _socket_methods.POLLIN, 5)
        assert a.recv(1) == b"x"
        return [
            prime(a).recv(0),
            prime(a).recv_into(bytearray(0)),
            prime(a).recv_into(bytearray(0), 0),
        ]

    with a, b, n, m:
        t = threadpatch.spawn(zero_byte_receives)
        if not t.wait(timeout=5):
            t.cancel(timeout=5)
        assert t.join() == [n.recv(0), n.recv_into(bytearray(0)), n.recv_into(bytearray(0), 0)]


def test_keyword_arguments_match_stdlib(wait_path: str) -> None:
    a, b = tp_socket.socketpair()
    n, m = std_socket.socketpair()
    with a, b, n, m:
        for call in (
            lambda s: s.recv_into(buffer=bytearray(2)),
            lambda s: s.recv_into(bytearray(4), nbytes=2, flags=0),
            lambda s: s.recvfrom_into(buffer=bytearray(2), nbytes=1),
        ):
            b.sendall(b"abcd")
            m.sendall(b"abcd")
            assert _outcome(lambda call=call: call(a)) == _outcome(lambda call=call: call(n))
            assert a.recv(16) == n.recv(16)  # the same bytes were left
        # Keywords the stdlib refuses are refused (the pure-Python wording differs).
        for call in (
            lambda s: s.recv(bufsize=2),
            lambda s: s.sendall(data=b"x"),
            lambda s: s.recv_into(bytearray(2), bogus=1),
        ):
            assert _outcome(lambda call=call: call(a))[0] is TypeError
            assert _outcome(lambda call=call: call(n))[0] is TypeError


def test_waiting_receive_on_closed_socket_matches_stdlib(
    wait_path: str, prime: Callable[[tp_socket.socket], tp_socket.socket]
) -> None:
    a, b = tp_socket.socketpair()
    n, m = std_socket.socketpair()
    for s in (a, b, n, m):
        s.close()
    for call in (lambda s: s.recv(10), lambda s: s.recv_into(bytearray(10))):
        ours = _outcome(lambda call=call: call(prime(a)))
        assert ours == _outcome(lambda call=call: call(n))
        assert ours[0] is OSError


def test_waiting_receive_in_main_thread_runs_signal_handlers(
    wait_path: str,
    prime: Callable[[tp_socket.socket], tp_socket.socket],
    pair: tuple[tp_socket.socket, tp_socket.socket],
) -> None:
    """A signal (Ctrl-C is one) raises out of the wait, as from the native call."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread")

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    a, _ = pair
    me = _core.current_state()
    main = threading.get_ident()

    def interrupt() -> None:
        try:
            wait_until(lambda: me.parked, message="the main thread waiting in recv")
        finally:  # even so: the main thread must not wait forever
            signal.pthread_kill(main, signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        t = threading.Thread(target=interrupt)
        t.start()
        with pytest.raises(Interrupted):
            prime(a).recv(10)
        t.join()
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_receives_wait_first_in_longer_streaks_for_request_response() -> None:
    """Each receive that tried first and had to wait doubles the streak of receives that wait first.

    The peer answers each request only once the thread waits for the answer,
    so every receive that tries first finds nothing, however loaded the
    machine is.  The streaks are the C wait's (the pure-Python path has none).
    """
    if not _socket_methods.FAST_WAITS:
        pytest.skip("the C accelerator is not in use (not built, or THREADPATCH_PURE_PYTHON)")
    rounds = 16 + 32 + 3
    streaks: list[int] = []
    a, b = tp_socket.socketpair()
    peer = std_socket.socket(fileno=b.detach())

    def requester() -> None:
        for _ in range(rounds):
            a.sendall(b"q")
            assert a.recv(1) == b"q"
            streaks.append(a._tp_wait_streak)

    with a, peer:
        peer.settimeout(10)
        t = threadpatch.spawn(requester)
        for _ in range(rounds):
            assert peer.recv(1) == b"q"
            wait_until(blocked_in(t, "recv"), message="the requester waiting to receive")
            peer.sendall(b"q")
        t.join(timeout=10)
    assert streaks == [16] * 17 + [32] * 33 + [64]
