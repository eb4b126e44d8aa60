"""psycopg 3: its waits become cancellation points; a cancelled query is cancelled server-side.

``psycopg.waiting.wait`` (``wait_c`` in C for the binary package) and
``wait_conn`` are looked up on the module at call time by the connection
code, so replacing them covers a psycopg imported before patching;
``Connection.wait`` (on the class, so existing connections are covered)
sends the query's CancelRequest on the way out of a cancelled wait.  See
:mod:`threadpatch._psycopg`.  ``psycopg.connection`` binds ``Lock`` at import
(``from ._acompat import Lock``): connections made while patched get ours, so
a thread waiting for a connection another thread is using is cancellable.
The async API (``AsyncConnection``) waits in asyncio and is not touched.
"""

from psycopg import connection as _connection
from psycopg import waiting as _waiting

from .. import _psycopg, _sync

TARGET = "psycopg"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_waiting, "wait"): _psycopg.wait,
    (_waiting, "wait_conn"): _psycopg.wait_conn,
    (_connection.Connection, "wait"): _psycopg.cancels_on_server(_connection.Connection.wait),
    (_connection, "Lock"): _sync.Lock,
}
