"""Replace the C ``queue.SimpleQueue`` (its ``get`` blocks inside C).

``Queue``, ``LifoQueue`` and ``PriorityQueue`` stay the stdlib classes: they
build their locks and conditions from ``threading`` names when each queue is
made, so the threading patch makes them cancellable, and they keep
``mutex``, ``not_empty``, ``queue`` and ``shutdown()``.
"""

from .. import _queue

TARGET = "queue"
REPLACEMENTS = {"SimpleQueue": _queue.SimpleQueue}
