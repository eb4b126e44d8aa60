"""Make the selectors' waits cancellable, on the stdlib classes themselves.

Class-level, so that ``DefaultSelector`` and the selector classes that
``socketserver``, ``subprocess`` and ``multiprocessing`` bound at import are
covered, and so are selectors made before patching.
"""

from .. import _selectors

TARGET = "selectors"
REPLACEMENTS: dict[str, object] = {}
CLASS_REPLACEMENTS = _selectors.CLASS_PATCHES
