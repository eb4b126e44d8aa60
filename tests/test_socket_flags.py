"""``MSG_DONTWAIT`` in a receive's or send's flags: the stdlib's outcome, never a wait.

On a blocking socket (no timeout) the stdlib passes the flag to the system
call, which then reports EAGAIN: ``BlockingIOError``, at once.  With a
timeout the stdlib waits for the descriptor first and the flag only makes the
call after the wait non-blocking: ``TimeoutError`` once the timeout passes.
The common ``recv(1, MSG_PEEK | MSG_DONTWAIT)`` "is the peer still there"
check relies on the first.  Each case runs on threadpatch's class (the C and
the pure-Python methods, trying first or waiting first), on a plain stdlib
socket with the patch layer's methods, and on a stdlib socket untouched.
"""

from __future__ import annotations

import socket as std_socket
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _socket
from threadpatch import socket as tp_socket

from .test_socket import fill, prime, wait_path  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DONTWAIT = std_socket.MSG_DONTWAIT
BIG = b"\0" * (1 << 20)

RECEIVES: dict[str, Callable[[Any], object]] = {
    "recv": lambda s: s.recv(1, DONTWAIT),
    "recv_peek": lambda s: s.recv(1, std_socket.MSG_PEEK | DONTWAIT),
    "recv_into": lambda s: s.recv_into(bytearray(1), 1, DONTWAIT),
    "recv_into_keyword": lambda s: s.recv_into(bytearray(1), flags=DONTWAIT),
    "recvfrom": lambda s: s.recvfrom(1, DONTWAIT),
    "recvfrom_into": lambda s: s.recvfrom_into(bytearray(1), 0, DONTWAIT),
    "recvmsg": lambda s: s.recvmsg(1, 0, DONTWAIT),
    "recvmsg_into": lambda s: s.recvmsg_into([bytearray(1)], 0, DONTWAIT),
}

SENDS: dict[str, Callable[[Any], object]] = {
    "send": lambda s: s.send(BIG, DONTWAIT),
    "sendall": lambda s: s.sendall(BIG, DONTWAIT),
    "sendmsg": lambda s: s.sendmsg([BIG], [], DONTWAIT),
}


class PatchedPlain:
    """A plain stdlib socket class carrying the patch layer's methods (as under patch_all)."""

    @staticmethod
    def socketpair() -> tuple[std_socket.socket, std_socket.socket]:
        class Plain(std_socket.socket):
            pass

        for name, method in {**_socket.BLOCKING_METHODS, **_socket.TIMEOUT_METHODS}.items():
            setattr(Plain, name, method)
        a, b = std_socket.socketpair()
        pair = tuple(Plain(s.family, s.type, s.proto, s.detach()) for s in (a, b))
        return pair  # type: ignore[return-value]


IMPLS: dict[str, Any] = {"threadpatch": tp_socket, "patched_plain": PatchedPlain, "stdlib": None}


@pytest.fixture(params=IMPLS)
def socketpair(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[], tuple[std_socket.socket, std_socket.socket]]]:
    made: list[std_socket.socket] = []

    def make() -> tuple[std_socket.socket, std_socket.socket]:
        module = IMPLS[request.param] or std_socket
        a, b = module.socketpair()
        made.extend((a, b))
        return a, b

    yield make
    for s in made:
        s.close()


def _outcome(call: Callable[[], object]) -> tuple[object, object]:
    """What ``call`` gives in a thread of its own; a wait is cancelled after 5 s."""
    outcome: list[tuple[object, object]] = []

    def run() -> None:
        try:
            outcome.append(("ok", call()))
        except Exception as exc:
            outcome.append((type(exc), getattr(exc, "errno", None)))

    t = threadpatch.spawn(run)
    if not t.wait(timeout=5):
        t.cancel(timeout=5)
        pytest.fail("it waited")
    return outcome[0]


def _native(call: Callable[[Any], object], send: bool, timeout: float | None) -> object:
    a, b = std_socket.socketpair()
    with a, b:
        if send:
            fill(a)
        a.settimeout(timeout)
        return _outcome(lambda: call(a))


@pytest.mark.parametrize("op", [*RECEIVES, *SENDS])
def test_dontwait_on_a_blocking_socket_raises_at_once(
    op: str,
    socketpair: Callable[[], tuple[std_socket.socket, std_socket.socket]],
    wait_path: str,  # noqa: F811 - the fixture
    prime: Callable[[Any], Any],  # noqa: F811 - the fixture
) -> None:
    call = {**RECEIVES, **SENDS}[op]
    send = op in SENDS
    a, _ = socketpair()
    if send:
        fill(a)
    if isinstance(a, tp_socket.socket):
        prime(a)  # a receive that waits first, or one that tries first
    ours = _outcome(lambda: call(a))
    assert ours == _native(call, send, None) == (BlockingIOError, 11)
    assert a.gettimeout() is None  # still a blocking socket


@pytest.mark.parametrize("op", ["recv", "recv_peek", "recv_into", "recvmsg"])
def test_dontwait_with_data_returns_it(
    op: str,
    socketpair: Callable[[], tuple[std_socket.socket, std_socket.socket]],
    wait_path: str,  # noqa: F811 - the fixture
    prime: Callable[[Any], Any],  # noqa: F811 - the fixture
) -> None:
    a, b = socketpair()
    if isinstance(a, tp_socket.socket):
        prime(a)
    b.sendall(b"x")
    kind, result = _outcome(lambda: RECEIVES[op](a))
    assert kind == "ok"
    assert result in (b"x", 1) or (isinstance(result, tuple) and result[0] in (b"x", 1))


@pytest.mark.parametrize("op", ["recv", "recv_into_keyword", "send"])
def test_dontwait_with_a_timeout_waits_for_it(
    op: str, socketpair: Callable[[], tuple[std_socket.socket, std_socket.socket]]
) -> None:
    """With a socket timeout the stdlib waits first: the timeout decides."""
    call = {**RECEIVES, **SENDS}[op]
    send = op in SENDS
    a, _ = socketpair()
    if send:
        fill(a)
    a.settimeout(0.05)
    assert _outcome(lambda: call(a)) == _native(call, send, 0.05) == (TimeoutError, None)


def test_dontwait_peek_is_the_liveness_check(
    socketpair: Callable[[], tuple[std_socket.socket, std_socket.socket]],
) -> None:
    """``recv(1, MSG_PEEK | MSG_DONTWAIT)``: alive and idle, data waiting, peer gone."""
    a, b = socketpair()
    check = RECEIVES["recv_peek"]
    assert _outcome(lambda: check(a)) == (BlockingIOError, 11)  # alive, nothing to read
    b.sendall(b"y")
    assert _outcome(lambda: check(a)) == ("ok", b"y")  # peeked: still there
    assert a.recv(1) == b"y"
    b.close()
    assert _outcome(lambda: check(a)) == ("ok", b"")  # the peer is gone
