"""imaplib: a cancelled greeting shuts the socket down, as a failed one does.

``IMAP4.__init__`` calls ``shutdown()`` when ``_connect()`` (reading the
greeting, asking for ``CAPABILITY``) raises an ``Exception``; a cancellation
(a ``BaseException``) would leave the socket open until garbage collection.
``_connect`` is wrapped on the class (``IMAP4_SSL`` and ``IMAP4_stream``
inherit it).  See :mod:`threadpatch._cleanup`.
"""

import imaplib as _imaplib

from .. import _cleanup

TARGET = "imaplib"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_imaplib.IMAP4, "_connect"): _cleanup.cleans_up_on_cancel(
        vars(_imaplib.IMAP4)["_connect"], "shutdown", ignore=(OSError,)
    ),
}
