"""The real blocking primitives, captured when threadpatch is first imported.

The hub thread and threadpatch's own internals must keep using native locks,
sleeps and polls even while the patch layer has replaced the public names in
the standard library, so every module of threadpatch takes them from here.
"""

from __future__ import annotations

import _thread
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
# Descriptor I/O (the wake-up eventfd, the C accelerator's pure fallbacks): the
# ``os`` patch set replaces the public names with cancellable ones.
read = os.read
write = os.write
