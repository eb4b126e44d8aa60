"""asyncio (off by default): ``to_thread`` and ``run_in_executor(None, ...)`` cancel their thread.

Natively a cancelled task abandons the thread doing its work (it goes on
blocking, and ``asyncio.run()`` waits for it at exit).  With this set,
``asyncio.to_thread`` is :func:`threadpatch.to_thread` for asyncio, and
``loop.run_in_executor`` with the default executor runs the call in the
same cancellable workers (an executor passed in, or set as the loop's
default, is used as before), and ``shutdown_default_executor`` (the end of
``asyncio.run()``) waits for those calls as it waits for its executor's
threads.  Off in ``patch_all()`` unless asked for
(``patch_all(asyncio=True)``, ``python -m threadpatch --asyncio``): it
changes what a cancelled task waits for.  ``from asyncio import to_thread``
bound before patching keeps the original.  See :mod:`threadpatch._bridges`.
"""

import asyncio
import asyncio.base_events

from .. import _bridges

TARGET = "asyncio.threads"
REPLACEMENTS = {"to_thread": _bridges.to_thread_asyncio}
CLASS_REPLACEMENTS = {
    (asyncio, "to_thread"): _bridges.to_thread_asyncio,
    (asyncio.base_events.BaseEventLoop, "run_in_executor"): _bridges.run_in_executor,
    # asyncio.run() waits for those calls at its end, as for its executor's threads
    (
        asyncio.base_events.BaseEventLoop,
        "shutdown_default_executor",
    ): _bridges.shutdown_default_executor,
}
