"""psycopg2: a cancellable wait callback (psycogreen's hook), restored exactly on unpatch.

psycopg2 keeps its wait callback in C, not in an attribute: the set installs
it when applied and puts the previous one back when restored.  See
:mod:`threadpatch._psycopg2` (what it changes: COPY and large objects refuse
to run while a wait callback is set).
"""

from .. import _psycopg2

TARGET = "psycopg2"
REPLACEMENTS: dict[str, object] = {}
AFTER_APPLY = _psycopg2.install_wait_callback
AFTER_RESTORE = _psycopg2.restore_wait_callback
