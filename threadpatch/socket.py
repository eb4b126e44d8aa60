"""``threadpatch.socket``: the stdlib ``socket`` module with cancellable blocking calls.

Every name of the stdlib module is available here; the blocking ones are
replaced: :class:`socket` (and ``SocketType``), ``socketpair``, ``fromfd``,
``create_connection``, ``create_server``, ``getfqdn`` and the resolver calls
``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``,
``getnameinfo``.  Exceptions are the stdlib's own (``socket.timeout`` is
``TimeoutError``).
"""

from __future__ import annotations

import socket as _std
from socket import *  # noqa: F403 - mirror the stdlib module
from typing import Any

from ._dns import getaddrinfo as getaddrinfo  # type: ignore[assignment]
from ._dns import gethostbyaddr as gethostbyaddr
from ._dns import gethostbyname as gethostbyname
from ._dns import gethostbyname_ex as gethostbyname_ex
from ._dns import getnameinfo as getnameinfo
from ._socket import SocketType as SocketType  # type: ignore[assignment]
from ._socket import create_connection_from as _create_connection_from
from ._socket import create_server as create_server  # type: ignore[assignment]
from ._socket import fromfd as fromfd  # type: ignore[assignment]
from ._socket import getfqdn as getfqdn
from ._socket import socket as socket
from ._socket import socketpair as socketpair

__all__ = list(_std.__all__)

#: Looks ``socket`` and ``getaddrinfo`` up here at each call, as the stdlib's
#: looks them up in its module (a test may replace them).
create_connection = _create_connection_from(globals())


def __getattr__(name: str) -> Any:
    # Private stdlib names some libraries use (_GLOBAL_DEFAULT_TIMEOUT, ...).
    return getattr(_std, name)
