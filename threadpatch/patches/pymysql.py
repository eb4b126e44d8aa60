"""PyMySQL: a cancelled query is killed on the server (``KILL QUERY`` from a second connection).

Its I/O is plain sockets (the socket set makes it cancellable); PyMySQL closes
a connection whose read raised.  ``Connection.query`` (every ``execute``) is
wrapped on the class, so connections made before patching are covered.  See
:mod:`threadpatch._dbcancel`.
"""

from pymysql import connections as _connections

from .. import _dbcancel

TARGET = "pymysql"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_connections.Connection, "query"): _dbcancel.cancels_on_server(
        _connections.Connection.query, _dbcancel.pymysql_kill
    ),
}
