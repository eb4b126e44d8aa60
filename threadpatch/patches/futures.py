"""concurrent.futures: ``Future.cancel()`` stops running work of a ``ThreadPoolExecutor``.

Off by default (``patch_all(futures=True)`` or ``python -m threadpatch
--futures`` turn it on): it changes what ``Future.cancel()`` returns for a
running future.  ``submit`` makes futures whose ``cancel()`` cancels the
item's scope; ``shutdown(cancel_futures=True)`` cancels running items too.
Set on the class, so executors made before patching are covered for the work
they take afterwards.  See :mod:`threadpatch._futures`.
"""

from .. import _futures

TARGET = "concurrent.futures.thread"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = {
    "ThreadPoolExecutor": {"submit": _futures.submit, "shutdown": _futures.shutdown},
}
