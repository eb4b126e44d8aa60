"""Every patch table: each name is ours while patched and exactly the original after.

Also: objects made before patching keep working while patched, and objects
made while patched keep working after unpatching.
"""

from __future__ import annotations

import importlib
import queue
import selectors
import socket
import threading
import time
from typing import Any

import pytest
from _patch_helpers import only

import threadpatch
from threadpatch import _patching, patches


def _owners_and_tables() -> tuple[list[object], dict[str, Any]]:
    tables = {flag: _patching._load_table(flag) for flag in patches.TARGETS}
    owners: list[object] = []
    for _flag, table in tables.items():
        module = importlib.import_module(table.TARGET)
        owners.append(module)
        for owner, _name, _repl in _patching._class_entries(module, table):
            owners.append(owner)
            owners.extend(getattr(owner, "__mro__", ())[1:])
    unique: dict[int, object] = {id(o): o for o in owners}
    return list(unique.values()), tables


def _snapshot(owners: list[object]) -> dict[int, dict[str, object]]:
    return {id(o): dict(vars(o)) for o in owners}


def _assert_same(owners: list[object], before: dict[int, dict[str, object]]) -> None:
    for owner in owners:
        now = dict(vars(owner))
        then = before[id(owner)]
        assert now.keys() == then.keys(), (owner, now.keys() ^ then.keys())
        changed = [k for k in then if now[k] is not then[k]]
        assert not changed, (owner, changed)


@pytest.mark.parametrize("flag", list(patches.TARGETS))
def test_each_name_is_ours_while_patched_and_original_after(flag: str) -> None:
    owners, tables = _owners_and_tables()
    table = tables[flag]
    module = importlib.import_module(table.TARGET)
    assert patches.TARGETS[flag] == table.TARGET
    before = _snapshot(owners)
    entries = [
        (module, name, repl) for name, repl in table.REPLACEMENTS.items() if name in vars(module)
    ]
    entries += [(o, n, r) for o, n, r in _patching._class_entries(module, table) if hasattr(o, n)]
    with threadpatch.patched(**only(flag)):
        assert threadpatch.is_patched(flag)
        for owner, name, replacement in entries:
            installed = vars(owner)[name]
            if installed is not replacement:  # a builtin's replacement, as a builtin
                assert installed.__wrapped__ is replacement, (owner, name)
            original = threadpatch.original(owner, name)
            assert original is not replacement
            if name in before[id(owner)]:
                assert original is before[id(owner)][name]
    assert not threadpatch.is_patched(flag)
    _assert_same(owners, before)


def test_patch_all_then_unpatch_all_restores_every_attribute() -> None:
    owners, _ = _owners_and_tables()
    before = _snapshot(owners)
    threadpatch.patch_all()
    assert all(
        threadpatch.is_patched(flag) is (flag not in patches.OFF_BY_DEFAULT)  # type: ignore[arg-type]
        for flag in patches.TARGETS
    )
    assert len(_patching._active_records()) > 30
    threadpatch.unpatch_all()
    _assert_same(owners, before)
    # and once more, nested, to be sure a second round restores as well
    with threadpatch.patched(), threadpatch.patched(socket=False):
        threadpatch.patch_all()
    threadpatch.unpatch_all()
    _assert_same(owners, before)


def test_objects_made_before_patching_keep_working() -> None:
    lock, event, q, sq = threading.Lock(), threading.Event(), queue.Queue(), queue.SimpleQueue()
    a, b = socket.socketpair()
    a.settimeout(5)
    sel = selectors.DefaultSelector()
    sel.register(a, selectors.EVENT_READ)
    with a, b, sel, threadpatch.patched():
        with lock:
            assert lock.locked()
        event.set()
        assert event.wait(1)
        q.put(1)
        assert q.get(timeout=1) == 1
        sq.put(2)
        assert sq.get(timeout=1) == 2
        b.sendall(b"ping")
        assert [key.fileobj for key, _ in sel.select(5)] == [a]
        assert a.recv(4) == b"ping"
        assert a.gettimeout() == 5
        a.settimeout(0.01)
        with pytest.raises(TimeoutError):
            a.recv(1)


def test_objects_made_while_patched_keep_working_after() -> None:
    with threadpatch.patched():
        lock, event, cond = threading.Lock(), threading.Event(), threading.Condition()
        q, sq = queue.Queue(), queue.SimpleQueue()
        a, b = socket.socketpair()
        c, d = socket.socket(), socket.socket()
        c.settimeout(3)
        c.bind(("127.0.0.1", 0))
        c.listen()
        d.connect(c.getsockname())  # adopts d
        e, _ = c.accept()
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ)
    with a, b, c, d, e, sel:
        assert c.gettimeout() == 3
        with lock:
            pass
        event.set()
        assert event.wait(1)
        with cond:
            assert not cond.wait(0.001)
        q.put(1)
        assert q.get(timeout=1) == 1
        sq.put(2)
        assert sq.get(timeout=1) == 2
        b.sendall(b"ping")
        assert [key.fileobj for key, _ in sel.select(5)] == [a]
        assert a.recv(4) == b"ping"
        d.sendall(b"pong")
        assert e.recv(4) == b"pong"
        assert d.gettimeout() is None
        assert d.getblocking()
        d.settimeout(0.01)
        with pytest.raises(TimeoutError):
            d.recv(1)


def test_queue_made_before_patching_is_cancellable(wait_all_threads_blocked: Any) -> None:
    q: queue.Queue[int] = queue.Queue()
    with threadpatch.patched():
        t = threadpatch.spawn(q.get)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
        assert t.cancelled
        q.put(1)  # the cancelled getter did not take it, and a new one gets it
        assert threadpatch.spawn(q.get).join(timeout=5) == 1


def test_thread_join_and_timer_are_cancellable(wait_all_threads_blocked: Any) -> None:
    with threadpatch.patched():
        timer = threading.Timer(60, lambda: None)
        timer.start()
        joiner = threadpatch.spawn(timer.join)
        wait_all_threads_blocked(expected=2)
        assert joiner.cancel(timeout=5)
        assert joiner.cancelled
        assert isinstance(timer.finished, threadpatch.Event)
        timer.cancel()
        timer.join(5)
    assert not timer.is_alive()


def test_time_sleep_in_a_patched_program(wait_all_threads_blocked: Any) -> None:
    with threadpatch.patched():
        t = threadpatch.spawn(time.sleep, 60)
        wait_all_threads_blocked(expected=1)
        assert t.cancel(timeout=5)
    assert t.cancelled
