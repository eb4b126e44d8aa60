"""psycopg_pool: the pool's own waits (for a free connection, its workers) are cancellable.

psycopg_pool binds ``threading.Condition``, ``Event``, ``RLock`` and
``time.sleep`` at import (``from ._acompat import Condition, ...``), so a
pool imported before patching would wait natively for a free connection.
These are the modules' own names; pools made while patched use ours.  The
queries themselves are psycopg's (the ``psycopg`` set).  ``WaitingClient.wait``
gives up on cancellation too, so a cancelled ``getconn()`` loses no connection
(see :func:`threadpatch._psycopg.waiting_client_wait`).
"""

from psycopg_pool import null_pool as _null_pool
from psycopg_pool import pool as _pool
from psycopg_pool import sched as _sched

from .. import _psycopg, _sync, _time

TARGET = "psycopg_pool"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    (_pool, "Condition"): _sync.Condition,
    (_pool, "Event"): _sync.Event,
    (_pool, "Lock"): _sync.patched_rlock,
    (_pool, "sleep"): _time.sleep,
    (_null_pool, "Event"): _sync.Event,
    (_sched, "Event"): _sync.Event,
    (_sched, "Lock"): _sync.patched_rlock,
    (_pool.WaitingClient, "wait"): _psycopg.waiting_client_wait,
}
