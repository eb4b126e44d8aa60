"""threadpatch.selectors: stdlib behaviour, cancellable select(), class patches."""

from __future__ import annotations

import selectors as std_selectors
import socket
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _core, _selectors
from threadpatch import selectors as tp_selectors

from .servers import fd_count
from .test_select import in_hub

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

OURS = [tp_selectors.SelectSelector, tp_selectors.PollSelector, tp_selectors.EpollSelector]
STDLIB = {
    tp_selectors.SelectSelector: std_selectors.SelectSelector,
    tp_selectors.PollSelector: std_selectors.PollSelector,
    tp_selectors.EpollSelector: std_selectors.EpollSelector,
}


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


@pytest.fixture
def class_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install CLASS_PATCHES on the stdlib classes, as the patch layer will."""
    for (cls, name), func in _selectors.CLASS_PATCHES.items():
        monkeypatch.setattr(cls, name, func)


def outcome(func: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", func()
    except Exception as exc:
        return type(exc).__name__, str(exc)


# -- stdlib behaviour ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_select_results_match_stdlib(
    cls: type[std_selectors.BaseSelector], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    with cls() as ours, STDLIB[cls]() as theirs:
        assert isinstance(ours, STDLIB[cls])
        for sel in (ours, theirs):
            sel.register(a, std_selectors.EVENT_READ | std_selectors.EVENT_WRITE, "a")
            sel.register(b, std_selectors.EVENT_READ, "b")

        def summary(sel: std_selectors.BaseSelector, timeout: float | None) -> Any:
            return sorted((key.data, ev) for key, ev in sel.select(timeout))

        for timeout in (None, 0, -1, 0.01):
            assert summary(ours, timeout) == summary(theirs, 0)
        a.send(b"x")
        assert summary(ours, None) == summary(theirs, 0) == [("a", 2), ("b", 1)]
        ours.unregister(a)
        theirs.unregister(a)
        b.recv(1)
        for timeout in (0, -1, 0.01):
            assert ours.select(timeout) == theirs.select(0) == []
        assert ours.get_map().keys() == theirs.get_map().keys()
        assert ours.get_key(b).data == "b"


@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_registration_errors_match_stdlib(
    cls: type[std_selectors.BaseSelector], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    with cls() as ours, STDLIB[cls]() as theirs:
        for sel in (ours, theirs):
            sel.register(a, std_selectors.EVENT_READ)
        cases: list[Callable[[std_selectors.BaseSelector], object]] = [
            lambda s: s.register(a, std_selectors.EVENT_READ),
            lambda s: s.register(b, 0),
            lambda s: s.register(b, 8),
            lambda s: s.register(-1, std_selectors.EVENT_READ),
            lambda s: s.register(object(), std_selectors.EVENT_READ),
            lambda s: s.unregister(b),
            lambda s: s.modify(b, std_selectors.EVENT_READ),
            lambda s: s.get_key(b),
        ]
        for case in cases:
            assert outcome(lambda c=case: c(ours)) == outcome(lambda c=case: c(theirs))  # type: ignore[misc]
    assert outcome(lambda: ours.get_map()) == outcome(lambda: theirs.get_map())


def test_default_selector_follows_stdlib_choice() -> None:
    assert issubclass(tp_selectors.DefaultSelector, std_selectors.DefaultSelector)
    assert tp_selectors.DefaultSelector.__module__ == "threadpatch.selectors"


# -- cancellable select() --------------------------------------------------------------------


def _blocked_select(make: Callable[[], std_selectors.BaseSelector], sock: socket.socket) -> Any:
    with make() as sel:
        sel.register(sock, std_selectors.EVENT_READ)
        return sel.select()


MAKERS: list[Callable[[], std_selectors.BaseSelector]] = [*OURS]


@pytest.mark.parametrize("make", MAKERS, ids=lambda c: c.__name__)
def test_cancel_during_select(
    make: Callable[[], std_selectors.BaseSelector],
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    before = fd_count()
    t = threadpatch.spawn(_blocked_select, make, a)
    wait_all_threads_blocked(expected=1)
    assert t.cancel(timeout=5)
    assert t.cancelled
    assert fd_count() == before
    b.send(b"x")
    assert [ev for _, ev in _blocked_select(make, a)] == [std_selectors.EVENT_READ]


@pytest.mark.parametrize("make", MAKERS, ids=lambda c: c.__name__)
def test_cancel_before_and_after_select(
    make: Callable[[], std_selectors.BaseSelector],
    pair: tuple[socket.socket, socket.socket],
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair

    def cancelled_first() -> None:
        threadpatch.current().cancel()
        with make() as sel:
            sel.register(a, std_selectors.EVENT_READ)
            assert sel.select(0) == []  # never blocks: answers
            sel.select(-1)
            sel.select(5)  # would block: raises

    t = threadpatch.spawn(cancelled_first)
    t.wait(5)
    assert t.cancelled

    t = threadpatch.spawn(_blocked_select, make, a)
    wait_all_threads_blocked(expected=1)
    b.send(b"x")
    assert len(t.join(5)) == 1
    assert t.cancel(timeout=5)
    assert not t.cancelled


@pytest.mark.parametrize("make", MAKERS, ids=lambda c: c.__name__)
def test_deadline_during_select(
    make: Callable[[], std_selectors.BaseSelector], pair: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = pair
    before = fd_count()
    with pytest.raises(threadpatch.ThreadTimeout), threadpatch.timeout_after(0.02):
        _blocked_select(make, a)
    assert fd_count() == before
    with threadpatch.ignore_after(0.02) as scope:
        _blocked_select(make, a)
    assert scope.expired


# -- class patches on the stdlib classes -----------------------------------------------------

STD_CLASSES = [
    std_selectors.SelectSelector,
    std_selectors.PollSelector,
    std_selectors.EpollSelector,
]


@pytest.mark.parametrize("cls", STD_CLASSES, ids=lambda c: c.__name__)
def test_class_patches_make_stdlib_selectors_cancellable(
    cls: type[std_selectors.BaseSelector],
    pair: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    a, b = pair
    sel = cls()  # made before patching: the class-level patch still reaches it
    sel.register(a, std_selectors.EVENT_READ, "a")
    for (owner, name), func in _selectors.CLASS_PATCHES.items():
        monkeypatch.setattr(owner, name, func)
    with sel:
        t = threadpatch.spawn(sel.select)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        assert sel.select(0) == []
        assert sel.select(0.01) == []
        t = threadpatch.spawn(sel.select, 30)
        wait_all_threads_blocked(expected=1)
        b.send(b"x")
        assert [(k.data, ev) for k, ev in t.join(5)] == [("a", std_selectors.EVENT_READ)]


def test_class_patches_table() -> None:
    assert set(_selectors.CLASS_PATCHES) == {
        (std_selectors.SelectSelector, "_select"),
        (std_selectors._PollLikeSelector, "select"),  # type: ignore[attr-defined]
        (std_selectors.EpollSelector, "select"),
    }


def test_class_patches_wait_natively_in_the_hub(
    class_patched: None, monkeypatch: pytest.MonkeyPatch, pair: tuple[socket.socket, socket.socket]
) -> None:
    a, b = pair
    for name in ("wait_fd", "wait_fds", "begin_fd_wait"):
        monkeypatch.setattr(_core.ThreadState, name, None)  # must not be used

    def waits() -> list[object]:
        results: list[object] = []
        for cls in STD_CLASSES:
            with cls() as sel:
                sel.register(a, std_selectors.EVENT_READ)
                results.append(sel.select(0.01))
        b.send(b"x")
        for cls in STD_CLASSES:
            with cls() as sel:
                sel.register(a, std_selectors.EVENT_READ, "a")
                results.append([(key.data, ev) for key, ev in sel.select(1)])
        return results

    ready = [("a", std_selectors.EVENT_READ)]
    assert in_hub(waits) == [[]] * len(STD_CLASSES) + [ready] * len(STD_CLASSES)


def test_facade_mirrors_stdlib() -> None:
    assert tp_selectors.EVENT_READ == std_selectors.EVENT_READ
    assert tp_selectors.SelectorKey is std_selectors.SelectorKey
    assert tp_selectors.BaseSelector is std_selectors.BaseSelector
    for name in tp_selectors.__all__:
        assert hasattr(tp_selectors, name)
