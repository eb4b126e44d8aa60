"""threadpatch: cancellable real OS threads.

Every blocking operation of a thread (sleep, lock and queue waits, socket I/O,
joins) is a cancellation point: another thread can cancel it, or a deadline can
expire on it, and the blocked thread raises :class:`ThreadCancelled` there, runs
its clean-up and exits.
"""

from ._core import DeadlineExpired as DeadlineExpired
from ._core import DeadlineScope as DeadlineScope
from ._core import HubError as HubError
from ._core import Thread as Thread
from ._core import ThreadCancelled as ThreadCancelled
from ._core import ThreadError as ThreadError
from ._core import ThreadGroup as ThreadGroup
from ._core import ThreadpatchError as ThreadpatchError
from ._core import ThreadTimeout as ThreadTimeout
from ._core import cancel as cancel
from ._core import checkpoint as checkpoint
from ._core import current as current
from ._core import ignore_after as ignore_after
from ._core import run as run
from ._core import shield as shield
from ._core import sleep as sleep
from ._core import spawn as spawn
from ._core import timeout_after as timeout_after
from ._patching import ThreadpatchWarning as ThreadpatchWarning
from ._patching import is_patched as is_patched
from ._patching import original as original
from ._patching import patch_all as patch_all
from ._patching import patched as patched
from ._patching import unpatch_all as unpatch_all

__version__ = "0.1.0"

__all__ = [
    "DeadlineExpired",
    "DeadlineScope",
    "HubError",
    "Thread",
    "ThreadCancelled",
    "ThreadError",
    "ThreadGroup",
    "ThreadTimeout",
    "ThreadpatchError",
    "ThreadpatchWarning",
    "cancel",
    "checkpoint",
    "current",
    "ignore_after",
    "is_patched",
    "original",
    "patch_all",
    "patched",
    "run",
    "shield",
    "sleep",
    "spawn",
    "timeout_after",
    "unpatch_all",
]
