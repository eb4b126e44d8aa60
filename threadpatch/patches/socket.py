"""Make ``socket.socket``'s blocking methods cancellation points, on the class.

Class-level, so sockets made before patching, ``from socket import socket``
users and ``ssl.SSLSocket`` (a subclass) are covered.  The timeout methods go
with them: a plain socket is *adopted* (non-blocking descriptor, timeout kept
aside) on its first blocking call, and given its timeout back on unpatching.
"""

from .. import _socket

TARGET = "socket"
REPLACEMENTS = {
    "create_connection": _socket.create_connection,
    "socketpair": _socket.socketpair,
    "fromfd": _socket.fromfd,
}
CLASS_REPLACEMENTS = {"socket": {**_socket.BLOCKING_METHODS, **_socket.TIMEOUT_METHODS}}
AFTER_RESTORE = _socket.release_adopted
