"""concurrent.futures: a cancelled pool worker leaves the pool usable.

``ThreadPoolExecutor`` looks ``_worker`` up on the module each time it starts
a thread, so pools made before patching get the new loop for the workers
they start afterwards.  See :mod:`threadpatch._futures`.
"""

from .. import _futures

TARGET = "concurrent.futures.thread"
REPLACEMENTS = {"_worker": _futures.worker}
