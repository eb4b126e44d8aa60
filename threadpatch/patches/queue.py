"""Replace the C ``queue.SimpleQueue`` (its ``get`` blocks inside C).

``Queue``, ``LifoQueue`` and ``PriorityQueue`` stay the stdlib classes: they
build their locks and conditions from ``threading`` names when each queue is
made, so the threading patch makes them cancellable, and they keep
``mutex``, ``not_empty``, ``queue`` and ``shutdown()``.  Their ``__init__``
makes the ``mutex`` native (held for a few statements only), so a put or get
that need not wait works in a cancelled thread even while another thread is
inside the queue; the conditions on it stay cancellable.
"""

from .. import _queue

TARGET = "queue"
REPLACEMENTS = {"SimpleQueue": _queue.SimpleQueue}
CLASS_REPLACEMENTS = {"Queue": {"__init__": _queue.stdlib_queue_init}}
