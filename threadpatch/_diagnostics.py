"""Where is every thread stuck, and on what: snapshot, dump, deadlocks, dump on a signal.

Every wait in threadpatch goes through ``_core._wait``, which records on the
waiting thread's state what it waits for (a reason ``(kind, subject, ...)``),
since when and until when.  This module reads those records; nothing here
runs while a thread waits or takes a lock, so the fast paths pay nothing.
All the work (describing the objects, finding lock owners, formatting
stacks) is done by whoever takes the snapshot.

How it works::

    a waiting thread (_core._wait)         snapshot(), from any thread
    ------------------------------         ---------------------------
    blocked_on    = ("lock", lock)   --->  all_states(): every known thread
    blocked_since = monotonic()            kind, subject -> readable text
    blocked_until = deadline               owner of the awaited lock
    ... parked ...                         sys._current_frames() -> stack
    blocked_on    = None (on every exit)   find_deadlocks(): cycles of
                                           "waits for a lock held by"

The objects waited on are put in words by ``_describe``.
"""

from __future__ import annotations

import _thread
import contextlib
import dataclasses
import math
import os
import signal
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, NamedTuple, TextIO

from . import _core
from ._describe import awaited_lock, describe, lock_owner, safe_repr, split_reason

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import FrameType

__all__ = [
    "DeadlockStep",
    "ThreadSnapshot",
    "dump",
    "dump_on_signal",
    "find_deadlocks",
    "format_dump",
    "snapshot",
]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_THREADING = threading.__file__
#: Reason kinds whose subject is (or has) a lock another thread may hold.
_LOCK_KINDS = ("lock", "condition")


@dataclasses.dataclass(frozen=True, slots=True)
class ThreadSnapshot:
    """One thread threadpatch knows (spawned or adopted), at one moment.

    Attributes:
        name: the thread's name.
        ident: ``threading.get_ident()`` of the thread (None while starting).
        native_id: the kernel's thread id (None while starting).
        state: ``"starting"`` (spawned, not running yet), ``"cancelled"`` (a
            cancel was requested and the thread still runs: it is cleaning
            up, shielded, or stuck where threadpatch cannot reach),
            ``"blocked"`` (waiting in a threadpatch wait) or ``"running"``
            (anything else: computing, or in a call threadpatch does not cover).
        kind: what kind of wait (``"lock"``, ``"queue.get"``, ``"recv"``,
            ``"sleep"``...), None when not waiting.
        subject: the object waited on (a lock, a queue, a socket, a thread,
            the seconds of a sleep), None when not waiting.
        details: the rest of the reason (the host of a DNS lookup).
        reason: the wait described for people, e.g. ``"Queue.get on <Queue
            qsize=0 maxsize=10>"``; None when not waiting.
        blocked_since: ``time.monotonic()`` when the wait began.
        blocked_for: seconds the thread has waited so far.
        wait_deadline_left: seconds until the wait's own timeout (negative
            once passed); None for a wait without one.
        scope_deadline_left: seconds until the earliest deadline of the
            ``timeout_after``/``ignore_after`` scopes around the thread that a
            shield does not suspend; None if there is none.
        owner: for a lock or condition wait, the ident of the thread holding
            that lock (0: free; None: not known, e.g. a native lock).
        cancel_requested: a cancel was requested.
        shielded: the thread is inside a ``shield()``.
        stack: the thread's stack, outermost first, one formatted frame per
            item.  Left out: threadpatch's own frames at the top (the wait
            machinery) and the thread start-up frames of ``threading`` and
            threadpatch at the bottom.
        hidden_frames: how many frames were left out.
    """

    name: str
    ident: int | None
    native_id: int | None
    state: str
    kind: str | None = None
    subject: object = None
    details: tuple[object, ...] = ()
    reason: str | None = None
    blocked_since: float | None = None
    blocked_for: float | None = None
    wait_deadline_left: float | None = None
    scope_deadline_left: float | None = None
    owner: int | None = None
    cancel_requested: bool = False
    shielded: bool = False
    stack: tuple[str, ...] = ()
    hidden_frames: int = 0

    @property
    def deadline_left(self) -> float | None:
        """Seconds until the first of the wait's and the scopes' deadlines (None: none)."""
        left = [d for d in (self.wait_deadline_left, self.scope_deadline_left) if d is not None]
        return min(left) if left else None

    def header(self) -> str:
        """One line: name, ids, state, what it waits for and the deadlines."""
        text = f"Thread {self.name!r} (ident {self.ident}, native {self.native_id}): {self.state}"
        if self.shielded and self.cancel_requested:
            text += " (shielded)"
        if self.reason is not None:
            if self.state != "blocked":
                text += ", blocked"
            text += f" {_seconds(self.blocked_for or 0.0)} in {self.reason}"
        if self.wait_deadline_left is not None:
            text += f", {_deadline_text('deadline', self.wait_deadline_left)}"
        if self.scope_deadline_left is not None:
            text += f", {_deadline_text('scope deadline', self.scope_deadline_left)}"
        return text

    def format(self) -> str:
        """The header, then the stack (innermost last)."""
        lines = [self.header(), *(frame.rstrip("\n") for frame in self.stack)]
        if self.hidden_frames:
            lines.append(f"  ({self.hidden_frames} frames of threadpatch and threading not shown)")
        return "\n".join(lines)

    def to_dict(self, stack: bool = True) -> dict[str, object]:
        """The snapshot as JSON-ready values (the subject as its description)."""
        data: dict[str, object] = {
            "name": self.name,
            "ident": self.ident,
            "native_id": self.native_id,
            "state": self.state,
            "kind": self.kind,
            "subject": None if self.kind is None else safe_repr(self.subject),
            "reason": self.reason,
            "blocked_for": self.blocked_for,
            "wait_deadline_left": self.wait_deadline_left,
            "scope_deadline_left": self.scope_deadline_left,
            "owner": self.owner,
            "cancel_requested": self.cancel_requested,
            "shielded": self.shielded,
            "header": self.header(),
        }
        if stack:
            data["stack"] = list(self.stack)
        return data


ThreadSnapshot.__module__ = "threadpatch"


class DeadlockStep(NamedTuple):
    """One step of a deadlock cycle: ``thread`` waits for ``lock``.

    ``lock`` is held by the thread of the next step (the last step's by the
    first's).  For a ``Condition.wait`` it is the condition's lock: only a
    thread holding it can notify, and the one that does is blocked.
    """

    thread: ThreadSnapshot
    lock: object


DeadlockStep.__module__ = "threadpatch"


# -- formatting --------------------------------------------------------------------


def _seconds(value: float) -> str:
    return "inf s" if value == math.inf else f"{value:.1f} s"


def _deadline_text(what: str, left: float) -> str:
    return f"{what} in {_seconds(left)}" if left >= 0 else f"{what} passed {_seconds(-left)} ago"


# -- snapshots ---------------------------------------------------------------------


def _stack(frame: FrameType | None) -> tuple[tuple[str, ...], int]:
    """The formatted frames of ``frame``'s stack and how many of ours were left out.

    Left out: threadpatch's frames at the top (the wait machinery; the reason
    says what it waits for) and the thread start-up of threading and
    threadpatch at the bottom, unless nothing else would be left.
    """
    if frame is None:
        return (), 0
    frames = traceback.extract_stack(frame)  # outermost first
    end = len(frames)
    while end and frames[end - 1].filename.startswith(_PACKAGE):
        end -= 1
    start = 0
    while start < end and (
        frames[start].filename.startswith(_PACKAGE) or frames[start].filename == _THREADING
    ):
        start += 1
    if start == end:  # nothing but threadpatch (spawn(threadpatch.sleep, 9)): show it all
        start, end = 0, len(frames)
    shown = traceback.StackSummary.from_list(frames[start:end]).format()
    return tuple(shown), len(frames) - (end - start)


def _scope_deadline(scopes: Sequence[object]) -> tuple[float, bool]:
    """The earliest deadline a shield does not suspend, and whether a shield is active.

    A shield suspends the scopes outside it; its own deadline (a
    ``CancelScope(deadline, shield=True)``) still applies inside it.
    """
    deadline = math.inf
    for scope in reversed(scopes):
        deadline = min(deadline, getattr(scope, "deadline", math.inf))
        if getattr(scope, "shield", False):
            return deadline, True
    return deadline, False


def _take(
    state: _core.ThreadState,
    frames: Mapping[int, FrameType],
    names: Mapping[int, str],
    now: float,
    stacks: bool,
) -> ThreadSnapshot:
    # The waiting thread writes blocked_on first: read it last, and once.
    until = state.blocked_until
    since = state.blocked_since
    reason = state.blocked_on
    ident = state.ident
    scope_deadline, shielded = _scope_deadline(list(state.scopes))
    stack, hidden = _stack(frames.get(ident)) if stacks and ident is not None else ((), 0)
    if ident is None:
        status = "starting"
    elif state.cancel_requested:
        status = "cancelled"
    elif reason is not None:
        status = "blocked"
    else:
        status = "running"
    kind: object = None
    subject: object = None
    details: tuple[object, ...] = ()
    text = owner = None
    if reason is not None:
        kind, subject, details = split_reason(reason)
        try:
            text = describe(kind, subject, details, names, ident)
        except Exception:
            text = f"{kind} on {safe_repr(subject)}"
        if not isinstance(kind, str):
            kind = safe_repr(kind)
        lock = awaited_lock(kind, subject)
        owner = None if lock is None else lock_owner(lock)
    blocked = reason is not None
    return ThreadSnapshot(
        name=state.name or "",
        ident=ident,
        native_id=state.native_id,
        state=status,
        kind=kind if isinstance(kind, str) else None,
        subject=subject,
        details=details,
        reason=text,
        blocked_since=since if blocked else None,
        blocked_for=max(0.0, now - since) if blocked else None,
        wait_deadline_left=None if not blocked or until == math.inf else until - now,
        scope_deadline_left=None if scope_deadline == math.inf else scope_deadline - now,
        owner=owner,
        cancel_requested=state.cancel_requested,
        shielded=shielded,
        stack=stack,
        hidden_frames=hidden,
    )


def snapshot(stacks: bool = True) -> list[ThreadSnapshot]:
    """A record of every thread threadpatch knows (spawned and adopted), now.

    Args:
        stacks: also capture each thread's stack (the costly part).

    Returns:
        One :class:`ThreadSnapshot` per thread; the hub thread is not among them.
    """
    states = [s for s in _core.all_states() if not s.finished]
    names = {s.ident: s.name or "" for s in states if s.ident is not None}
    frames = sys._current_frames() if stacks else {}
    now = time.monotonic()
    return [_take(s, frames, names, now, stacks) for s in states]


# -- deadlocks ---------------------------------------------------------------------


def _cycles(threads: Sequence[ThreadSnapshot]) -> list[list[DeadlockStep]]:
    by_ident = {t.ident: t for t in threads if t.ident is not None}

    def holder(t: ThreadSnapshot) -> ThreadSnapshot | None:
        # A plain Lock is "held" by the thread that acquired it last, and a
        # threading.Condition waits by acquiring its own waiter lock twice:
        # a thread waiting for a lock it acquired itself is no cycle.
        if t.kind not in _LOCK_KINDS or not t.owner or t.owner == t.ident:
            return None
        return by_ident.get(t.owner)

    found: list[list[DeadlockStep]] = []
    seen: dict[int | None, int] = {}
    for start, first in enumerate(threads):
        path: list[ThreadSnapshot] = []
        current: ThreadSnapshot | None = first
        while current is not None and current.ident not in seen:
            seen[current.ident] = start
            path.append(current)
            current = holder(current)
        if current is not None and seen[current.ident] == start:
            cycle = path[path.index(current) :]
            found.append([DeadlockStep(t, awaited_lock(t.kind, t.subject)) for t in cycle])
    return found


def _key(cycle: list[DeadlockStep]) -> frozenset[tuple[int | None, float | None]]:
    return frozenset((step.thread.ident, step.thread.blocked_since) for step in cycle)


def find_deadlocks(threads: Iterable[ThreadSnapshot] | None = None) -> list[list[DeadlockStep]]:
    """The cycles of the lock wait-for graph: threads that wait for each other forever.

    Thread T waits for U when T waits for a Lock or RLock that U holds, or
    waits in a ``Condition.wait`` whose lock U holds (U is then the only
    thread that could notify it, and U is blocked).  Locks held across a
    condition wait and the re-acquisition after a notify count.  Each cycle
    is confirmed by a second look at the threads, so a thread that was just
    passing through is not reported.

    Args:
        threads: a :func:`snapshot` to search (default: take one).

    Returns:
        One list of :class:`DeadlockStep` per cycle, in wait-for order.
    """
    threads = list(threads) if threads is not None else snapshot()
    cycles = _cycles(threads)
    if not cycles:
        return []
    again = {_key(c) for c in _cycles(snapshot(stacks=False))}
    return [c for c in cycles if _key(c) in again]


def _format_cycle(cycle: list[DeadlockStep]) -> str:
    lines = [f"Deadlock: {len(cycle)} threads wait for each other:"]
    for i, step in enumerate(cycle):
        holder = cycle[(i + 1) % len(cycle)].thread
        lock = step.lock
        what = f"{type(lock).__name__} at {id(lock):#x}"
        via = " (to notify its Condition)" if step.thread.kind == "condition" else ""
        lines.append(
            f"  {step.thread.name!r} (ident {step.thread.ident}) waits for {what}{via}, "
            f"held by {holder.name!r} (ident {holder.ident})"
        )
    return "\n".join(lines)


def format_dump(
    threads: Sequence[ThreadSnapshot], deadlocks: Sequence[list[DeadlockStep]] = ()
) -> str:
    """The text :func:`dump` prints."""
    parts = [f"threadpatch: {len(threads)} thread(s) in process {os.getpid()}"]
    parts += [t.format() for t in threads]
    parts += [_format_cycle(c) for c in deadlocks]
    return "\n\n".join(parts) + "\n"


def dump(file: TextIO | None = None) -> None:
    """Print every thread's :func:`snapshot` and the deadlocks, for people.

    One header line per thread (``Thread 'worker-3' (ident 1234, native
    5678): blocked 2.3 s in Queue.get on <Queue qsize=0 maxsize=10>,
    deadline in 0.7 s``), then its stack, innermost frame last; then each
    cycle :func:`find_deadlocks` finds.

    Args:
        file: where to write (default ``sys.stderr``).
    """
    threads = snapshot()
    text = format_dump(threads, find_deadlocks(threads))
    out = sys.stderr if file is None else file
    out.write(text)
    out.flush()


# -- on a signal -------------------------------------------------------------------


def _write_dump(fd: int) -> None:
    try:
        threads = snapshot()
        data = format_dump(threads, find_deadlocks(threads)).encode("utf-8", "replace")
    except BaseException as exc:  # a native thread: nobody above to report to
        data = f"threadpatch: dump failed: {exc!r}\n".encode()
    with contextlib.suppress(OSError):
        while data:
            data = data[_core._natives.write(fd, data) :]


def dump_on_signal(
    signum: int = signal.SIGUSR1, file: TextIO | None = None
) -> Callable[[int, FrameType | None], object] | int | signal.Handlers | None:
    """Print a :func:`dump` whenever the process receives ``signum`` (opt-in).

    ``kill -USR1 <pid>`` then shows where every thread is stuck, like
    ``faulthandler.register`` but with what each one waits for.  The handler
    only starts a native thread that takes the snapshot and writes it to
    ``file``'s descriptor with ``os.write``: the interrupted main thread may
    hold a lock the dump needs (the registry's, the file's buffer), and it
    releases it as soon as the handler returns.  Python runs signal handlers
    in the main thread between bytecodes: a main thread blocked in a
    threadpatch wait runs it within 50 ms; one stuck in a C call does not (add
    ``faulthandler.register(signum, chain=True)`` for that case).

    Must be called from the main thread (as ``signal.signal``).

    Args:
        signum: the signal (default ``SIGUSR1``).
        file: where the dumps go (default ``sys.stderr``); it must have a
            file descriptor, which is captured now.

    Returns:
        The previous handler: ``signal.signal(signum, previous)`` undoes it.

    Raises:
        ValueError: not in the main thread, or ``file`` has no descriptor.
    """
    fd = (sys.stderr if file is None else file).fileno()

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # no thread to be had: no dump
            _thread.start_new_thread(_write_dump, (fd,))

    return signal.signal(signum, handler)
