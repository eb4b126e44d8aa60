"""The exceptions of threadpatch.

``ThreadCancelled`` derives from ``BaseException`` so that legacy
``except Exception:`` blocks cannot swallow a cancellation; everything else
derives from ``ThreadpatchError`` and from the builtin a caller already catches.
"""

from __future__ import annotations

__all__ = [
    "DeadlineExpired",
    "HubError",
    "ThreadCancelled",
    "ThreadError",
    "ThreadTimeout",
    "ThreadpatchError",
]


class ThreadCancelled(BaseException):
    """Raised at a blocking point of a thread that has been cancelled.

    Cancellation is sticky: every later operation that would block raises it
    again until the thread exits, so clean-up code must not rely on blocking
    (use :func:`threadpatch.shield` for clean-up that has to wait).
    """

    __module__ = "threadpatch"


class DeadlineExpired(ThreadCancelled):
    """Raised inside a ``timeout_after``/``ignore_after`` scope whose deadline passed.

    It is a :class:`ThreadCancelled`, so ``except Exception:`` in the body cannot
    swallow it; the scope that owns the deadline turns it into
    :class:`ThreadTimeout` (or swallows it, for ``ignore_after``) when it exits.

    Attributes:
        scope: the scope whose deadline expired.
    """

    __module__ = "threadpatch"

    def __init__(self, scope: object) -> None:
        super().__init__(f"deadline of {scope!r} expired")
        self.scope = scope


class ThreadpatchError(Exception):
    """Root of threadpatch's ordinary errors."""

    __module__ = "threadpatch"


class HubError(ThreadpatchError, RuntimeError):
    """The hub thread is not running (it died, or the process is shutting down)."""

    __module__ = "threadpatch"


class ThreadError(ThreadpatchError):
    """A thread failed or was cancelled; ``__cause__`` is the original exception."""

    __module__ = "threadpatch"


class ThreadTimeout(ThreadpatchError, TimeoutError):
    """A deadline passed: raised by ``timeout_after`` and by ``join(timeout=...)``."""

    __module__ = "threadpatch"
