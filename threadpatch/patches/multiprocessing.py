"""Make ``multiprocessing.connection.Connection`` reads and writes cancellable.

``Connection._recv``/``_send`` take ``os.read``/``os.write`` as default
arguments, bound when the module was imported: a module imported before
patching would keep the stdlib's functions.  On the class, the replacements
pass the patched ones (:mod:`threadpatch._os`), so ``Connection.recv()``,
``Pipe()`` ends and ``multiprocessing.Queue.get()`` (one reader) wait in the
core.  A cancellation while a message is half read leaves the connection
mid-message: like a socket after a timeout, it must not be used again.
"""

from .. import _mpconnection

TARGET = "multiprocessing.connection"
CLASS_REPLACEMENTS = {
    "Connection": {"_recv": _mpconnection.connection_recv, "_send": _mpconnection.connection_send}
}
REPLACEMENTS: dict[str, object] = {}
