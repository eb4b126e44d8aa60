"""threadpatch.select: stdlib results and errors, and cancellable waits."""

from __future__ import annotations

import decimal
import os
import select as std_select
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _core
from threadpatch import select as tp_select

from .servers import fd_count

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def outcome(func: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", func()
    except Exception as exc:
        return type(exc).__name__, str(exc)


class Idx:
    def __index__(self) -> int:
        return 0


class NoFileno:
    pass


class BadFileno:
    def fileno(self) -> str:
        return "x"


# -- select(): same results and errors as the stdlib -----------------------------------------


def test_select_results_match_stdlib(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    assert tp_select.select([a], [a], [a], 0) == std_select.select([a], [a], [a], 0)
    assert tp_select.select([a], [], [], 0.01) == ([], [], [])
    b.send(b"x")
    r, w, x = tp_select.select([a, b.fileno()], [a], [], None)
    assert (r, w, x) == ([a], [a], [])
    assert r[0] is a
    # Any iterable, objects kept as given, results in argument order.
    assert tp_select.select(iter([a]), (b,), set(), 1) == ([a], [b], [])


@pytest.mark.parametrize(
    "timeout",
    [
        0,
        0.0,
        1e-9,
        Idx(),
        True,
        -1,
        -0.5,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e300,
        2**70,
        -(2**70),
        2**40,
        "1",
        decimal.Decimal(0),
        [],
        1e10,
        -1e10,
        -(2**31) - 1,
    ],
    ids=repr,
)
def test_select_timeout_validation_matches_stdlib(
    timeout: Any, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    # `a` is writable, so valid timeouts return at once in both.
    assert outcome(lambda: tp_select.select([], [a], [], timeout)) == outcome(
        lambda: std_select.select([], [a], [], timeout)
    )


@pytest.mark.parametrize(
    "args",
    [
        (1, 2, 3),
        ([NoFileno()], [], []),
        ([BadFileno()], [], []),
        ([-1], [], []),
        ([2**40], [], []),
        ([], [], [], "x"),
        (None, [], []),
    ],
    ids=repr,
)
def test_select_bad_input_matches_stdlib(args: tuple[Any, ...]) -> None:
    assert outcome(lambda: tp_select.select(*args)) == outcome(lambda: std_select.select(*args))


def test_select_closed_fd_is_ebadf() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match="Bad file descriptor") as ours:
        tp_select.select([r], [], [], None)
    with pytest.raises(OSError, match="Bad file descriptor") as theirs:
        std_select.select([r], [], [], None)
    assert ours.value.errno == theirs.value.errno
    assert type(ours.value) is type(theirs.value)


def test_select_sticky_hangup_in_xlist_does_not_spin(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # poll() reports HUP for a closed peer, select() does not count it in xlist.
    a, b = pair
    b.close()
    assert tp_select.select([], [], [a], 0.03) == std_select.select([], [], [a], 0)


# -- poll objects ----------------------------------------------------------------------------


def test_poll_object_matches_stdlib(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    ours, theirs = tp_select.poll(), std_select.poll()
    for p in (ours, theirs):
        p.register(a, tp_select.POLLIN)
        p.register(b.fileno())
    assert sorted(ours.poll(0)) == sorted(theirs.poll(0))
    b.send(b"x")
    assert sorted(ours.poll(None)) == sorted(theirs.poll(0))
    for p in (ours, theirs):
        p.modify(b, tp_select.POLLIN)
        p.unregister(a)
    assert ours.poll(5) == theirs.poll(0) == []
    assert outcome(lambda: ours.unregister(a)) == outcome(lambda: theirs.unregister(a))
    assert outcome(lambda: ours.modify(a, 1)) == outcome(lambda: theirs.modify(a, 1))
    assert outcome(lambda: ours.register(a, 2**17)) == outcome(lambda: theirs.register(a, 2**17))
    assert outcome(lambda: ours.register(NoFileno())) == outcome(
        lambda: theirs.register(NoFileno())
    )


@pytest.mark.parametrize(
    "timeout",
    [
        0,
        0.0,
        0.5,
        Idx(),
        True,
        float("nan"),
        float("inf"),
        1e300,
        2**70,
        2**31,
        2**31 - 1,
        -(2**31) - 1,
        "1",
        decimal.Decimal(0),
        [],
        1e10,
    ],
    ids=repr,
)
def test_poll_timeout_validation_matches_stdlib(
    timeout: Any, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    ours, theirs = tp_select.poll(), std_select.poll()
    ours.register(a, tp_select.POLLOUT)
    theirs.register(a, tp_select.POLLOUT)
    assert outcome(lambda: ours.poll(timeout)) == outcome(lambda: theirs.poll(timeout))


# -- epoll objects ---------------------------------------------------------------------------


def test_epoll_object_matches_stdlib(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with tp_select.epoll() as ours, std_select.epoll() as theirs:
        for ep in (ours, theirs):
            ep.register(a.fileno(), tp_select.EPOLLIN)
        assert outcome(lambda: ours.register(a.fileno())) == outcome(
            lambda: theirs.register(a.fileno())
        )
        assert ours.poll(0.01) == theirs.poll(0) == []
        b.send(b"x")
        assert ours.poll(None) == theirs.poll(0)
        assert outcome(lambda: ours.poll(1, 0)) == outcome(lambda: theirs.poll(1, 0))
        for ep in (ours, theirs):
            ep.modify(a.fileno(), tp_select.EPOLLOUT)
            ep.unregister(a.fileno())
        assert outcome(lambda: ours.poll("x")) == outcome(lambda: theirs.poll("x"))
        assert outcome(lambda: ours.poll(2**40)) == outcome(lambda: theirs.poll(2**40))
        assert not ours.closed
        assert isinstance(ours.fileno(), int)
    assert ours.closed
    assert outcome(lambda: ours.poll(1)) == outcome(lambda: theirs.poll(1))
    assert outcome(lambda: ours.fileno()) == outcome(lambda: theirs.fileno())
    ours.close()  # idempotent


def test_epoll_fromfd() -> None:
    with tp_select.epoll() as ep:
        dup = tp_select.epoll.fromfd(os.dup(ep.fileno()))
        assert isinstance(dup, tp_select.epoll)
        assert dup.poll(0) == []
        dup.close()
        assert dup.closed


def test_facade_mirrors_stdlib() -> None:
    for name in dir(std_select):
        if not name.startswith("_"):
            assert hasattr(tp_select, name), name
    assert tp_select.error is std_select.error
    assert tp_select.POLLIN == std_select.POLLIN
    assert set(tp_select.__all__) >= {"select", "poll", "epoll", "error"}


# -- cancellable waits -----------------------------------------------------------------------


def _wait_select(sock: socket.socket, timeout: float | None) -> object:
    return tp_select.select([sock], [], [], timeout)


def _wait_poll(sock: socket.socket, timeout: float | None) -> object:
    p = tp_select.poll()
    p.register(sock, tp_select.POLLIN)
    return p.poll(None if timeout is None else timeout * 1000)


def _wait_epoll(sock: socket.socket, timeout: float | None) -> object:
    with tp_select.epoll() as ep:
        ep.register(sock.fileno(), tp_select.EPOLLIN)
        return ep.poll(timeout)


WAITS = [_wait_select, _wait_poll, _wait_epoll]


@pytest.mark.parametrize("wait", WAITS, ids=lambda f: f.__name__)
def test_cancel_during_wait(
    wait: Callable[[socket.socket, float | None], object],
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    before = fd_count()
    reached_finally = []

    def waiter() -> object:
        try:
            return wait(a, None)
        finally:
            reached_finally.append(True)

    t = threadpatch.spawn(waiter)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert isinstance(t.exception, threadpatch.ThreadCancelled)
    assert reached_finally == [True]
    assert fd_count() == before
    # The socket is still usable, and nothing was consumed.
    b.send(b"ping")
    assert wait(a, 5)
    assert a.recv(4) == b"ping"


@pytest.mark.parametrize("wait", WAITS, ids=lambda f: f.__name__)
def test_cancel_before_wait(
    wait: Callable[[socket.socket, float | None], object],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair

    def waiter() -> list[object]:
        threadpatch.current().cancel()  # recorded: raised at the next blocking point
        results = [wait(a, 0)]  # a zero timeout never blocks: it answers
        b.send(b"x")
        results.append(wait(a, None))  # ready: answers even though cancelled
        a.recv(1)
        wait(a, None)  # would block: raises
        return results

    t = threadpatch.spawn(waiter)
    t.wait(5)
    assert t.cancelled


@pytest.mark.parametrize("wait", WAITS, ids=lambda f: f.__name__)
def test_cancel_after_wait_is_a_no_op(
    wait: Callable[[socket.socket, float | None], object],
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    t = threadpatch.spawn(wait, a, None)
    wait_all_threads_blocked(expected=1)
    b.send(b"x")  # the fd becomes ready while the thread waits
    result = t.join(5)
    assert result
    assert t.cancel(timeout=5)
    assert not t.cancelled
    assert t.result == result


@pytest.mark.parametrize("wait", WAITS, ids=lambda f: f.__name__)
def test_deadline_expires_during_wait(
    wait: Callable[[socket.socket, float | None], object],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    before = fd_count()

    def waiter() -> None:
        with threadpatch.timeout_after(0.02):
            wait(a, None)

    t = threadpatch.spawn(waiter)
    t.wait(5)
    assert isinstance(t.exception, threadpatch.ThreadTimeout)
    assert fd_count() == before


@pytest.mark.parametrize("wait", WAITS, ids=lambda f: f.__name__)
def test_own_timeout_returns_empty(
    wait: Callable[[socket.socket, float | None], object],
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    with threadpatch.ignore_after(30) as scope:
        result = wait(a, 0.01)
    assert not scope.expired
    assert result in (([], [], []), [])


def test_ready_fds_are_reported_in_a_cancelled_thread(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    b.send(b"x")

    def waiter() -> object:
        threadpatch.current().cancel()
        return tp_select.select([a], [], [], None)

    assert threadpatch.spawn(waiter).join(5) == ([a], [], [])


def in_hub(func: Callable[[], object]) -> object:
    """Run ``func`` in the hub thread; its result (or exception, re-raised here)."""
    done = _core._natives.allocate_lock()
    done.acquire()
    outcome: list[object] = []

    def run() -> None:
        try:
            assert _core.is_hub_thread()
            outcome.append(("ok", func()))
        except BaseException as exc:
            outcome.append(("error", exc))
        finally:
            done.release()

    _core.get_hub().call_at(time.monotonic(), run)
    assert done.acquire(True, 10)
    kind, value = outcome[0]  # type: ignore[misc]
    if kind == "error":
        raise value
    return value


def test_hub_thread_waits_natively(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    """In the hub thread every wait is a native poll, never a cancellable one."""
    a, b = pair
    for name in ("wait_fd", "wait_fds", "begin_fd_wait"):
        monkeypatch.setattr(_core.ThreadState, name, None)  # must not be used

    def waits() -> list[object]:
        results: list[object] = [tp_select.select([a], [], [], 0.01)]
        p = tp_select.poll()
        p.register(a, tp_select.POLLIN)
        results.append(p.poll(10))
        with tp_select.epoll() as ep:
            ep.register(a.fileno(), tp_select.EPOLLIN)
            results.append(ep.poll(0.01))
            b.send(b"x")
            results.append(ep.poll(1))
        results.append(tp_select.select([a], [], [], 1))
        return results

    assert in_hub(waits) == [
        ([], [], []),
        [],
        [],
        [(a.fileno(), tp_select.EPOLLIN)],
        ([a], [], []),
    ]


def test_poll_object_rejects_concurrent_poll(
    pair: tuple[socket.socket, socket.socket], wait_all_threads_blocked: Callable[..., None]
) -> None:
    a, b = pair
    p = tp_select.poll()
    p.register(a, tp_select.POLLIN)
    t = threadpatch.spawn(p.poll)
    wait_all_threads_blocked(expected=1)
    with pytest.raises(RuntimeError, match="concurrent poll"):
        p.poll()
    b.send(b"x")
    assert t.join(5) == [(a.fileno(), tp_select.POLLIN)]
