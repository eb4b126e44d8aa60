"""urllib3: a connect cancelled part-way closes the socket it was connecting.

``urllib3.util.connection.create_connection`` closes its socket only on
``OSError``; a cancellation or deadline (or Ctrl-C) in ``connect()`` would leave
it open until garbage collection.  Its callers look the function up on the
module at call time, so replacing the module attribute covers a urllib3 (and
requests) imported before patching.  The I/O itself is covered by the socket
and ssl sets.
"""

from urllib3.util import connection as _connection

from .. import _socket

TARGET = "urllib3.util.connection"
REPLACEMENTS = {
    "create_connection": _socket.closes_sockets_on_error(_connection.create_connection),
}
