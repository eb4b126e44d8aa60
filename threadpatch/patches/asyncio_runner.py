"""asyncio_runner: Ctrl-C cancels the threads of ``asyncio.to_thread`` and ``run_in_executor``.

``asyncio.run()`` answers Ctrl-C by cancelling the main task, and on its way
out ``Runner.close()`` waits for the default executor's threads, which are
still blocked in the calls the cancelled tasks had handed them.  The
replacement cancels those threads first.  See :mod:`threadpatch._asyncio`.
"""

from .. import _asyncio

TARGET = "asyncio.runners"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {"Runner": {"close": _asyncio.runner_close}}
