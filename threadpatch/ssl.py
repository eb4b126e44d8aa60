"""``threadpatch.ssl``: the stdlib ``ssl`` module with cancellable TLS sockets.

Every name of the stdlib module is available here; :class:`SSLContext` (whose
``wrap_socket`` returns a cancellable :class:`SSLSocket`),
``create_default_context`` and ``get_server_certificate`` are replaced.
Exceptions are the stdlib's own.
"""

from __future__ import annotations

import ssl as _std
import types
from ssl import *  # noqa: F403 - mirror the stdlib module
from typing import Any

from ._ssl import SSLContext as SSLContext
from ._ssl import SSLSocket as SSLSocket
from ._ssl import create_default_context as create_default_context  # type: ignore[assignment]
from ._ssl import get_server_certificate as get_server_certificate

__all__ = [
    name
    for name, value in vars(_std).items()
    if not name.startswith("_") and not isinstance(value, types.ModuleType)
]


def __getattr__(name: str) -> Any:
    # Private stdlib names some libraries use (_create_default_https_context, ...).
    return getattr(_std, name)
