"""ssl: nothing yet — waiting for ``threadpatch._ssl`` (issue 4).

When it lands, this table becomes::

    from .. import _ssl

    CLASS_REPLACEMENTS = {"SSLContext": {"sslsocket_class": _ssl.SSLSocket}}

one class attribute, which covers contexts made before patching and
``from ssl import SSLContext`` users (urllib3).  Until then stdlib
``SSLSocket`` I/O (TLS reads, writes and handshakes) waits natively: it is
*not* a cancellation point, although plain-socket ``connect`` is.
"""

TARGET = "ssl"
REPLACEMENTS: dict[str, object] = {}
