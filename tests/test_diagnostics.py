"""snapshot(), dump(), find_deadlocks(), dump_on_signal(), the Ctrl-C report: real threads."""

from __future__ import annotations

import _thread
import io
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import _sync
from threadpatch._describe import describe_reason, lock_owner

if TYPE_CHECKING:
    from collections.abc import Callable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
IMPLS = sorted(_sync.LOCK_IMPLEMENTATIONS)


def by_name(name: str) -> threadpatch.ThreadSnapshot:
    (found,) = [t for t in threadpatch.snapshot() if t.name == name]
    return found


def wait_for_snapshot(
    ready: Callable[[list[threadpatch.ThreadSnapshot]], bool], timeout: float = 10.0
) -> None:
    """Wait until ``ready(snapshot())``: a state, polled as conftest's fixture polls."""
    deadline = time.monotonic() + timeout
    while not ready(threadpatch.snapshot(stacks=False)):
        if time.monotonic() > deadline:
            pytest.fail(f"never reached: {threadpatch.snapshot(stacks=False)}")
        time.sleep(0.0005)  # polling the registry, not synchronising on time


def end(threads: list[threadpatch.Thread[Any]]) -> None:
    """Cancel ``threads`` (a deadlock's way out) and check that they all ended."""
    for t in threads:
        t.cancel(blocking=False)
    for t in threads:
        assert t.wait(timeout=5), f"{t.name} did not end"
    assert threadpatch.find_deadlocks() == []


def needs_owner(lock_cls: type[Any]) -> None:
    if not hasattr(lock_cls(), "_owner"):
        pytest.skip(f"{lock_cls.__module__} Lock does not record its holder (_owner) yet")


# -- snapshot ------------------------------------------------------------------------


def test_snapshot_of_a_blocked_get(wait_all_threads_blocked: Callable[..., None]) -> None:
    q: threadpatch.Queue[int] = threadpatch.Queue(maxsize=10)

    def getter() -> None:
        with threadpatch.timeout_after(30):
            q.get(timeout=60)

    t = threadpatch.spawn(getter, name="getter")
    wait_all_threads_blocked(expected=1)
    snap = by_name("getter")
    assert (snap.ident, snap.native_id) == (t.ident, t.native_id)
    assert (snap.state, snap.kind, snap.subject) == ("blocked", "queue.get", q)
    assert snap.reason == "Queue.get on <Queue qsize=0 maxsize=10>"
    assert snap.blocked_for is not None
    assert 0 <= snap.blocked_for < 30
    assert snap.wait_deadline_left is not None
    assert 30 < snap.wait_deadline_left <= 60
    assert snap.scope_deadline_left is not None
    assert 0 < snap.scope_deadline_left <= 30
    assert snap.deadline_left == snap.scope_deadline_left
    assert not snap.cancel_requested
    assert not snap.shielded
    # Innermost last: the user's line; threadpatch's and threading's frames left out.
    assert "in getter" in snap.stack[-1]
    assert "q.get(timeout=60)" in snap.stack[-1]
    assert len(snap.stack) == 1
    assert snap.hidden_frames > 3
    header = snap.header()
    assert re.fullmatch(
        r"Thread 'getter' \(ident \d+, native \d+\): blocked \d+\.\d s in Queue\.get on "
        r"<Queue qsize=0 maxsize=10>, deadline in \d+\.\d s, scope deadline in \d+\.\d s",
        header,
    ), header
    t.cancel(timeout=5)
    assert t.cancelled
    assert "getter" not in [s.name for s in threadpatch.snapshot()]


def test_snapshot_states_running_cancelled_and_shielded() -> None:
    gate = _thread.allocate_lock()
    gate.acquire()
    known = threadpatch.Event()
    ev = threadpatch.Event()

    def outside() -> None:
        threadpatch.current()  # known to threadpatch, then in a wait it does not cover
        known.set()
        gate.acquire()

    def shielded() -> None:
        with threadpatch.shield():
            ev.wait()

    a = threadpatch.spawn(outside, name="outside")
    b = threadpatch.spawn(shielded, name="shielded")
    known.wait(5)
    wait_for_snapshot(lambda s: any(t.name == "shielded" and t.kind == "event" for t in s))
    snap = by_name("outside")
    assert (snap.state, snap.kind, snap.reason, snap.blocked_for) == ("running", None, None, None)
    assert "gate.acquire()" in snap.stack[-1]
    b.cancel(blocking=False)  # woken, it goes on waiting: shielded
    wait_for_snapshot(lambda s: any(t.name == "shielded" and t.cancel_requested for t in s))
    snap = by_name("shielded")
    assert (snap.state, snap.kind, snap.subject) == ("cancelled", "event", ev)
    assert snap.cancel_requested
    assert snap.shielded
    assert snap.header().startswith("Thread 'shielded' (ident ")
    assert ": cancelled (shielded), blocked " in snap.header()
    gate.release()
    ev.set()
    assert a.wait(5)
    assert b.wait(5)
    a.join()


def test_a_shielded_scopes_own_deadline_is_the_scope_deadline(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    # The outer deadline is suspended by the shield; the shielded scope's own is not.
    ev = threadpatch.Event()

    def body() -> None:
        with (
            threadpatch.timeout_after(5),
            threadpatch.CancelScope(threadpatch.current_time() + 60, shield=True),
        ):
            ev.wait()

    t = threadpatch.spawn(body, name="shielded-deadline")
    wait_all_threads_blocked(expected=1)
    snap = by_name("shielded-deadline")
    assert snap.shielded
    assert snap.scope_deadline_left is not None
    assert 5 < snap.scope_deadline_left <= 60
    ev.set()
    t.join(timeout=5)


def test_to_dict_is_json_ready() -> None:
    import json

    ev = threadpatch.Event()
    t = threadpatch.spawn(ev.wait, 60, name="waiter")
    wait_for_snapshot(lambda s: any(x.name == "waiter" and x.kind == "event" for x in s))
    data = by_name("waiter").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "event"
    assert str(data["reason"]).startswith("Event.wait on <threadpatch.")
    assert isinstance(data["stack"], list)
    assert data["stack"]
    ev.set()
    assert t.join(timeout=5) is True


# -- describing every kind -------------------------------------------------------------


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize("impl", IMPLS)
def test_describe_locks(impl: str) -> None:
    lock_cls, rlock_cls = _sync.LOCK_IMPLEMENTATIONS[impl]
    rlock = rlock_cls()
    assert re.fullmatch(
        r"RLock\.acquire on <RLock at 0x[0-9a-f]+ free>", describe_reason(("lock", rlock))
    )
    with rlock, rlock:
        me = threading.get_ident()
        assert lock_owner(rlock) == me
        text = describe_reason(("lock", rlock), {me: "me"})
        assert text.endswith(f"held by 'me' (ident {me}), count 2>"), text
    lock = lock_cls()
    free = describe_reason(("lock", lock))
    if hasattr(lock, "_owner"):
        assert free.endswith(" free>")
        with lock:
            assert lock_owner(lock) == threading.get_ident()
    else:
        assert free.endswith(" holder unknown>")
        assert lock_owner(lock) is None
    cond = threadpatch.Condition(rlock)
    text = describe_reason(("condition", cond))
    assert re.fullmatch(
        r"Condition\.wait on <Condition over <RLock at 0x[0-9a-f]+ free>, 0 waiting>", text
    )


def test_describe_every_kind() -> None:
    q: threadpatch.Queue[int] = threadpatch.Queue()
    q.put(1)
    sq: threadpatch.SimpleQueue[int] = threadpatch.SimpleQueue()
    t = threadpatch.spawn(lambda: None, name="done-soon")
    t.join(timeout=5)
    plain = threading.Thread(target=lambda: None, name="plain-1")
    cases: list[tuple[object, str]] = [
        (("queue.put", q), "Queue.put on <Queue qsize=1 maxsize=0 unfinished=1>"),
        (("queue.join", q), "Queue.join on <Queue qsize=1 maxsize=0 unfinished=1>"),
        (("queue.get", sq), "SimpleQueue.get on <SimpleQueue qsize=0>"),
        (("join", t), "join of thread 'done-soon'"),
        (("join", plain), "join of thread 'plain-1'"),
        (("sleep", 2.5), "sleep(2.5)"),
        (("dns", "getaddrinfo", "example.com"), "DNS getaddrinfo('example.com')"),
        (("group", threadpatch.ThreadGroup()), "ThreadGroup.wait on <threadpatch.ThreadGroup"),
        (("semaphore", threadpatch.Semaphore(0)), "Semaphore.acquire on <threadpatch.Semaphore"),
        (("event", threadpatch.Event()), "Event.wait on <threadpatch.Event at 0x"),
        (("barrier", threadpatch.Barrier(2)), "Barrier.wait on <threadpatch.Barrier at 0x"),
        (("select", [3, 4]), "select on [3, 4]"),
        (("new-kind", 42, "more"), "new-kind on 42, 'more'"),
        (("new-kind", BadRepr()), "new-kind on <BadRepr object at 0x"),
        ("not a tuple", "not a tuple"),
        (("epoll",), "epoll"),
    ]
    for reason, expected in cases:
        assert describe_reason(reason).startswith(expected), (reason, describe_reason(reason))


def test_describe_sockets() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert (
            describe_reason(("accept", server))
            == f"accept on <socket fd={server.fileno()} 127.0.0.1:{port}>"
        )
        with socket.create_connection(("127.0.0.1", port)) as client:
            local = client.getsockname()[1]
            text = describe_reason(("recv", client))
            assert (
                text
                == f"recv on <socket fd={client.fileno()} 127.0.0.1:{local} peer 127.0.0.1:{port}>"
            )
            assert describe_reason(("tls.read", client)).startswith("TLS read on <socket fd=")
    assert describe_reason(("send", client)) == "send on <socket closed>"
    a, b = socket.socketpair()
    with a, b:
        assert (
            describe_reason(("sendall", a))
            == f"sendall on <socket fd={a.fileno()} unnamed peer unnamed>"
        )


# -- deadlocks -------------------------------------------------------------------------


def lock_cycle(locks: list[Any]) -> list[threadpatch.Thread[Any]]:
    """Thread i holds locks[i] and waits for locks[i + 1]: every thread's one park is that wait."""
    n = len(locks)
    held = [threadpatch.Event() for _ in locks]
    gate = _thread.allocate_lock()  # native: waiting on it is not parking
    gate.acquire()

    def diner(i: int) -> None:
        with locks[i]:
            held[i].set()
            gate.acquire()
            gate.release()
            with locks[(i + 1) % n]:
                pass

    threads = [threadpatch.spawn(diner, i, name=f"diner-{i}") for i in range(n)]
    for ev in held:
        assert ev.wait(5)
    gate.release()
    return threads


LOCK_KINDS = {
    "Lock": (0,),
    "RLock": (1,),
    "mixed": (0, 1, 1),
}


@pytest.mark.parametrize("n", [2, 3, 5], ids=["two", "three", "dining-philosophers"])
@pytest.mark.parametrize("kinds", sorted(LOCK_KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_lock_cycle_is_found(
    impl: str, kinds: str, n: int, wait_all_threads_blocked: Callable[..., None]
) -> None:
    pair = _sync.LOCK_IMPLEMENTATIONS[impl]
    pattern = LOCK_KINDS[kinds]
    classes = [pair[pattern[i % len(pattern)]] for i in range(n)]
    if pair[0] in classes:
        needs_owner(pair[0])
    locks = [cls() for cls in classes]
    threads = lock_cycle(locks)
    wait_all_threads_blocked(expected=n)
    (cycle,) = threadpatch.find_deadlocks()
    assert sorted(step.thread.name for step in cycle) == sorted(t.name for t in threads)
    for i, step in enumerate(cycle):
        holder = cycle[(i + 1) % n].thread
        assert step.thread.kind == "lock"
        assert step.lock is step.thread.subject
        assert lock_owner(step.lock) == holder.ident == step.thread.owner
        k = int(step.thread.name.split("-")[1])
        assert step.lock is locks[(k + 1) % n]
    out = io.StringIO()
    threadpatch.dump(out)
    text = out.getvalue()
    assert f"Deadlock: {n} threads wait for each other:" in text
    for t in threads:
        assert f"  {t.name!r} (ident {t.ident}) waits for " in text
    end(threads)


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
@pytest.mark.parametrize("impl", IMPLS)
def test_chain_is_not_a_deadlock(
    impl: str, kind: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    cls = _sync.LOCK_IMPLEMENTATIONS[impl][kind == "RLock"]
    if kind == "Lock":
        needs_owner(cls)
    a, b, c = cls(), cls(), cls()
    b_held, c_held, go = threadpatch.Event(), threadpatch.Event(), threadpatch.Event()

    def last() -> None:
        with c:
            c_held.set()
            go.wait()

    def middle() -> None:
        with b:
            b_held.set()
            with c:
                pass

    def first() -> None:
        with a, b:
            pass

    threads = [threadpatch.spawn(last, name="last")]
    assert c_held.wait(5)
    threads.append(threadpatch.spawn(middle, name="middle"))
    assert b_held.wait(5)
    threads.append(threadpatch.spawn(first, name="first"))
    wait_all_threads_blocked(expected=3)
    snaps = {s.name: s for s in threadpatch.snapshot()}
    # The graph is there: first -> middle -> last, who waits for an event.
    assert snaps["first"].owner == threads[1].ident
    assert snaps["middle"].owner == threads[0].ident
    assert snaps["last"].kind == "event"
    assert threadpatch.find_deadlocks() == []
    out = io.StringIO()
    threadpatch.dump(out)
    assert "Deadlock" not in out.getvalue()
    go.set()
    for t in threads:
        t.join(timeout=5)


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_lock_held_across_a_condition_wait(
    kind: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    # T1 holds A and waits on a condition over B; T2 holds B and waits for A.
    # Only a holder of B can notify, and it is blocked: a deadlock.
    cls = threadpatch.Lock if kind == "Lock" else threadpatch.RLock
    if kind == "Lock":
        needs_owner(cls)
    a, b = threadpatch.RLock(), cls()
    cond = threadpatch.Condition(b)
    ready = threadpatch.Event()

    def waiter() -> None:
        with a, cond:
            ready.set()
            cond.wait()

    def taker() -> None:
        with cond, a:
            pass

    t1 = threadpatch.spawn(waiter, name="waiter")
    assert ready.wait(5)
    wait_all_threads_blocked(expected=1)  # in cond.wait: B is free again
    t2 = threadpatch.spawn(taker, name="taker")
    wait_all_threads_blocked(expected=2)
    (cycle,) = threadpatch.find_deadlocks()
    steps = {step.thread.name: step for step in cycle}
    assert steps["waiter"].thread.kind == "condition"
    assert steps["waiter"].lock is b
    assert steps["taker"].thread.kind == "lock"
    assert steps["taker"].lock is a
    out = io.StringIO()
    threadpatch.dump(out)
    assert "(to notify its Condition), held by 'taker'" in out.getvalue()
    end([t2, t1])
    assert t1.cancelled
    assert t2.cancelled


def test_reacquiring_a_condition_lock_after_notify(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    # T1 holds A and waits on cond(B); T2 takes B, notifies, and waits for A
    # still holding B; T1, notified, waits to re-take B.
    a = threadpatch.RLock()
    cond = threadpatch.Condition()
    ready = threadpatch.Event()

    def waiter() -> None:
        with a, cond:
            ready.set()
            cond.wait()

    def notifier() -> None:
        with cond:
            cond.notify()
            with a:
                pass

    t1 = threadpatch.spawn(waiter, name="waiter")
    assert ready.wait(5)
    wait_all_threads_blocked(expected=1)
    t2 = threadpatch.spawn(notifier, name="notifier")
    wait_for_snapshot(lambda s: sum(t.kind == "lock" for t in s) == 2)
    (cycle,) = threadpatch.find_deadlocks()
    steps = {step.thread.name: step for step in cycle}
    assert steps["waiter"].thread.kind == "lock"
    assert steps["waiter"].lock is cond._lock
    assert steps["notifier"].lock is a
    # The waiter re-takes B shielded (a wait must end with the lock held):
    # cancelling the notifier breaks the cycle, the waiter then returns.
    end([t1, t2])
    assert t2.cancelled


@pytest.mark.parametrize("impl", IMPLS)
def test_waiting_for_a_lock_one_holds_is_no_cycle(
    impl: str, wait_all_threads_blocked: Callable[..., None]
) -> None:
    # A plain Lock's "holder" is its last acquirer; threading.Condition waits
    # by acquiring its waiter lock twice, so this is its normal way to wait.
    cls = _sync.LOCK_IMPLEMENTATIONS[impl][0]
    needs_owner(cls)
    lock = cls()

    def twice() -> None:
        with lock:
            lock.acquire()

    t = threadpatch.spawn(twice, name="twice")
    wait_all_threads_blocked(expected=1)
    assert "held by this thread" in str(by_name("twice").reason)
    assert threadpatch.find_deadlocks() == []
    end([t])


def test_dining_philosophers_example_prints_the_cycle() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "20_dining_philosophers.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every fork is back on the table" in result.stdout
    if hasattr(threadpatch.Lock(), "_owner"):
        assert "deadlock: 5 philosophers wait for each other:" in result.stdout
        assert re.search(r"philosopher-\d waits for fork \d, held by philosopher-\d", result.stdout)


# -- dump_on_signal and the Ctrl-C report, in child interpreters -----------------------


def run_child(script: Path, code: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Run ``code`` from the file ``script`` (a file: stacks show its source lines)."""
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    env.pop("THREADPATCH_AUTOPATCH", None)
    return subprocess.Popen([sys.executable, str(script)], text=True, env=env, **kwargs)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs (a failed test) and reap it."""
    if proc.returncode is None:
        proc.kill()
        proc.communicate(timeout=10)


WAIT_BLOCKED = """
import threadpatch, time
def wait_blocked(name, kind):
    for _ in range(10000):
        if any(t.name == name and t.kind == kind for t in threadpatch.snapshot(stacks=False)):
            return
        time.sleep(0.001)
    raise SystemExit(f"{name} never blocked in {kind}")
"""


def test_dump_on_signal(tmp_path: Path) -> None:
    err = tmp_path / "err"
    code = (
        WAIT_BLOCKED
        + """
import signal, sys
previous = threadpatch.dump_on_signal()
assert previous == signal.SIG_DFL, previous
q = threadpatch.Queue()
t = threadpatch.spawn(q.get, name="getter")
wait_blocked("getter", "queue.get")
print("READY", flush=True)
sys.stdin.readline()
q.put(1)
t.join(timeout=5)
signal.signal(signal.SIGUSR1, previous)
print("DONE", flush=True)
"""
    )
    with err.open("w") as err_file:
        proc = run_child(
            tmp_path / "child.py",
            code,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err_file,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        try:
            assert proc.stdout.readline() == "READY\n", err.read_text()
            os.kill(proc.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while "in Queue.get on <Queue qsize=0 maxsize=0>" not in err.read_text():
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.001)  # polling the child's output for a state
            out, _ = proc.communicate("\n", timeout=10)
        finally:
            stop(proc)
    assert proc.returncode == 0, err.read_text()
    assert out == "DONE\n"
    text = err.read_text()
    assert re.search(r"Thread 'getter' \(ident \d+, native \d+\): blocked \d", text), text
    assert "threadpatch: 2 thread(s) in process" in text or "threadpatch: 1 thread(s)" in text


def test_dump_on_signal_needs_the_main_thread_and_a_descriptor() -> None:
    with pytest.raises(ValueError, match="fileno"):
        threadpatch.dump_on_signal(file=io.StringIO())
    t = threadpatch.spawn(threadpatch.dump_on_signal, name="not-main")
    with pytest.raises(threadpatch.ThreadError) as info:
        t.join(timeout=5)
    assert isinstance(info.value.__cause__, ValueError)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_ctrl_c_report_shows_where_the_remaining_threads_are_stuck(tmp_path: Path) -> None:
    code = (
        WAIT_BLOCKED
        + """
import signal, threading, _thread
signal.signal(signal.SIGINT, signal.default_int_handler)
ev = threadpatch.Event()
def shielded_waiter():
    with threadpatch.shield():
        ev.wait()     # a cancel does not end a shielded wait: still there after the grace
stuck = _thread.allocate_lock()
stuck.acquire()
def native_waiter():
    stuck.acquire()   # where threadpatch cannot reach
threadpatch.spawn(shielded_waiter, name="shielded-waiter")
threading.Thread(target=native_waiter, name="native-waiter").start()
wait_blocked("shielded-waiter", "event")
raise KeyboardInterrupt
"""
    )
    proc = run_child(tmp_path / "child.py", code, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        stop(proc)
    assert proc.returncode == -signal.SIGINT, err
    assert "still running after 0.5 s" in err
    assert re.search(
        r"'shielded-waiter' waits in event on <threadpatch\.Event at 0x[0-9a-f]+: unset>", err
    ), err
    assert "in shielded_waiter\n    ev.wait()" in err
    assert "'native-waiter' is not in a threadpatch wait, at:" in err
    assert "in native_waiter\n    stuck.acquire()" in err
