"""A socket's descriptor has the stdlib's mode, whatever threadpatch does while it waits.

The stdlib's descriptor is blocking on a blocking socket and ``O_NONBLOCK``
with a timeout or on a non-blocking socket; ``fileno()`` and ``detach()``
users rely on it (``multiprocessing.connection`` hands a socket's descriptor
to ``os.read``).  Each case runs the same steps on a stdlib socket untouched
(the reference), on threadpatch's class and on a plain stdlib socket with the
patch layer's methods, and compares ``os.get_blocking`` of the descriptors:
after each step, while a call waits, after ``detach``/``dup``/``makefile``,
and after the calls that make the descriptor non-blocking for the call only
(``accept``, ``connect``, ``sendfile``).  Then the whole story as users run
it: a ``multiprocessing`` manager under ``python -m threadpatch``.
"""

from __future__ import annotations

import os
import socket as std_socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _socket
from threadpatch import socket as tp_socket

from .test_socket import fill
from .test_socket_flags import RECEIVES, SENDS

if TYPE_CHECKING:
    from collections.abc import Callable

DONTWAIT = std_socket.MSG_DONTWAIT


class _Plain(std_socket.socket):
    """A plain stdlib socket class carrying the patch layer's methods (as under patch_all)."""

    __slots__ = ()


for _name, _method in {**_socket.BLOCKING_METHODS, **_socket.TIMEOUT_METHODS}.items():
    setattr(_Plain, _name, _method)

CLASSES: dict[str, type[std_socket.socket]] = {
    "stdlib": std_socket.socket,
    "threadpatch": tp_socket.socket,
    "patched_plain": _Plain,
}
OURS = ["threadpatch", "patched_plain"]


def _pair(kind: str) -> tuple[std_socket.socket, std_socket.socket]:
    a, b = std_socket.socketpair()
    cls = CLASSES[kind]
    return cls(a.family, a.type, a.proto, a.detach()), cls(b.family, b.type, b.proto, b.detach())


STEPS: dict[str, Callable[[std_socket.socket], object]] = {
    "created": lambda s: None,
    "settimeout(5)": lambda s: s.settimeout(5),
    "settimeout(None)": lambda s: s.settimeout(None),
    "settimeout(0)": lambda s: s.settimeout(0),
    "setblocking(True)": lambda s: s.setblocking(True),
    "setblocking(False)": lambda s: s.setblocking(False),
    "settimeout(5), setblocking(True)": lambda s: (s.settimeout(5), s.setblocking(True)),
    "setblocking(False), settimeout(None)": lambda s: (s.setblocking(False), s.settimeout(None)),
    "settimeout(2.5), settimeout(0.0)": lambda s: (s.settimeout(2.5), s.settimeout(0.0)),
}


def _mode_after(kind: str, step: str) -> tuple[bool, float | None]:
    a, b = _pair(kind)
    with a, b:
        STEPS[step](a)
        return os.get_blocking(a.fileno()), a.gettimeout()


@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("step", STEPS)
def test_mode_after_each_step_is_the_stdlibs(kind: str, step: str) -> None:
    assert _mode_after(kind, step) == _mode_after("stdlib", step)


@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("step", STEPS)
def test_detach_dup_and_makefile_hand_over_the_stdlibs_mode(kind: str, step: str) -> None:
    def modes(kind: str) -> tuple[bool, ...]:
        a, b = _pair(kind)
        with a, b:
            STEPS[step](a)
            b.sendall(b"line\n")
            if a.gettimeout() != 0.0:
                with a.makefile("rb") as f:
                    assert f.readline() == b"line\n"
            made = os.get_blocking(a.fileno())
            with a.dup() as d:
                dup = os.get_blocking(d.fileno())
                dup_timeout = d.gettimeout() == a.gettimeout()
            fd = a.detach()
            try:
                return made, dup, dup_timeout, os.get_blocking(fd)
            finally:
                os.close(fd)

    assert modes(kind) == modes("stdlib")


@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_waiting_receive_leaves_the_mode_alone(
    kind: str, timeout: float | None, wait_all_threads_blocked: Callable[..., None]
) -> None:
    a, b = _pair(kind)
    with a, b:
        a.settimeout(timeout)
        expected = os.get_blocking(a.fileno())
        assert expected is (timeout is None)
        t = threadpatch.spawn(a.recv, 10)
        wait_all_threads_blocked(expected=1)
        assert os.get_blocking(a.fileno()) is expected  # while it waits
        b.sendall(b"data")
        assert t.join(timeout=10) == b"data"
        assert os.get_blocking(a.fileno()) is expected
        assert a.gettimeout() == timeout


@pytest.mark.parametrize("kind", OURS)
def test_accept_and_connect_restore_blocking_mode(
    kind: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    cls = CLASSES[kind]
    with cls() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        assert os.get_blocking(listener.fileno())
        # Two threads blocked in accept() on one descriptor: the mode is
        # non-blocking only inside each accept call, blocking while they wait.
        waiting = [threadpatch.spawn(listener.accept) for _ in range(2)]
        wait_all_threads_blocked(expected=2)
        assert os.get_blocking(listener.fileno())
        clients = []
        for method in ("connect", "connect_ex"):
            c = cls()
            clients.append(c)
            assert getattr(c, method)(listener.getsockname()) is None or method == "connect_ex"
            assert os.get_blocking(c.fileno())
            assert c.gettimeout() is None
        accepted = [t.join(timeout=10) for t in waiting]
        assert os.get_blocking(listener.fileno())
        for conn, _addr in accepted:
            assert os.get_blocking(conn.fileno())  # an accepted blocking socket, as the stdlib's
            assert conn.gettimeout() is None
            conn.close()
        for c in clients:
            c.close()


@pytest.mark.parametrize("kind", OURS)
def test_sendfile_restores_blocking_mode(kind: str) -> None:
    a, b = _pair(kind)
    payload = b"z" * (1 << 21)  # more than the socket buffers: sendfile has to wait
    received = bytearray()

    def drain() -> None:
        while len(received) < len(payload):
            chunk = b.recv(1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    with a, b, tempfile.TemporaryFile() as f:
        f.write(payload)
        f.seek(0)
        reader = threading.Thread(target=drain)
        reader.start()
        try:
            assert a.sendfile(f) == len(payload)
        finally:
            reader.join(timeout=10)
        assert bytes(received) == payload
        assert os.get_blocking(a.fileno())


def _full_datagram_pair(tmp: str, kind: str) -> tuple[std_socket.socket, std_socket.socket, str]:
    cls = CLASSES[kind]
    receiver = cls(std_socket.AF_UNIX, std_socket.SOCK_DGRAM)
    path = os.path.join(tmp, "r")
    receiver.bind(path)
    sender = cls(std_socket.AF_UNIX, std_socket.SOCK_DGRAM)
    for _ in range(100_000):  # until the receiver's queue is full
        try:
            sender.sendto(b"d" * 1024, DONTWAIT, path)
        except BlockingIOError:
            break
    else:
        pytest.fail("the datagram queue never filled")
    return sender, receiver, path


# The MSG_DONTWAIT calls of test_socket_flags, and recvfrom_into's keyword form.
CALLS: dict[str, Callable[[Any], object]] = {
    **RECEIVES,
    "recvfrom_into_keyword": lambda s: s.recvfrom_into(bytearray(1), flags=DONTWAIT),
}
SEND_CALLS = SENDS


@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("call", [*CALLS, *SEND_CALLS])
def test_dontwait_on_a_blocking_socket_raises_at_once(kind: str, call: str) -> None:
    a, b = _pair(kind)
    with a, b:
        if call in SEND_CALLS:
            fill(a)
        with pytest.raises(BlockingIOError):
            {**CALLS, **SEND_CALLS}[call](a)
        assert os.get_blocking(a.fileno())
        assert a.gettimeout() is None


@pytest.mark.parametrize("kind", ["stdlib", *OURS])
def test_dontwait_sendto_on_a_blocking_socket_raises_at_once(kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sender, receiver, path = _full_datagram_pair(tmp, kind)
        with sender, receiver:
            with pytest.raises(BlockingIOError):
                sender.sendto(b"x", DONTWAIT, path)
            assert os.get_blocking(sender.fileno())
            receiver.recv(2048)  # room for one: a blocking sendto goes through
            assert sender.sendto(b"x", path) == 1


def test_blocking_sendto_waits_cancellably(wait_all_threads_blocked: Callable[..., None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sender, receiver, path = _full_datagram_pair(tmp, "threadpatch")
        with sender, receiver:
            t = threadpatch.spawn(sender.sendto, b"y", path)
            wait_all_threads_blocked(expected=1)
            assert os.get_blocking(sender.fileno())
            receiver.recv(2048)
            assert t.join(timeout=10) == 1


MANAGER_PROGRAM = textwrap.dedent(
    """
    import multiprocessing.connection, multiprocessing.managers, os, threading

    if __name__ == "__main__":
        manager = multiprocessing.managers.SyncManager()
        manager.start()
        try:
            event = manager.Event()
            waiter = threading.Thread(target=lambda: print("waited", event.wait(30)))
            waiter.start()
            event.set()
            waiter.join(30)
            queue = manager.Queue()
            queue.put("item")
            print("got", queue.get(timeout=30))
        finally:
            manager.shutdown()
        with multiprocessing.connection.Listener(("127.0.0.1", 0)) as listener:
            box = []
            server = threading.Thread(target=lambda: box.append(listener.accept()))
            server.start()
            with multiprocessing.connection.Client(listener.address) as client:
                server.join(30)
                with box[0] as conn:
                    conn.send("over a blocking descriptor")
                    print("client got", client.recv())
    """
)


def test_multiprocessing_manager_under_python_m_threadpatch(tmp_path: Any) -> None:
    program = tmp_path / "manager_program.py"
    program.write_text(MANAGER_PROGRAM)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    env.pop("THREADPATCH_AUTOPATCH", None)
    done = subprocess.run(
        [sys.executable, "-m", "threadpatch", str(program)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [
        "waited True",
        "got item",
        "client got over a blocking descriptor",
    ]


ADDR = ("127.0.0.1", 9)
BAD_CALLS: dict[str, Callable[[Any], object]] = {
    "recv()": lambda s: s.recv(),
    "recv(1, 'x')": lambda s: s.recv(1, "x"),
    "recv(1, None)": lambda s: s.recv(1, None),
    "recv(1, 2**40)": lambda s: s.recv(1, 2**40),
    "recv(1, 0, 0)": lambda s: s.recv(1, 0, 0),
    "recv(bufsize=1)": lambda s: s.recv(bufsize=1),
    "recv_into()": lambda s: s.recv_into(),
    "recv_into(buf, 0, 'x')": lambda s: s.recv_into(bytearray(1), 0, "x"),
    "recv_into(buf, flags='x')": lambda s: s.recv_into(bytearray(1), flags="x"),
    "recv_into(buffer=buf, flags=1.5)": lambda s: s.recv_into(buffer=bytearray(1), flags=1.5),
    "recv_into(buf, 0, 0, 0)": lambda s: s.recv_into(bytearray(1), 0, 0, 0),
    "recv_into(buf, 0, 0, flags=0)": lambda s: s.recv_into(bytearray(1), 0, 0, flags=0),
    "recv_into(buf, nbytes=-1)": lambda s: s.recv_into(bytearray(1), nbytes=-1),
    "recv_into(buf, bogus=1)": lambda s: s.recv_into(bytearray(1), bogus=1),
    "recvfrom(1, 'x')": lambda s: s.recvfrom(1, "x"),
    "recvfrom_into(buf, flags='x')": lambda s: s.recvfrom_into(bytearray(1), flags="x"),
    "recvmsg(1, 'x')": lambda s: s.recvmsg(1, "x"),
    "recvmsg(1, 0, 'x')": lambda s: s.recvmsg(1, 0, "x"),
    "recvmsg(-1)": lambda s: s.recvmsg(-1),
    "recvmsg_into([buf], 0, None)": lambda s: s.recvmsg_into([bytearray(1)], 0, None),
    "recvmsg_into([b'x'])": lambda s: s.recvmsg_into([b"x"]),
    "send(b'x', 'f')": lambda s: s.send(b"x", "f"),
    "sendall(b'x', 'f')": lambda s: s.sendall(b"x", "f"),
    "sendall(b'x', 2**40)": lambda s: s.sendall(b"x", 2**40),
    "sendall('x')": lambda s: s.sendall("x"),
    "sendall()": lambda s: s.sendall(),
    "sendall(b'x', 0, 0)": lambda s: s.sendall(b"x", 0, 0),
    "sendall(data=b'x')": lambda s: s.sendall(data=b"x"),
    "sendto(b'foo', 0, None)": lambda s: s.sendto(b"foo", 0, None),
    "sendto(b'foo', None)": lambda s: s.sendto(b"foo", None),
    "sendto('str', addr)": lambda s: s.sendto("\u2620", ADDR),
    "sendto(5j, addr)": lambda s: s.sendto(5j, ADDR),
    "sendto(b'foo', 'bar', addr)": lambda s: s.sendto(b"foo", "bar", ADDR),
    "sendto(b'foo', None, None)": lambda s: s.sendto(b"foo", None, None),
    "sendto(b'foo')": lambda s: s.sendto(b"foo"),
    "sendto(b'foo', 0, addr, 4)": lambda s: s.sendto(b"foo", 0, ADDR, 4),
    "sendto(b'foo', 0, bad port)": lambda s: s.sendto(b"foo", 0, ("127.0.0.1", 70000)),
    "sendto(b'foo', flags=0)": lambda s: s.sendto(b"foo", ADDR, flags=0),
    "sendmsg([b'x'], [], 'f')": lambda s: s.sendmsg([b"x"], [], "f"),
    "sendmsg(['x'])": lambda s: s.sendmsg(["x"]),
    "sendmsg([b'x'], [], 0, 'addr')": lambda s: s.sendmsg([b"x"], [], 0, "addr"),
    "accept(1)": lambda s: s.accept(1),
    "connect()": lambda s: s.connect(),
    "connect(address=addr)": lambda s: s.connect(address=ADDR),
    "connect_ex(1, 2)": lambda s: s.connect_ex(1, 2),
}


def _bad_outcome(kind: str, call: str, timeout: float | None) -> tuple[Any, ...]:
    with CLASSES[kind](std_socket.AF_INET, std_socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        try:
            BAD_CALLS[call](s)
        except Exception as exc:
            return type(exc), str(exc)
        return ("no error",)


@pytest.mark.parametrize("timeout", [None, 0.0, 5.0])
@pytest.mark.parametrize("kind", OURS)
@pytest.mark.parametrize("call", BAD_CALLS)
def test_bad_arguments_raise_the_stdlibs_errors(kind: str, call: str, timeout: float) -> None:
    """Adding MSG_DONTWAIT to the flags never changes the stdlib's error for bad arguments."""
    expected = _bad_outcome("stdlib", call, timeout)
    assert expected[0] is not "no error"  # noqa: F632 - every call is a bad one
    assert _bad_outcome(kind, call, timeout) == expected
