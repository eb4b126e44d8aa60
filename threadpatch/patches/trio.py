"""trio: the run loop's own RLock stays native, so ``trio.run`` works while patched.

``trio.run`` (and guest mode) build a run's machinery in ``setup_runner``; its
entry queue takes an RLock in trio's SIGINT handler (``run_sync_soon``), and
trio asserts that the lock is ``_thread``'s, the only RLock that is safe to
re-enter from a signal handler (see "Signal handlers" in ``_sync``).  Both
callers look ``setup_runner`` up on the module at call time.  What the run
does afterwards (``to_thread`` workers, their sleeps, locks and sockets) is
patched as usual.
"""

from trio._core import _run

from .. import _sync

TARGET = "trio._core._run"
REPLACEMENTS = {"setup_runner": _sync.makes_signal_safe_locks(_run.setup_runner)}
