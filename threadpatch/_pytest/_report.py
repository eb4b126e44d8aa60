"""What a thread timeout report says about each thread of the test.

A look at the limit (taken in the hub thread, just before the test's thread
is woken) records, for the test's thread and every thread started since its
setup began: its name, what it waits for (the wait reason the core records,
in the words of :mod:`threadpatch._describe`: a lock and its owner, a queue,
a socket and its peer) and its stack, cut to the user's frames: the frames
of pytest, pluggy, xdist, execnet, pytest-timeout and threadpatch, and any
frame that sets ``__tracebackhide__``, are left out.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
import traceback
from typing import TYPE_CHECKING

from .. import _core
from .._diagnostics import snapshot

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["Seen", "look", "thread_outcome", "user_stack"]

#: Frames of the test machinery, not of the test: never shown in a report.
_RUNNER_PACKAGES = ("_pytest", "pytest", "pluggy", "xdist", "execnet", "pytest_timeout", "runpy")
_MAX_FRAMES = 12
NOT_CANCELLABLE = "not in a cancellable wait (a CPU loop, or a call threadpatch does not cover)"


@dataclasses.dataclass(slots=True)
class Seen:
    """One thread of the test, as the look at the limit found it."""

    name: str
    role: str  # "the test", "started by the test", "started by a fixture"
    reason: str | None  # what it waited for, in words (None: not in a threadpatch wait)
    stack: list[str]
    thread: threading.Thread | None = None
    state: _core.ThreadState | None = None
    cancelled: bool = False
    outcome: str = ""  # filled in at the end of the phase


def look(
    me: _core.ThreadState, item_before: set[threading.Thread], phase_before: set[threading.Thread]
) -> list[Seen]:
    """Every thread of the test, where it is and on what (any thread may call).

    Args:
        me: the test's thread.
        item_before: the threads that ran before the test's first watched phase.
        phase_before: those that ran before this phase (the others it started).
    """
    frames = sys._current_frames()
    reasons = {t.ident: t.reason for t in snapshot(stacks=False)}
    hub = _core.get_hub().ident
    name = me.name or "MainThread"
    seen = [
        Seen(
            name, "the test", reasons.get(me.ident), user_stack(frames.get(me.ident or 0)), state=me
        )
    ]
    for thread in threading.enumerate():
        if thread in item_before or thread.ident in (me.ident, hub) or not thread.is_alive():
            continue
        role = "started by a fixture" if thread in phase_before else "started by the test"
        stack = user_stack(frames.get(thread.ident or 0))
        seen.append(Seen(thread.name, role, reasons.get(thread.ident), stack, thread=thread))
    return seen


def thread_outcome(seen: Seen, grace: float) -> str:
    """What became of a thread the test started."""
    if seen.thread is not None:
        alive = seen.thread.is_alive()
    else:
        alive = seen.state is not None and not seen.state.finished
    if not seen.cancelled:
        return "not cancelled (a fixture's thread)" + ("" if alive else ", has ended")
    if not alive:
        return "cancelled at its blocking point"
    return f"still running {grace:g} s after its cancellation: {NOT_CANCELLABLE}"


# -- stacks ------------------------------------------------------------------------


@functools.cache
def _hidden_dirs() -> tuple[str, ...]:
    dirs = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep]
    for name in _RUNNER_PACKAGES:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            base = os.path.abspath(path)
            dirs.append(os.path.dirname(base) + os.sep if base.endswith("__init__.py") else base)
    return tuple(dirs)


def _hidden(frame: FrameType) -> bool:
    code = frame.f_code
    filename = code.co_filename
    if "__tracebackhide__" in code.co_varnames or filename.startswith("<frozen runpy"):
        return True
    if filename == threading.__file__ and code.co_name in ("_bootstrap", "_bootstrap_inner"):
        return True
    return filename.startswith(_hidden_dirs())


def user_stack(frame: FrameType | None) -> list[str]:
    """The frames of ``frame``'s stack that are the user's, formatted, outermost first."""
    chain: list[FrameType] = []
    while frame is not None:
        chain.append(frame)
        frame = frame.f_back
    chain.reverse()
    shown = [f for f in chain if not _hidden(f)] or chain[-3:]
    # The outermost frames are the test's own lines, the innermost where it waits.
    outer, inner = shown, []
    if len(shown) > _MAX_FRAMES:
        outer, inner = shown[:2], shown[2 - _MAX_FRAMES :]
    lines = _format(outer)
    if inner:
        lines.append(f"    ({len(shown) - len(outer) - len(inner)} frames not shown)")
        lines.extend(_format(inner))
    return lines


def _format(frames: list[FrameType]) -> list[str]:
    summary = traceback.StackSummary.extract((f, f.f_lineno) for f in frames)
    return ["  " + line for entry in summary.format() for line in entry.rstrip("\n").split("\n")]
