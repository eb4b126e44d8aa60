"""The patch tables: one module per patched standard-library module.

Each ``threadpatch.patches.<flag>`` module is data only:

* ``TARGET``: the name of the module it patches (the standard library's,
  one of urllib3's whose clean-up misses cancellation, and trio's run loop,
  whose signal-path lock must stay native);
* ``REPLACEMENTS``: ``{attribute: replacement}`` set on the module itself
  (names the module does not have on this Python are skipped);
* ``CLASS_REPLACEMENTS`` (optional): replacements set on classes, so that
  instances made before patching and names bound early (``from socket import
  socket``) are covered too; keys are either a class path inside TARGET
  (value ``{attribute: replacement}``) or a ``(class, attribute)`` pair
  (value: the replacement).  An attribute the class lacks is skipped.
* ``AFTER_RESTORE`` (optional): a function of the I/O layer to call once the
  set has been restored (e.g. hand adopted sockets their timeouts back).

:data:`TARGETS` lists the patch sets in the order they are applied (and the
reverse of the order they are restored in); the flags of ``patch_all()`` are
its keys.  The target is known here so that a target imported later can be
patched on import without importing its patch table (and the I/O modules it
needs) before then.
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
    "urllib3": "urllib3.util.connection",
    "thread_pool": "concurrent.futures.thread",
    "asyncio": "asyncio.runners",
    "trio": "trio._core._run",
    "psycopg": "psycopg",
}
