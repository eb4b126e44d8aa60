"""``asyncio.Runner.close`` that does not wait for blocked executor threads after Ctrl-C.

On Ctrl-C, ``asyncio.run()`` cancels its main task; tasks awaiting
``asyncio.to_thread()`` or ``loop.run_in_executor(None, ...)`` are cancelled,
but the threads doing the work go on.  ``Runner.close()`` (the ``finally`` of
``asyncio.run``) then waits in ``loop.shutdown_default_executor()`` for those
threads: with a blocked call, forever on 3.11 and for five minutes on 3.12+.

:func:`runner_close` runs while the ``KeyboardInterrupt`` (or the main task's
cancellation by the runner's SIGINT handler) is on its way out, cancels the
threads of the loop's default executor at their blocking calls, and then
closes as the standard method does.  A close without Ctrl-C is untouched.
"""

from __future__ import annotations

import asyncio.runners
import sys

from . import _core

__all__ = ["runner_close"]

_original_close = asyncio.runners.Runner.close


def runner_close(self: asyncio.runners.Runner) -> None:
    """``asyncio.Runner.close``; after Ctrl-C, first cancel the default executor's threads."""
    interrupted = getattr(self, "_interrupt_count", 0) > 0 or isinstance(
        sys.exc_info()[1], KeyboardInterrupt
    )
    loop = getattr(self, "_loop", None)
    executor = getattr(loop, "_default_executor", None)
    if interrupted and executor is not None:
        for thread in list(getattr(executor, "_threads", ())):
            if thread.is_alive():
                _core.cancel(thread, blocking=False)
    _original_close(self)
