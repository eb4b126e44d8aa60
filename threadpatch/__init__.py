"""threadpatch: cancellable real OS threads.

Every blocking operation of a thread (sleep, lock and queue waits, socket I/O,
joins) is a cancellation point: another thread can cancel it, or a deadline can
expire on it, and the blocked thread raises :class:`ThreadCancelled` there, runs
its clean-up and exits.

Where every thread is stuck, and on what: :func:`snapshot` (a
:class:`ThreadSnapshot` per thread), :func:`dump`, :func:`find_deadlocks`
(cycles of :class:`DeadlockStep`), :func:`dump_on_signal`; and the live view,
``THREADPATCH_MONITOR=/path/to/socket`` with ``python -m threadpatch monitor``.

PYTEST_DONT_REWRITE: pytest marks every module of a distribution that provides
a plugin for assertion rewriting; threadpatch is imported before pytest under
``python -m threadpatch -m pytest`` and ``THREADPATCH_AUTOPATCH=1``, and it has
no test assertions to rewrite, so pytest must not warn that it came too late.
"""

import sys as _sys

# _accel first: it refuses a platform other than Linux (ImportError) before the core loads.
from ._accel import AcceleratorWarning as AcceleratorWarning
from ._accel import implementation as implementation
from ._bridges import from_thread as from_thread
from ._bridges import shutdown_idle_workers as shutdown_idle_workers
from ._bridges import to_thread as to_thread
from ._bridges import to_thread_until as to_thread_until
from ._core import CancelScope as CancelScope
from ._core import DeadlineExpired as DeadlineExpired
from ._core import DeadlineScope as DeadlineScope
from ._core import HubError as HubError
from ._core import ScopeCancelled as ScopeCancelled
from ._core import Thread as Thread
from ._core import ThreadCancelled as ThreadCancelled
from ._core import ThreadError as ThreadError
from ._core import ThreadGroup as ThreadGroup
from ._core import ThreadpatchError as ThreadpatchError
from ._core import ThreadTimeout as ThreadTimeout
from ._core import cancel as cancel
from ._core import checkpoint as checkpoint
from ._core import current as current
from ._core import current_time as current_time
from ._core import ignore_after as ignore_after
from ._core import run as run
from ._core import shield as shield
from ._core import sleep as sleep
from ._core import spawn as spawn
from ._core import timeout_after as timeout_after
from ._diagnostics import DeadlockStep as DeadlockStep
from ._diagnostics import ThreadSnapshot as ThreadSnapshot
from ._diagnostics import dump as dump
from ._diagnostics import dump_on_signal as dump_on_signal
from ._diagnostics import find_deadlocks as find_deadlocks
from ._diagnostics import snapshot as snapshot
from ._monitor import serve_from_environment as _serve_from_environment
from ._patching import PatchFlags as PatchFlags
from ._patching import ThreadpatchWarning as ThreadpatchWarning
from ._patching import is_patched as is_patched
from ._patching import original as original
from ._patching import patch_all as patch_all
from ._patching import patched as patched
from ._patching import unpatch_all as unpatch_all
from ._queue import Empty as Empty
from ._queue import Full as Full
from ._queue import LifoQueue as LifoQueue
from ._queue import PriorityQueue as PriorityQueue
from ._queue import Queue as Queue
from ._queue import SimpleQueue as SimpleQueue
from ._sync import Barrier as Barrier
from ._sync import BoundedSemaphore as BoundedSemaphore
from ._sync import BrokenBarrierError as BrokenBarrierError
from ._sync import Condition as Condition
from ._sync import Event as Event
from ._sync import Lock as Lock
from ._sync import RLock as RLock
from ._sync import Semaphore as Semaphore
from ._version import __version__ as __version__

__all__ = [
    "AcceleratorWarning",
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "CancelScope",
    "Condition",
    "DeadlineExpired",
    "DeadlineScope",
    "DeadlockStep",
    "Empty",
    "Event",
    "Full",
    "HubError",
    "LifoQueue",
    "Lock",
    "PatchFlags",
    "PriorityQueue",
    "Queue",
    "RLock",
    "ScopeCancelled",
    "Semaphore",
    "SimpleQueue",
    "Thread",
    "ThreadCancelled",
    "ThreadError",
    "ThreadGroup",
    "ThreadSnapshot",
    "ThreadTimeout",
    "ThreadpatchError",
    "ThreadpatchWarning",
    "cancel",
    "checkpoint",
    "current",
    "current_time",
    "dump",
    "dump_on_signal",
    "find_deadlocks",
    "from_thread",
    "ignore_after",
    "implementation",
    "is_patched",
    "original",
    "patch_all",
    "patched",
    "run",
    "shield",
    "shutdown_idle_workers",
    "sleep",
    "snapshot",
    "spawn",
    "timeout_after",
    "to_thread",
    "to_thread_until",
    "unpatch_all",
]

if _sys.version_info >= (3, 13):
    from ._queue import ShutDown as ShutDown

    __all__ += ["ShutDown"]

# The live view serves only when asked: THREADPATCH_MONITOR=/path/to/socket.
_serve_from_environment()
