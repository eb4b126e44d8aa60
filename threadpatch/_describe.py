"""Wait reasons in words: what a thread waits for, described without raising or blocking.

A reason is a tuple ``(kind, subject, ...)`` recorded by ``_core._wait``
(see :mod:`threadpatch._diagnostics`).  Describing reads attributes, calls
lock-free methods (``_owner_count()``, ``locked()``, ``getsockname()``,
``len()`` of a queue's storage rather than ``qsize()``, which takes its
mutex) and ``repr``; any failure falls back to the kind and the subject's
type, and a kind it does not know is said as "kind on repr(subject)".
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "awaited_lock",
    "describe",
    "describe_reason",
    "lock_owner",
    "safe_repr",
    "split_reason",
]

_MAX_REPR = 200
_SOCKET_KINDS = ("recv", "send", "sendall", "accept", "connect")
_FD_KINDS = ("read", "write")  # threadpatch._os: os.read / os.write of a descriptor

_PRIMITIVE_VERBS = {"semaphore": "acquire", "event": "wait", "barrier": "wait", "group": "wait"}


def safe_repr(obj: object, limit: int = _MAX_REPR) -> str:
    """``repr(obj)``, shortened to ``limit`` characters; never raises."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__} object at {id(obj):#x}>"
    return text if len(text) <= limit else text[: limit - 4] + "...>"


def lock_owner(lock: object) -> int | None:
    """The ident of the thread holding ``lock``: 0 if it is free, None if unknown.

    An RLock knows its owner; a plain Lock the thread that acquired it last
    (``_owner``); a native lock nothing.
    """
    try:
        owner_count = getattr(lock, "_owner_count", None)
        if owner_count is not None:
            owner, count = owner_count()
            return int(owner) if count else 0
        owner = getattr(lock, "_owner", None)
        if owner is None:
            return None
        locked = getattr(lock, "locked", None)
        if locked is not None and not locked():
            return 0
        return int(owner)
    except Exception:
        return None


def awaited_lock(kind: str | None, subject: object) -> object:
    """The lock whose holder a ``kind`` wait on ``subject`` depends on (None if none)."""
    if kind == "lock":
        return subject
    if kind == "condition":
        return getattr(subject, "_lock", None)
    return None


def _thread_text(ident: int, names: Mapping[int, str]) -> str:
    name = names.get(ident)
    if name is None:
        thread = threading._active.get(ident)  # type: ignore[attr-defined]
        name = thread.name if thread is not None else None
    return f"{name!r} (ident {ident})" if name is not None else f"thread ident {ident}"


def _lock_text(lock: object, names: Mapping[int, str], waiter: int | None = None) -> str:
    cls = type(lock).__name__
    owner = lock_owner(lock)
    if owner is None:
        held = "holder unknown"
    elif owner == 0:
        held = "free"
    elif owner == waiter:
        held = "held by this thread"
    else:
        held = f"held by {_thread_text(owner, names)}"
    count_of = getattr(lock, "_owner_count", None)
    if owner and count_of is not None:
        with contextlib.suppress(Exception):
            held += f", count {count_of()[1]}"
    return f"<{cls} at {id(lock):#x} {held}>"


def _queue_text(queue: object) -> str:
    size: object = "?"
    with contextlib.suppress(Exception):
        items = getattr(queue, "queue", None)
        # len() of the storage, not qsize(): that takes the queue's mutex.
        size = len(items) if items is not None else queue.qsize()  # type: ignore[attr-defined]
    text = f"<{type(queue).__name__} qsize={size}"
    maxsize = getattr(queue, "maxsize", None)
    if maxsize is not None:
        text += f" maxsize={maxsize}"
    unfinished = getattr(queue, "unfinished_tasks", None)
    if unfinished:
        text += f" unfinished={unfinished}"
    if getattr(queue, "is_shutdown", False):
        text += " shut down"
    return text + ">"


def _address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if address in ("", b""):
        return "unnamed"
    return str(address) if isinstance(address, str) else safe_repr(address)


def _socket_text(sock: object) -> str:
    cls = type(sock).__name__
    try:
        fd = sock.fileno()  # type: ignore[attr-defined]
    except Exception:
        return safe_repr(sock)
    if fd < 0:
        return f"<{cls} closed>"
    text = f"<{cls} fd={fd}"
    with contextlib.suppress(Exception):
        text += f" {_address(sock.getsockname())}"  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        text += f" peer {_address(sock.getpeername())}"  # type: ignore[attr-defined]
    return text + ">"


def _fd_text(fd: int) -> str:
    """What descriptor ``fd`` is now, as `` (pipe)``; empty if it cannot be told."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return " (closed)"
    if stat.S_ISFIFO(mode):
        return " (pipe)"
    if stat.S_ISSOCK(mode):
        return " (socket)"
    if stat.S_ISCHR(mode):
        return " (terminal)" if os.isatty(fd) else " (character device)"
    return ""


def describe(
    kind: object,
    subject: object,
    details: tuple[object, ...],
    names: Mapping[int, str],
    waiter: int | None,
) -> str:
    if not isinstance(kind, str):
        return safe_repr((kind, subject, *details))
    cls = type(subject).__name__
    if kind == "lock":
        return f"{cls}.acquire on {_lock_text(subject, names, waiter)}"
    if kind == "condition":
        lock = getattr(subject, "_lock", None)
        waiting = ""
        with contextlib.suppress(Exception):
            waiting = f", {subject.statistics().waiting} waiting"  # type: ignore[attr-defined]
        over = _lock_text(lock, names, waiter) if lock is not None else "?"
        return f"Condition.wait on <Condition over {over}{waiting}>"
    if kind.startswith("queue."):
        return f"{cls}.{kind[6:]} on {_queue_text(subject)}"
    if kind in _PRIMITIVE_VERBS:
        return f"{cls}.{_PRIMITIVE_VERBS[kind]} on {safe_repr(subject)}"
    if kind == "join":
        name = getattr(subject, "name", None)
        return (
            f"join of thread {name!r}" if isinstance(name, str) else f"join of {safe_repr(subject)}"
        )
    if kind == "sleep":
        return f"sleep({subject!r})"
    if kind == "dns":
        args = ", ".join(safe_repr(d, 80) for d in details[:1])
        return f"DNS {subject}({args})"
    if kind == "cancel" and isinstance(subject, list):
        left = [s.name for s in subject if not getattr(s, "finished", True)]
        return f"the end of {len(left)} cancelled thread(s): {', '.join(map(repr, left))}"
    if kind in _SOCKET_KINDS:
        return f"{kind} on {_socket_text(subject)}"
    if kind in _FD_KINDS and isinstance(subject, int):
        return f"os.{kind} on fd {subject}{_fd_text(subject)}"
    if kind.startswith("tls."):
        return f"TLS {kind[4:]} on {_socket_text(subject)}"
    text = kind if subject is None else f"{kind} on {safe_repr(subject)}"
    return text + "".join(f", {safe_repr(d, 80)}" for d in details)


def describe_reason(reason: object, names: Mapping[int, str] | None = None) -> str:
    """A wait reason ``(kind, subject, ...)`` in words; never raises."""
    kind, subject, details = split_reason(reason)
    try:
        return describe(kind, subject, details, names or {}, None)
    except Exception:
        return f"{kind} on {safe_repr(subject)}"


def split_reason(reason: object) -> tuple[object, object, tuple[object, ...]]:
    if isinstance(reason, tuple) and reason:
        return reason[0], reason[1] if len(reason) > 1 else None, tuple(reason[2:])
    return reason, None, ()
