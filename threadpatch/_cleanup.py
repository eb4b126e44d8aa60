"""Clients that clean up on ``except Exception`` only: the same clean-up on a cancellation.

``ThreadCancelled`` is a ``BaseException`` so that legacy ``except Exception``
cannot swallow it; the price is that such a handler's clean-up does not run
either.  ``xmlrpc.client.Transport.single_request`` is the case in the
standard library::

    try:
        http_conn = self.send_request(...)
        resp = http_conn.getresponse()
        ...
    except Exception:
        # All unexpected errors leave connection in a strange state, so we clear it.
        self.close()
        raise

A cancelled call (or an expired deadline) escapes with the connection still
waiting for the interrupted answer, and every later call on that proxy raises
``http.client.CannotSendRequest``.  :func:`cleans_up_on_cancel` wraps such a
method: when a ``ThreadCancelled`` leaves it, the method's own clean-up runs
(as it would for a ``socket.timeout``), then the cancellation goes on.  Other
``BaseException``\\s (``KeyboardInterrupt``) are left as the library leaves
them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

__all__ = ["cleans_up_on_cancel", "close_method"]


def close_method(obj: Any) -> None:
    """The clean-up most clients need: ``obj.close()`` (looked up on the instance)."""
    obj.close()


def cleans_up_on_cancel(
    method: Callable[..., T], cleanup: Callable[[Any], object] = close_method
) -> Callable[..., T]:
    """Wrap ``method`` so that a cancellation escaping it runs ``cleanup(self)`` first.

    Args:
        method: a method whose own error handling cleans up on ``Exception``
            only.
        cleanup: what that handler does, called with the instance; it must
            not block (it runs with the cancellation pending).

    Returns:
        The wrapper, to set on the class in place of ``method``.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except _core.ThreadCancelled:
            cleanup(self)
            raise

    return wrapper
