"""ssl: TLS handshakes, reads and writes become cancellation points.

One class attribute, ``SSLContext.sslsocket_class``: every context, also one
made before patching or reached through ``from ssl import SSLContext``
(urllib3), then wraps sockets in threadpatch's ``SSLSocket``.
"""

from .. import _ssl

TARGET = "ssl"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {"SSLContext": {"sslsocket_class": _ssl.SSLSocket}}
