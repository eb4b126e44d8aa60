"""Ctrl-C on unmodified programs run patched (``python -m threadpatch``, auto-patch).

Each case is a plain-``threading`` program (no threadpatch API) whose threads
block in patched calls while its main thread blocks too, or has ended and the
interpreter waits for the threads.  One SIGINT must end it as Python's own
Ctrl-C does (the ``KeyboardInterrupt`` traceback, exit status -SIGINT) within
1 s, after every ``finally`` of those threads ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

# Only the announcer knows threadpatch: it says READY once the program's
# threads are all parked in patched calls, so that SIGINT finds them blocked.
PRELUDE = """
import os, signal, socket, sys, threading, time, queue
from threadpatch import _core

signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's foreground job

def say(line):
    os.write(1, (line + "\\n").encode())

def wait_blocked(count):
    me = _core.current_state()
    while True:
        others = [s for s in _core.all_states() if not s.finished and s is not me]
        if len(others) >= count and all(s.parked for s in others):
            return
        _core._natives.sleep(0.001)

def announce_when_blocked(count):
    def watch():
        wait_blocked(count)
        say("READY")
    threading.Thread(target=watch, daemon=True).start()

def announce_at_exit(count):
    # From the main thread inside threading._shutdown, just before it waits
    # for the threads: a SIGINT now finds the main program ended.  (One that
    # lands in the last bytecodes of the program can hit a weakref callback
    # run at that moment, where CPython reports and drops the exception.)
    threading._register_atexit(lambda: (wait_blocked(count), say("READY")))

silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)   # never accepts: a request to it waits for a reply forever
URL = "http://127.0.0.1:%d/" % silent.getsockname()[1]

def blocking_call(kind):
    if kind == "sleep":
        time.sleep(60)
    elif kind == "queue":
        queue.Queue().get()
    elif kind == "condition":
        c = threading.Condition()
        with c:
            c.wait()
    elif kind == "event":
        threading.Event().wait()
    elif kind == "requests":
        import requests
        requests.get(URL)
    elif kind == "socket":
        a, b = socket.socketpair()
        a.recv(1)
    elif kind == "pipe":
        r, w = os.pipe()
        os.read(r, 1)
    elif kind == "pipe-write":
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            while True:
                os.write(w, b"x" * 65536)
        except BlockingIOError:
            pass
        os.set_blocking(w, True)
        os.write(w, b"x" * 65536)
    else:
        raise ValueError(kind)

def worker(i, kind):
    try:
        blocking_call(kind)
    finally:
        say(f"finally {i}")
"""

# How the program's threads are started; each leaves `wait_main` to block on.
THREADS = {
    "plain": """
        threads = [threading.Thread(target=worker, args=(i, KIND)) for i in range(2)]
        for t in threads:
            t.start()
        def wait_main():
            threads[0].join()
    """,
    "pool": """
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(2)
        futures = [pool.submit(worker, i, KIND) for i in range(2)]
        def wait_main():
            futures[0].result()
    """,
}

MAIN = {
    "join": "blocking_call_main = wait_main",
    "sleep": "def blocking_call_main(): time.sleep(60)",
    "requests": "def blocking_call_main(): blocking_call('requests')",
    "socket": "def blocking_call_main(): blocking_call('socket')",
    "pipe": "def blocking_call_main(): blocking_call('pipe')",
}


def program(threads: str, kind: str, main: str) -> str:
    body = textwrap.dedent(THREADS[threads]) if threads in THREADS else threads
    if main == "exit":  # the main program ends; the interpreter waits for the threads
        tail = "announce_at_exit(2)\n"
    else:
        tail = f"{MAIN[main]}\nannounce_when_blocked(3)\nblocking_call_main()\n"
    return PRELUDE + f"KIND = {kind!r}\n" + body + tail


def interrupt(
    code: str, how: str, flags: Sequence[str] = ()
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``code`` as a script patched ``how``, SIGINT it once READY; return result and delay.

    ``how`` is ``"cli"`` (``python -m threadpatch [flags] script``) or ``"autopatch"``.
    """
    env = dict(os.environ)
    env.pop("THREADPATCH_AUTOPATCH", None)
    env["PYTHONFAULTHANDLER"] = "1"
    fd, script = tempfile.mkstemp(suffix=".py", prefix="tp-ctrl-c-")
    with os.fdopen(fd, "w") as f:
        f.write(code)
    if how == "cli":
        args = [sys.executable, "-m", "threadpatch", *flags, script]
    else:
        env["THREADPATCH_AUTOPATCH"] = "1"
        args = [sys.executable, script]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if first.strip() != "READY":
            proc.kill()
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"child did not get ready: {first!r} {out!r} {err!r}")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack to stderr
            out, err = proc.communicate(timeout=10)
            pytest.fail(f"the program hung after Ctrl-C: {out!r}\n{err}")
        elapsed = time.monotonic() - t0
    finally:
        proc.kill()
        os.unlink(script)
    return subprocess.CompletedProcess(args, proc.returncode, out, err), elapsed


def check_interrupted(result: subprocess.CompletedProcess[str], elapsed: float) -> None:
    lines = set(result.stdout.splitlines())
    assert {"finally 0", "finally 1"} <= lines, (result.stdout, result.stderr)
    assert result.returncode == -signal.SIGINT, result.stderr
    assert "KeyboardInterrupt" in result.stderr
    assert "Exception in worker" not in result.stderr  # the pool's workers leave quietly
    assert elapsed < 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["sleep", "queue", "condition", "event", "requests", "socket", "pipe", "pipe-write"]
)
def test_plain_threads_blocked_in_each_patched_call(kind: str) -> None:
    check_interrupted(*interrupt(program("plain", kind, "join"), "cli"))


@pytest.mark.slow
@pytest.mark.parametrize("main", ["join", "sleep", "requests", "socket", "pipe", "exit"])
@pytest.mark.parametrize("threads", ["plain", "pool"])
def test_main_thread_blocked_anywhere(threads: str, main: str) -> None:
    check_interrupted(*interrupt(program(threads, "queue", main), "cli"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "autopatch"])
def test_pool_in_a_with_block(how: str) -> None:
    # Ctrl-C in result(); the with block's shutdown(wait=True) joins the workers.
    body = """
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(worker, i, KIND) for i in range(2)]
            announce_when_blocked(3)
            futures[0].result()
    """
    check_interrupted(*interrupt(PRELUDE + "KIND = 'sleep'\n" + textwrap.dedent(body), how))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "autopatch"])
def test_asyncio_to_thread(how: str) -> None:
    body = """
        import asyncio
        async def main():
            announce_when_blocked(3)   # the loop's selector wait is patched too
            await asyncio.gather(*(asyncio.to_thread(worker, i, KIND) for i in range(2)))
        asyncio.run(main())
    """
    check_interrupted(*interrupt(PRELUDE + "KIND = 'event'\n" + textwrap.dedent(body), how))


@pytest.mark.slow
def test_finally_join_in_main() -> None:
    body = """
        threads = [threading.Thread(target=worker, args=(i, KIND)) for i in range(2)]
        for t in threads:
            t.start()
        try:
            announce_when_blocked(3)
            time.sleep(60)
        finally:
            for t in threads:
                t.join()    # Ctrl-C clean-up that waits for the threads
    """
    check_interrupted(*interrupt(PRELUDE + "KIND = 'queue'\n" + textwrap.dedent(body), "cli"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "autopatch"])
def test_ctrl_c_while_the_interpreter_waits_for_threads(how: str) -> None:
    check_interrupted(*interrupt(program("plain", "condition", "exit"), how))


@pytest.mark.slow
def test_finally_join_of_spawned_threads_without_run() -> None:
    # The threadpatch API without run(): the Ctrl-C clean-up joins the threads.
    body = """
        import threadpatch
        threads = [threadpatch.spawn(worker, i, KIND) for i in range(2)]
        try:
            announce_when_blocked(3)
            threadpatch.sleep(60)
        finally:
            for t in threads:
                t.wait()
    """
    check_interrupted(*interrupt(PRELUDE + "KIND = 'sleep'\n" + textwrap.dedent(body), "cli"))


@pytest.mark.slow
def test_thread_stuck_outside_patched_calls_does_not_hold_the_exit() -> None:
    # One thread blocks where threadpatch cannot reach (a native lock made
    # before patching); Ctrl-C still exits, within the grace, and names it.
    body = """
        import _thread
        stuck = _thread.allocate_lock()
        stuck.acquire()
        threading.Thread(target=worker, args=(0, KIND)).start()
        threading.Thread(target=worker, args=(1, KIND)).start()
        threading.Thread(target=stuck.acquire, name="native-waiter").start()
        announce_when_blocked(3)
        time.sleep(60)
    """
    result, elapsed = interrupt(PRELUDE + "KIND = 'sleep'\n" + textwrap.dedent(body), "cli")
    check_interrupted(result, elapsed)
    assert "'native-waiter'" in result.stderr


SIGNAL_ELSEWHERE = """
import signal, socket, sys, threading, time, select
import threadpatch
from threadpatch import _core
threadpatch.patch_all()
signal.signal(signal.SIGINT, signal.default_int_handler)
main = _core.current_state()
armed = []

def poke():
    while not (armed and main.parked):
        _core._natives.sleep(0.001)
    # Delivered to this thread: its C handler only flags the signal, and the
    # main thread, asleep in a wait, gets no EINTR to notice it by.
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=poke, daemon=True).start()
a, b = socket.socketpair()
sleeper = threading.Thread(target=time.sleep, args=(30,), daemon=True)
sleeper.start()
try:
    armed.append(1)
    WAIT
except KeyboardInterrupt:
    print("KeyboardInterrupt in the main thread")
"""


@pytest.mark.parametrize(
    "wait",
    [
        "threading.Event().wait()",
        "time.sleep(30)",
        "(lambda lock: lock.acquire() and lock.acquire())(threading.Lock())",
        "a.recv(1)",
        "select.select([a], [], [])",
        "sleeper.join()",
    ],
)
def test_signal_handled_in_another_thread_still_interrupts_the_main_thread(wait: str) -> None:
    # A signal whose C handler ran outside the main thread's wait (in another
    # thread here; or just before the wait blocked) must still raise
    # KeyboardInterrupt in the main thread's patched wait, not wait forever.
    code = SIGNAL_ELSEWHERE.replace("WAIT", wait)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout.strip() == "KeyboardInterrupt in the main thread", proc.stderr
