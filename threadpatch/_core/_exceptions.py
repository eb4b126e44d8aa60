"""The exceptions of threadpatch.

``ThreadCancelled`` derives from ``BaseException`` so that legacy
``except Exception:`` blocks cannot swallow a cancellation; everything else
derives from ``ThreadpatchError`` and from the builtin a caller already catches.
"""

from __future__ import annotations

__all__ = [
    "DeadlineExpired",
    "HubError",
    "ScopeCancelled",
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


class ScopeCancelled(ThreadCancelled):
    """Raised inside a :class:`~threadpatch.CancelScope` that was cancelled.

    By the scope's ``cancel()`` or its deadline.  It is a
    :class:`ThreadCancelled`, so ``except Exception:`` in the body cannot
    swallow it, and sticky until the scope exits; the scope it belongs to
    catches it when it exits (an outer scope's passes through inner ones).

    Attributes:
        scope: the scope that was cancelled.
    """

    __module__ = "threadpatch"

    def __init__(self, scope: object, message: str | None = None) -> None:
        super().__init__(message or f"{scope!r} was cancelled")
        self.scope = scope


class DeadlineExpired(ScopeCancelled):
    """Raised inside a ``timeout_after``/``ignore_after`` scope whose deadline passed.

    It is a :class:`ScopeCancelled` (so a :class:`ThreadCancelled`):
    ``except Exception:`` in the body cannot swallow it; the scope that owns
    the deadline turns it into :class:`ThreadTimeout` (or swallows it, for
    ``ignore_after``) when it exits.

    Attributes:
        scope: the scope whose deadline expired.
    """

    __module__ = "threadpatch"

    def __init__(self, scope: object) -> None:
        super().__init__(scope, f"deadline of {scope!r} expired")


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
