"""Soak under faults: 200 plain threads, the whole stdlib patched, random cancels and deadlines.

Users' code, as written for the standard library: ``threading.Thread`` workers
doing random mixes of ``requests`` and ``http.client`` requests, raw socket
reads, ``queue.Queue`` and ``queue.SimpleQueue`` hand-offs, ``threading``
lock, RLock, semaphore and condition sections, ``Event`` waits and
``time.sleep`` -- all under :func:`threadpatch.patch_all`.  Against them, a
loopback HTTP server (``tests/_soak_server.py``, in a child process) stalls,
drips, answers slowly, or closes and resets connections (``SO_LINGER`` 0) in
the middle of a response, and a driver cancels random threads
(:func:`threadpatch.cancel`) and waits for random ones under
:func:`threadpatch.ignore_after` deadlines; each operation of the plan may
run under its own ``timeout_after``/``ignore_after`` deadline too.

After every round, exactly:

* every queue item whose ``put`` returned was taken exactly once (by a ``get``
  that returned, or by the final drain), and nothing else was (a cancelled
  ``get`` takes no item, a cancelled ``put`` adds none).  The bookkeeping
  needs no shield: cancellation is delivered only at blocking points, and a
  worker records an item on the line after the call that moved it;
* no lock, RLock, semaphore slot or condition lock is held, nobody waits on
  any of them; no two threads were ever inside the lock together;
* every worker ended, and its own ``finally`` and that of every operation it
  began ran; a worker saw ``ThreadCancelled`` only if the driver cancelled it,
  and no deadline escaped its scope; nothing unexpected was raised;
* bytes read are the bytes the server sent (a cancelled or timed-out receive
  loses nothing: the raw-socket reader resumes after each expiry);
* no descriptor, thread, thread state or hub timer is left;

and across rounds, memory (allocated blocks after a full collection) stays flat.

Size and seed come from the environment: ``THREADPATCH_SOAK_SECONDS`` (default
20, the driver's time over all rounds), ``THREADPATCH_SOAK_ROUNDS`` (5),
``THREADPATCH_SOAK_THREADS`` (200), ``THREADPATCH_SOAK_SEED`` (default random;
every failure message starts with the seed).  A fixed seed replays the same
plan: the same operations, faults, deadlines and cancel victims, in the same
order per thread (the interleaving of threads is the OS's).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import http.client
import itertools
import logging
import os
import queue
import random
import select
import socket
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from threadpatch import DeadlineExpired, ThreadCancelled, ThreadTimeout, _core

from ._helpers import wait_until
from ._soak_server import body
from .servers import fd_count

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

requests = pytest.importorskip("requests")
urllib3 = pytest.importorskip("urllib3")

SECONDS = float(os.environ.get("THREADPATCH_SOAK_SECONDS", "20"))
ROUNDS = max(3, int(os.environ.get("THREADPATCH_SOAK_ROUNDS", "5")))
THREADS = int(os.environ.get("THREADPATCH_SOAK_THREADS", "200"))
_SEED_ENV = os.environ.get("THREADPATCH_SOAK_SEED")
SEED = int(_SEED_ENV) if _SEED_ENV else random.SystemRandom().randrange(2**32)

TOKENS = 4  # in the borrow pool
MAX_OPS = 40  # per worker and round: the count bound
SEMAPHORE_SLOTS = 3

# The test's own bookkeeping must stay native while the stdlib is patched.
_native_lock = threading.Lock


class SoakFailure(AssertionError):
    pass


def fail(message: str) -> SoakFailure:
    return SoakFailure(
        f"THREADPATCH_SOAK_SEED={SEED} (replay: THREADPATCH_SOAK_SEED={SEED} "
        f"THREADPATCH_SOAK_SECONDS={SECONDS:g} pytest tests/test_soak.py): {message}"
    )


# -- the fault server ------------------------------------------------------------


@contextlib.contextmanager
def fault_server() -> Iterator[tuple[str, int]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADPATCH_AUTOPATCH")}
    script = Path(__file__).with_name("_soak_server.py")
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), f"the soak server did not start: {line!r}"
        yield ("127.0.0.1", int(line))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # end of file: the server returns
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- one round's shared objects and per-worker tallies ----------------------------


@dataclasses.dataclass
class Tally:
    """What one worker did; only that worker writes it (no lock needed)."""

    begun: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    finals: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    put_ok: list[int] = dataclasses.field(default_factory=list)
    got: list[int] = dataclasses.field(default_factory=list)
    sput_ok: list[int] = dataclasses.field(default_factory=list)
    sgot: list[int] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    started: bool = False
    finally_ran: bool = False
    end: str = "?"


class Round:
    def __init__(self, number: int, address: tuple[str, int], rng: random.Random) -> None:
        self.number = number
        self.address = address
        self.url = f"http://{address[0]}:{address[1]}/"
        # Made while patched: these are the stdlib names, i.e. threadpatch's classes.
        self.q: queue.Queue[int] = queue.Queue(maxsize=rng.choice([1, 2, 5, 20]))
        self.sq: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.rlock = threading.RLock()
        self.sem = threading.BoundedSemaphore(SEMAPHORE_SLOTS)
        self.cond = threading.Condition()
        self.event = threading.Event()
        self.barrier = threading.Barrier(3)
        self.tokens: queue.Queue[int] = queue.Queue()
        for token in range(TOKENS):
            self.tokens.put(token)
        self.pool = urllib3.PoolManager(maxsize=3, block=True)
        self.threads: list[threading.Thread] = []  # every worker of the round, by index
        self.lock_holder: int | None = None
        self.sem_holders: set[int] = set()
        self.stop = False
        self.cancelled: set[int] = set()  # indexes the driver cancelled (added before cancel)
        self.tallies: list[Tally] = []
        self.phases: list[float] = []
        self.driver_problems: list[str] = []  # one per worker thread, by index


# -- the operations -----------------------------------------------------------------

# A fault for the server, as a query; `expect` is what a complete read returns.
_MODES = ["ok", "ok", "ok", "delay", "drip", "chunked", "slowhead", "reset", "close", "stall"]


def _fault(rng: random.Random, keep_alive: bool) -> tuple[str, str, int]:
    mode = rng.choice(_MODES)
    n = rng.choice([0, 1, 10, 100, 1000, 20000])
    tok = "".join(rng.choice("abcdefgh") for _ in range(rng.randint(1, 7)))
    ms = rng.choice([0, 1, 5, 20, 100])
    chunk = rng.choice([1, 7, 100, 4096])
    if mode in ("drip", "chunked"):
        n = min(n, 400 if chunk == 1 else 5000)
    at = rng.randint(0, 60 + n)
    q = f"mode={mode}&n={n}&tok={tok}&ms={ms}&c={chunk}&at={at}&ka={int(keep_alive)}"
    return mode, q, n


def _expected_body(q: str) -> bytes:
    fields = dict(kv.split("=") for kv in q.split("&"))
    return body(fields["tok"], int(fields["n"]))


def _check_body(who: str, mode: str, q: str, data: bytes, tally: Tally) -> None:
    """A read that returned must have the body; after a FIN mid-response, a prefix of it.

    (``http.client`` and urllib3 return short reads at end of file without an
    error; a response cut in its headers reads as one without a body.)
    """
    expected = _expected_body(q)
    ok = data == expected[: len(data)] if mode == "close" else data == expected
    if not ok:
        tally.problems.append(f"{who} read {len(data)} bytes, not the body of {q}")


def op_requests(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    mode, q, _ = _fault(rng, keep_alive=session is not None)
    timeout = rng.choice([None, None, 0.05, 0.3, 2.0])
    if mode == "stall" and timeout is None and rng.random() < 0.7:
        timeout = 0.2
    getter = session.get if session is not None else requests.get
    r = getter(rnd.url + "?" + q, timeout=timeout)
    _check_body("requests", mode, q, r.content, tally)


def op_http_client(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    mode, q, _ = _fault(rng, keep_alive=False)
    timeout = rng.choice([None, 0.05, 0.3, 2.0])
    if mode == "stall" and timeout is None and rng.random() < 0.7:
        timeout = 0.2
    conn = http.client.HTTPConnection(*rnd.address, timeout=timeout)
    try:
        conn.request("GET", "/?" + q)
        resp = conn.getresponse()
        data = resp.read() if rng.random() < 0.5 else b"".join(iter(lambda: resp.read(37), b""))
        _check_body("http.client", mode, q, data, tally)
    finally:
        conn.close()


def _response_bytes(q: str) -> bytes:
    """The whole response the server sends for ``q`` (``reset``/``close`` send a prefix)."""
    from ._soak_server import _plan

    fields = dict(kv.split("=") for kv in q.split("&"))
    if fields["mode"] in ("reset", "close"):
        fields["mode"] = "ok"
    return b"".join(step for _, step in _plan(fields) if isinstance(step, bytes))


def op_raw_socket(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    """A raw request and a reader that resumes after every expiry: nothing may be lost."""
    mode, q, _ = _fault(rng, keep_alive=False)
    timeout = rng.choice([None, None, 1.0])
    expected = _response_bytes(q)
    sock = socket.create_connection(rnd.address, timeout=timeout)
    with sock:
        sock.sendall(b"GET /?" + q.encode() + b" HTTP/1.1\r\nHost: soak\r\n\r\n")
        received = bytearray()
        buf = bytearray(4096)
        for _ in range(20000):  # bounded: the op's deadline or the round's end stops stalls
            if rnd.stop:
                break
            how = rng.random()
            with threadpatch.ignore_after(rng.choice([0.0005, 0.002, 0.01, 0.05])):
                if how < 0.15:
                    select.select([sock], [], [], rng.choice([0, 0.01, None]))
                    continue
                if how < 0.5:
                    nbytes = sock.recv_into(buf, rng.randint(1, 4096))
                    chunk = bytes(buf[:nbytes])
                else:
                    chunk = sock.recv(rng.randint(1, 4096))
                if not chunk:
                    break
                received += chunk
        else:
            return
        if bytes(received) != expected[: len(received)]:
            tally.problems.append(f"raw socket read bytes the server never sent for {q}")
        elif mode not in ("reset", "close", "stall") and not rnd.stop and received != expected:
            tally.problems.append(f"raw socket read {len(received)} of {len(expected)} for {q}")


def op_put(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    for _ in range(rng.randint(1, 5)):
        item = next(_item_ids)
        rnd.q.put(item, timeout=rng.choice([None, None, 0.001, 0.05]))
        tally.put_ok.append(item)  # no blocking point between: recorded iff the put returned


def op_get(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    for _ in range(rng.randint(1, 5)):
        tally.got.append(rnd.q.get(timeout=rng.choice([None, None, 0.001, 0.05])))


def op_simple_queue(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 5)):
            item = next(_item_ids)
            rnd.sq.put(item)
            tally.sput_ok.append(item)
    else:
        for _ in range(rng.randint(1, 5)):
            tally.sgot.append(rnd.sq.get(timeout=rng.choice([None, 0.001, 0.05])))


def _inside_lock(rnd: Round, me: int, tally: Tally, pause: float) -> None:
    if rnd.lock_holder is not None:
        tally.problems.append(f"two threads inside the lock: {rnd.lock_holder} and {me}")
    rnd.lock_holder = me
    try:
        time.sleep(pause)
    finally:
        rnd.lock_holder = None


def op_lock(rnd: Round, rng: random.Random, tally: Tally, session: Any, me: int = -1) -> None:
    pause = rng.choice([0, 0.0005, 0.002, 0.01])
    if rng.random() < 0.7:
        with rnd.lock:
            _inside_lock(rnd, me, tally, pause)
    elif rnd.lock.acquire(timeout=rng.choice([0.001, 0.05])):
        try:
            _inside_lock(rnd, me, tally, pause)
        finally:
            rnd.lock.release()


def op_rlock(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    with rnd.rlock:
        time.sleep(rng.choice([0, 0.001]))
        with rnd.rlock:
            time.sleep(rng.choice([0, 0.002]))


def op_semaphore(rnd: Round, rng: random.Random, tally: Tally, session: Any, me: int = -1) -> None:
    with rnd.sem:
        rnd.sem_holders.add(me)
        try:
            if len(rnd.sem_holders) > SEMAPHORE_SLOTS:
                tally.problems.append(f"semaphore over-admitted: {sorted(rnd.sem_holders)}")
            time.sleep(rng.choice([0, 0.001, 0.01]))
        finally:
            rnd.sem_holders.discard(me)


def op_condition(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    with rnd.cond:
        if rng.random() < 0.4:
            rnd.cond.notify(rng.randint(1, 3))
        else:
            rnd.cond.wait(rng.choice([0.001, 0.02, 0.2]))


def op_event(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    r = rng.random()
    if r < 0.1:
        rnd.event.set()
    elif r < 0.2:
        rnd.event.clear()
    else:
        rnd.event.wait(rng.choice([0.001, 0.02, 0.1]))


def op_sleep(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    time.sleep(rng.choice([0, 0.0001, 0.005, 0.05]))


def op_borrow(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    """A resource pool as users write one: the clean-up returns the token without waiting."""
    token = rnd.tokens.get(timeout=rng.choice([None, 0.01, 0.1]))
    try:
        time.sleep(rng.choice([0, 0.0005, 0.005]))
    finally:
        rnd.tokens.put_nowait(token)  # a put on a non-full queue: works even when cancelled


def op_pool(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    """A urllib3 pool shared by every worker, blocking when its connections are all out."""
    mode, q, _ = _fault(rng, keep_alive=True)
    timeout = rng.choice([None, 0.05, 0.3, 2.0])
    if mode == "stall" and timeout is None and rng.random() < 0.7:
        timeout = 0.2
    r = rnd.pool.request("GET", rnd.url + "?" + q, timeout=timeout, retries=False)
    _check_body("urllib3", mode, q, r.data, tally)


def op_dns(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    infos = socket.getaddrinfo("localhost", rnd.address[1], socket.AF_INET, socket.SOCK_STREAM)
    if not any(info[4][0] == "127.0.0.1" for info in infos):
        tally.problems.append(f"getaddrinfo('localhost') gave {infos}")


def op_join_other(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    other = rng.choice(rnd.threads) if rnd.threads else threading.current_thread()
    if other is not threading.current_thread():
        other.join(rng.choice([0, 0.01, 0.1, None]))


def op_barrier(rnd: Round, rng: random.Random, tally: Tally, session: Any) -> None:
    if rnd.barrier.broken and rng.random() < 0.5:
        rnd.barrier.reset()
    rnd.barrier.wait(rng.choice([0.01, 0.1, None]))


_item_ids = itertools.count(1)  # unique ids across rounds (next() on a count is atomic)

OPS: dict[str, tuple[Callable[..., None], float, tuple[type[BaseException], ...]]] = {
    # name: (function, weight, exceptions the operation may legitimately raise)
    "requests": (op_requests, 3, (requests.RequestException,)),
    "http_client": (op_http_client, 2, (OSError, http.client.HTTPException)),
    "raw_socket": (op_raw_socket, 2, (OSError,)),
    "put": (op_put, 3, (queue.Full,)),
    "get": (op_get, 3, (queue.Empty,)),
    "simple_queue": (op_simple_queue, 2, (queue.Empty,)),
    "lock": (op_lock, 3, ()),
    "rlock": (op_rlock, 1, ()),
    "semaphore": (op_semaphore, 1, ()),
    "condition": (op_condition, 1, ()),
    "event": (op_event, 1, ()),
    "sleep": (op_sleep, 2, ()),
    "borrow": (op_borrow, 2, (queue.Empty,)),
    "pool": (op_pool, 2, (urllib3.exceptions.HTTPError,)),
    "dns": (op_dns, 1, (OSError,)),
    "join_other": (op_join_other, 1, ()),
    "barrier": (op_barrier, 1, (threading.BrokenBarrierError,)),
}
_NAMES = list(OPS)
_WEIGHTS = [OPS[n][1] for n in _NAMES]


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)[-12:])


def run_op(rnd: Round, me: int, name: str, rng: random.Random, session: Any) -> None:
    func, _, expected = OPS[name]
    tally = rnd.tallies[me]
    deadline = rng.random()
    scope: Any = contextlib.nullcontext()
    timed = False
    if deadline < 0.3:
        scope = threadpatch.timeout_after(rng.choice([0.0, 0.001, 0.01, 0.05, 0.3]))
        timed = True
    elif deadline < 0.45:
        scope = threadpatch.ignore_after(rng.choice([0.001, 0.01, 0.1]))
    tally.begun[name] += 1
    try:
        with scope:
            if name in ("lock", "semaphore"):
                func(rnd, rng, tally, session, me)
            else:
                func(rnd, rng, tally, session)
        tally.outcomes[f"{name}:ok"] += 1
    except ThreadTimeout as exc:
        if not timed:
            tally.problems.append(
                f"{name}: ThreadTimeout without a timeout_after\n{_describe(exc)}"
            )
        tally.outcomes[f"{name}:deadline"] += 1
    except ThreadCancelled:
        raise
    except expected as exc:
        tally.outcomes[f"{name}:{type(exc).__name__}"] += 1
    except BaseException as exc:
        tally.problems.append(f"{name}: unexpected {exc!r}\n{_describe(exc)}")
        raise
    finally:
        tally.finals[name] += 1


def worker(rnd: Round, me: int, seed: int) -> None:
    rng = random.Random(seed)
    tally = rnd.tallies[me]
    tally.started = True
    session = requests.Session() if rng.random() < 0.5 else None
    try:
        for _ in range(rng.randint(1, MAX_OPS)):
            if rnd.stop:
                tally.end = "stopped"
                return
            run_op(rnd, me, rng.choices(_NAMES, _WEIGHTS)[0], rng, session)
        tally.end = "done"
    except DeadlineExpired as exc:
        tally.end = "deadline escaped"
        tally.problems.append(f"a deadline escaped its scope\n{_describe(exc)}")
    except ThreadCancelled as exc:
        tally.end = "cancelled"
        if me not in rnd.cancelled:
            tally.problems.append(f"cancelled, but the driver never cancelled it\n{_describe(exc)}")
    except BaseException as exc:
        tally.end = "failed"
        tally.problems.append(f"worker failed: {exc!r}\n{_describe(exc)}")
    finally:
        if session is not None:
            session.close()
        tally.finally_ran = True


# -- the driver --------------------------------------------------------------------


def _driver(rnd: Round, rng: random.Random, seconds: float) -> list[threading.Thread]:
    """Keep THREADS workers running for ``seconds``, cancelling and waiting at random.

    A worker that ends is replaced at once by a new thread (new index), so
    thread starts and ends -- and the reuse of their idents -- go on all the
    time, and cancels land on threads that are starting, running and ending.
    """
    threads: list[threading.Thread] = []

    def start() -> int:
        i = len(threads)
        rnd.tallies.append(Tally())
        t = threading.Thread(
            target=worker,
            args=(rnd, i, rng.randrange(2**32)),
            name=f"soak-{rnd.number}-{i}",
            daemon=True,
        )
        threads.append(t)
        t.start()
        rnd.threads.append(t)  # started: another worker may join it
        if rng.random() < 0.05:  # before it has done anything
            rnd.cancelled.add(i)
            threadpatch.cancel(t, blocking=False)
        return i

    running: list[int] = []  # indexes of the current THREADS workers

    def canceller(seed: int) -> None:
        """Cancel random workers and wait for some under deadlines, until the round ends."""
        crng = random.Random(seed)
        try:
            cancel_loop(crng)
        except BaseException as exc:
            rnd.driver_problems.append(f"the canceller failed: {_describe(exc)}")

    def cancel_loop(crng: random.Random) -> None:
        while not rnd.stop:
            action = crng.random()
            if action < 0.8:
                for victim in crng.sample(running, crng.randint(1, 6)):
                    rnd.cancelled.add(victim)  # before the cancel: the worker may see it at once
                    threadpatch.cancel(threads[victim], blocking=False)
            elif action < 0.9:
                with threadpatch.ignore_after(crng.choice([0.001, 0.01, 0.05])):
                    threads[crng.choice(running)].join()
            else:  # cancel and wait a little for the end (a shielded wait)
                victim = crng.choice(running)
                rnd.cancelled.add(victim)
                threadpatch.cancel(threads[victim], blocking=True, timeout=0.01)
            time.sleep(crng.choice([0.0002, 0.001, 0.005, 0.02]))

    rnd.phases.append(time.monotonic())
    end = time.monotonic() + seconds  # starting the threads counts too
    for _ in range(THREADS):
        running.append(start())
    driver = threading.Thread(target=canceller, args=(rng.randrange(2**32),), name="soak-driver")
    driver.start()
    rnd.phases.append(time.monotonic())
    try:
        while time.monotonic() < end:
            for slot, i in enumerate(running):
                if not threads[i].is_alive():
                    running[slot] = start()
            time.sleep(0.001)
    finally:
        rnd.stop = True
        driver.join(10)
    rnd.phases.append(time.monotonic())
    with threadpatch.ignore_after(0.3):  # those still stalled are cancelled below
        for t in threads:
            t.join()
    rnd.phases.append(time.monotonic())
    for i, t in enumerate(threads):
        if t.is_alive():
            rnd.cancelled.add(i)
            threadpatch.cancel(t, blocking=False)
    rnd.phases.append(time.monotonic())
    for t in threads:
        t.join(10)
    rnd.phases.append(time.monotonic())
    return threads


def _check_round(rnd: Round, threads: list[threading.Thread]) -> dict[str, int]:
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        raise fail(f"round {rnd.number}: threads still running: {alive[:10]}")
    problems = rnd.driver_problems + [
        f"worker {i} ({t.end}): {p}" for i, t in enumerate(rnd.tallies) for p in t.problems
    ]
    if problems:
        raise fail(
            f"round {rnd.number}: {len(problems)} problems; first:\n" + "\n".join(problems[:5])
        )
    for i, t in enumerate(rnd.tallies):
        if not t.started or not t.finally_ran:
            raise fail(
                f"round {rnd.number}: worker {i} started={t.started} finally={t.finally_ran}"
            )
        if t.begun != t.finals:
            raise fail(f"round {rnd.number}: worker {i} began {t.begun} but finished {t.finals}")

    def drain(q: Any) -> list[int]:
        left = []
        while True:
            try:
                left.append(q.get_nowait())
            except queue.Empty:
                return left

    for label, put_attr, got_attr, q in (
        ("Queue", "put_ok", "got", rnd.q),
        ("SimpleQueue", "sput_ok", "sgot", rnd.sq),
    ):
        put = [x for t in rnd.tallies for x in getattr(t, put_attr)]
        taken = [x for t in rnd.tallies for x in getattr(t, got_attr)] + drain(q)
        counts = collections.Counter(taken)
        twice = [x for x, c in counts.items() if c > 1]
        lost = set(put) - set(counts)
        phantom = set(counts) - set(put)
        if twice or lost or phantom:
            raise fail(
                f"round {rnd.number}: {label} items taken twice {twice[:5]}, "
                f"lost {sorted(lost)[:5]}, taken but never put {sorted(phantom)[:5]}"
            )

    tokens = sorted(drain(rnd.tokens))
    if tokens != list(range(TOKENS)):
        raise fail(f"round {rnd.number}: the borrow pool holds {tokens}, not {list(range(TOKENS))}")
    for key, pool in list(rnd.pool.pools._container.items()):
        if pool.pool is not None and pool.pool.qsize() != pool.pool.maxsize:
            raise fail(
                f"round {rnd.number}: urllib3 pool {key} has {pool.pool.qsize()} "
                f"of its {pool.pool.maxsize} connection slots"
            )
    rnd.pool.clear()
    if rnd.barrier.n_waiting:
        raise fail(f"round {rnd.number}: {rnd.barrier.n_waiting} threads wait at the barrier")

    held = {
        "lock": rnd.lock.statistics(),
        "rlock": rnd.rlock.statistics(),
        "semaphore": rnd.sem.statistics(),
        "condition": rnd.cond.statistics(),
        "event": rnd.event.statistics(),
        "condition lock": rnd.cond._lock.statistics(),  # type: ignore[attr-defined]
    }
    if (
        held["lock"].locked
        or held["rlock"].locked
        or held["semaphore"].value != SEMAPHORE_SLOTS
        or held["condition lock"].locked
        or any(s.waiting for s in held.values())
        or rnd.q.mutex.locked()
    ):
        raise fail(f"round {rnd.number}: a lock is held or has waiters: {held}")

    totals: collections.Counter[str] = collections.Counter()
    for t in rnd.tallies:
        totals.update(t.outcomes)
        totals[f"end:{t.end}"] += 1
    return dict(totals)


def _live_states() -> list[Any]:
    me = _core.current_state()
    return [s for s in _core.all_states() if s is not me and not s.finished]


@pytest.mark.slow
@pytest.mark.timeout(SECONDS * 2 + 90)
def test_soak_under_faults(caplog: pytest.LogCaptureFixture) -> None:
    # urllib3 logs every response cut in its headers: expected here, and noise.
    caplog.set_level(logging.CRITICAL, logger="urllib3")
    print(f"soak: THREADPATCH_SOAK_SEED={SEED} seconds={SECONDS:g} rounds={ROUNDS}")
    rng = random.Random(SEED)
    hub = _core.get_hub()
    blocks: list[int] = []
    report: list[dict[str, int]] = []
    with fault_server() as address:
        threadpatch.patch_all()
        try:
            # Warm up what lives as long as the process (imports, the hub, the
            # caller's wake-up descriptor, requests' lazily built tables).
            with threadpatch.ignore_after(0.001):
                requests.get(f"http://{address[0]}:{address[1]}/?mode=stall", timeout=5)
            gc.collect()
            fds_before = fd_count()
            threads_before = set(threading.enumerate())
            states_before = len(_live_states())
            for number in range(ROUNDS):
                rnd = Round(number, address, rng)
                threads = _driver(rnd, rng, SECONDS / ROUNDS)
                report.append(_check_round(rnd, threads))
                del rnd, threads
                gc.collect()
                dummy = threading._DummyThread  # type: ignore[attr-defined]
                extra = [
                    t
                    for t in threading.enumerate()
                    if t not in threads_before and not isinstance(t, dummy)
                ]
                if extra:
                    raise fail(f"round {number}: threads left: {[t.name for t in extra][:10]}")
                try:  # reaping a thread's state happens as the thread ends, soon after
                    wait_until(lambda: len(_live_states()) <= states_before, 5, "states reaped")
                except AssertionError:
                    left = [s for s in _live_states()][:10]
                    raise fail(f"round {number}: thread states left: {left}") from None
                if hub.pending_timers():
                    raise fail(f"round {number}: {hub.pending_timers()} hub timers left")
                fds = fd_count()
                if fds != fds_before:
                    raise fail(f"round {number}: {fds - fds_before} descriptors left")
                blocks.append(sys.getallocatedblocks())
        finally:
            threadpatch.unpatch_all()
    print("soak outcomes per round:", report)
    print("soak allocated blocks per round:", blocks)
    _check_memory(blocks)


def _check_memory(blocks: list[int]) -> None:
    """Flat: no steady growth after the first round (which fills caches)."""
    later = blocks[1:]
    growth = [b - a for a, b in itertools.pairwise(later)]
    # A leak of anything per thread or per operation grows every round by
    # thousands of blocks; caches and free lists wobble up and down.
    if all(g > 0 for g in growth) and later[-1] - later[0] > 2000 * (len(later) - 1):
        raise fail(f"memory grows every round (allocated blocks per round: {blocks})")
