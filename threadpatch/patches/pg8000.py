"""pg8000: a cancelled query is cancelled on the server (CancelRequest), and the connection closed.

Its I/O is plain sockets (the socket set makes it cancellable); the methods
that send a statement and read its answer are wrapped on the class, so
connections made before patching are covered.  See :mod:`threadpatch._dbcancel`.
"""

from pg8000 import core as _pg8000_core

from .. import _dbcancel

TARGET = "pg8000"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_pg8000_core.CoreConnection, name): _dbcancel.cancels_on_server(
        getattr(_pg8000_core.CoreConnection, name), _dbcancel.pg8000_cancel
    )
    for name in ("execute_simple", "execute_unnamed", "execute_named")
}
