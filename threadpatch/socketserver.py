"""Drop-in for :mod:`socketserver` whose threading servers cancel their handlers.

``ThreadingMixIn`` and the ``Threading*Server`` classes are threadpatch's (see
:mod:`threadpatch._socketserver`); every other name is the stdlib's own object.
"""

from __future__ import annotations

import socketserver as _std

from ._socketserver import ThreadingMixIn as ThreadingMixIn
from ._socketserver import ThreadingTCPServer as ThreadingTCPServer
from ._socketserver import ThreadingUDPServer as ThreadingUDPServer
from ._socketserver import ThreadingUnixDatagramServer as ThreadingUnixDatagramServer
from ._socketserver import ThreadingUnixStreamServer as ThreadingUnixStreamServer

_OURS = {
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
}
_STDLIB = [name for name in _std.__all__ if name not in _OURS]
globals().update({name: getattr(_std, name) for name in _STDLIB})

__all__ = sorted([*_OURS, *_STDLIB])
