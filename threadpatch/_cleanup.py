"""Clients that clean up on ``except Exception`` only: the same clean-up on a cancellation.

``ThreadCancelled`` is a ``BaseException`` so that legacy ``except Exception``
cannot swallow it; the price is that such a handler's clean-up does not run
either.  Two cases in the standard library:

* ``xmlrpc.client.Transport.single_request``::

      try:
          http_conn = self.send_request(...)
          resp = http_conn.getresponse()
          ...
      except Exception:
          # All unexpected errors leave connection in a strange state, so we clear it.
          self.close()
          raise

  A cancelled call escapes with the connection still waiting for the
  interrupted answer: every later call on that proxy raises
  ``http.client.CannotSendRequest``.
* ``imaplib.IMAP4.__init__`` shuts its socket down when ``_connect()`` (the
  greeting, ``CAPABILITY``) raises an ``Exception``; a cancelled greeting
  leaves the socket of an object nobody got to the garbage collector.

:func:`cleans_up_on_cancel` wraps such a method: when a ``ThreadCancelled``
(or an expired deadline) leaves it, the handler's clean-up runs, as it would
for a ``socket.timeout``, and the cancellation goes on.  Other
``BaseException``\\s (``KeyboardInterrupt``) are left as the library leaves
them.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

__all__ = ["cleans_up_on_cancel"]


def cleans_up_on_cancel(
    method: Callable[..., T], cleanup: str = "close", ignore: tuple[type[Exception], ...] = ()
) -> Callable[..., T]:
    """Wrap ``method`` so that a cancellation escaping it calls ``self.<cleanup>()`` first.

    Args:
        method: a method whose own error handling cleans up on ``Exception``
            only.
        cleanup: the name of the method that handler calls (looked up on the
            instance, so a subclass's override runs); it must not block (it
            runs with the cancellation pending).
        ignore: errors of the clean-up the handler ignores (``OSError`` for
            imaplib's ``shutdown()``); any other escapes, chained to the
            cancellation.

    Returns:
        The wrapper, to set on the class in place of ``method``.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except _core.ThreadCancelled:
            with contextlib.suppress(*ignore):
                getattr(self, cleanup)()
            raise

    return wrapper
