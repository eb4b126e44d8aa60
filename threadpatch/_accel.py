"""Loading the optional C accelerator, ``threadpatch._speedups``, in one place.

The accelerator holds the C fast paths of Lock and RLock and the C socket
waits.  It is optional: if it is not built, or the environment variable
``THREADPATCH_PURE_PYTHON`` is set to a true value at import, every module
uses its pure-Python reference code instead (same behaviour, slower).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["IMPLEMENTATION", "speedups"]


def _load() -> ModuleType | None:
    flag = os.environ.get("THREADPATCH_PURE_PYTHON", "").strip().lower()
    if flag not in ("", "0", "false", "no", "off"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


#: The C accelerator module, or None (not built, or pure Python asked for).
speedups = _load()
#: ``"c"`` when the accelerator is in use, ``"python"`` otherwise.
IMPLEMENTATION = "python" if speedups is None else "c"
