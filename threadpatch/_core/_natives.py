"""The real blocking primitives, captured when threadpatch is first imported.

The hub thread and threadpatch's own internals must keep using native locks,
sleeps and polls even while the patch layer has replaced the public names in
the standard library, so every module of threadpatch takes them from here.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import select
import selectors
import socket
import time

allocate_lock = _thread.allocate_lock
RLock = _thread.RLock
get_ident = _thread.get_ident
start_new_thread = _thread.start_new_thread
local = _thread._local
TIMEOUT_MAX: float = _thread.TIMEOUT_MAX

monotonic = time.monotonic
sleep = time.sleep

poll = select.poll
POLLIN: int = select.POLLIN
POLLOUT: int = select.POLLOUT
POLLERR: int = select.POLLERR
POLLHUP: int = select.POLLHUP
POLLNVAL: int = select.POLLNVAL

DefaultSelector = selectors.DefaultSelector
socketpair = socket.socketpair
eventfd = getattr(os, "eventfd", None)

#: threadpatch's own long-lived descriptors (each thread's wake-up eventfd) are
#: moved to numbers from here up, out of the way of the program's own: a
#: process allocates the lowest free number, and code and tests count on
#: getting the same numbers as without threadpatch (CPython's test_os does).
PRIVATE_FD_BASE = 256


def set_aside(fd: int) -> int:
    """``fd`` moved to the lowest free number >= :data:`PRIVATE_FD_BASE`, close-on-exec.

    Returns the new number, or ``fd`` itself where it cannot move (a
    descriptor limit at or under the base, or none free above it).
    """
    if fd >= PRIVATE_FD_BASE:
        return fd
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, PRIVATE_FD_BASE)
    except OSError:
        return fd
    os.close(fd)
    return moved


# Descriptor I/O (the wake-up eventfd, the C accelerator's pure fallbacks): the
# ``os`` patch set replaces the public names with cancellable ones.
read = os.read
write = os.write
