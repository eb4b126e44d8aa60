"""Threading socket servers whose ``shutdown()`` also cancels the handler threads.

Only classes defined after patching pick these up (``http.server``'s
``ThreadingHTTPServer`` bound the stdlib mixin at its import); their
``serve_forever`` and handler I/O are cancellable through the selectors and
socket patches anyway.
"""

from .. import _socketserver

TARGET = "socketserver"
REPLACEMENTS = {
    "ThreadingMixIn": _socketserver.ThreadingMixIn,
    "ThreadingTCPServer": _socketserver.ThreadingTCPServer,
    "ThreadingUDPServer": _socketserver.ThreadingUDPServer,
    "ThreadingUnixStreamServer": _socketserver.ThreadingUnixStreamServer,
    "ThreadingUnixDatagramServer": _socketserver.ThreadingUnixDatagramServer,
}
