"""The patch tables: one module per patched standard-library module.

Each ``threadpatch.patches.<flag>`` module is data only:

* ``TARGET``: the name of the module it patches (the standard library's,
  one of urllib3's whose clean-up misses cancellation, trio's run loop,
  whose signal-path lock must stay native, and database drivers that wait
  in C or must cancel a query on the server);
* ``REPLACEMENTS``: ``{attribute: replacement}`` set on the module itself
  (names the module does not have on this Python are skipped);
* ``CLASS_REPLACEMENTS`` (optional): replacements set on classes, so that
  instances made before patching and names bound early (``from socket import
  socket``) are covered too; keys are either a class path inside TARGET
  (value ``{attribute: replacement}``) or an ``(object, attribute)`` pair
  (value: the replacement; the object may be a class or a module other than
  TARGET, e.g. ``psycopg.waiting`` for the ``psycopg`` set).  An attribute
  the class lacks is skipped.
* ``AFTER_APPLY`` (optional): a function of the I/O layer to call once the
  table's attributes are set, for state that is not an attribute (psycopg2's
  wait callback); ``AFTER_RESTORE`` (optional): one to call once the set has
  been restored (hand adopted sockets their timeouts back, put the old wait
  callback back).  A string it returns is issued as a ``ThreadpatchWarning``
  (something it had to leave as it found it).

:data:`TARGETS` lists the patch sets in the order they are applied (and the
reverse of the order they are restored in); the flags of ``patch_all()`` are
its keys.  :data:`OFF_BY_DEFAULT` names the sets that ``patch_all()`` and
``patched()`` leave out unless their flag is given as True (they change a
documented stdlib result, not only make it cancellable).  The target is
known here so that a target imported later can be patched on import without
importing its patch table (and the I/O modules it needs) before then.
"""

TARGETS: dict[str, str] = {
    "time": "time",
    "threading": "threading",
    "queue": "queue",
    "socket": "socket",
    "dns": "socket",
    "select": "select",
    "selectors": "selectors",
    "socketserver": "socketserver",
    "ssl": "ssl",
    "subprocess": "subprocess",
    "os": "os",
    "multiprocessing": "multiprocessing.connection",
    "io": "io",
    "urllib3": "urllib3.util.connection",
    "xmlrpc": "xmlrpc.client",
    "imaplib": "imaplib",
    "thread_pool": "concurrent.futures.thread",
    "futures": "concurrent.futures.thread",
    "asyncio_runner": "asyncio.runners",
    "asyncio": "asyncio.threads",
    "trio": "trio._core._run",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg_pool",
    "psycopg2": "psycopg2",
    "pg8000": "pg8000",
    "pymysql": "pymysql",
}

#: Patch sets that change documented behaviour (what a call returns or waits
#: for): applied only when their flag is given as True.
OFF_BY_DEFAULT: frozenset[str] = frozenset({"asyncio", "futures"})
