"""Loading the optional C accelerator, ``threadpatch._speedups``, in one place.

The accelerator holds the C fast paths of Lock and RLock and the C socket
waits.  It is optional: if it is not built, or the environment variable
``THREADPATCH_PURE_PYTHON`` is set to a true value at import, every module
uses its pure-Python reference code instead (same behaviour, slower).

This module is the first that ``import threadpatch`` runs, so it is also where
an unsupported platform is refused: threadpatch waits on Linux's ``eventfd``
and ``poll``, and says so at import (``ImportError``) rather than failing on
the first wait.  On Linux CPython, where the accelerator can be built, a
missing or broken build is reported once, by an :class:`AcceleratorWarning`.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["IMPLEMENTATION", "AcceleratorWarning", "implementation", "speedups"]

if not sys.platform.startswith("linux"):
    raise ImportError(
        f"threadpatch supports Linux only (it waits on eventfd and poll); this is {sys.platform!r}"
    )


class AcceleratorWarning(RuntimeWarning):
    """The C accelerator could not be loaded where it should have been built.

    threadpatch works without it (same behaviour, pure Python, slower).  Raised
    at most once per process, at ``import threadpatch``; set
    ``THREADPATCH_PURE_PYTHON=1`` to choose the pure-Python code and silence it.
    """

    __module__ = "threadpatch"


_FALSE = ("", "0", "false", "no", "off")


def _load() -> ModuleType | None:
    flag = os.environ.get("THREADPATCH_PURE_PYTHON", "").strip().lower()
    if flag not in _FALSE:
        return None
    try:
        from . import _speedups
    except ImportError as exc:
        if sys.implementation.name == "cpython":
            # Not PyPy & co., where the extension is never built: on CPython the
            # install should have compiled it (a C compiler and the Python headers).
            warnings.warn(
                "threadpatch's C accelerator (threadpatch._speedups) is not available"
                f" ({exc}): Lock, RLock and socket waits run on the pure-Python"
                " implementation, with the same behaviour but slower. Reinstall"
                " threadpatch where a C compiler and the Python headers are present,"
                " or set THREADPATCH_PURE_PYTHON=1 to choose pure Python and silence"
                " this warning.",
                AcceleratorWarning,
                stacklevel=2,
            )
        return None
    return _speedups


#: The C accelerator module, or None (not built, or pure Python asked for).
speedups = _load()
#: ``"c"`` when the accelerator is in use, ``"python"`` otherwise.
IMPLEMENTATION: Literal["c", "python"] = "python" if speedups is None else "c"


def implementation() -> Literal["c", "python"]:
    """Which implementation of the fast paths this process runs.

    Returns:
        ``"c"`` when the C accelerator ``threadpatch._speedups`` is in use;
        ``"python"`` when it is not built or ``THREADPATCH_PURE_PYTHON`` was
        set at import.  Behaviour is the same either way; only speed differs.
    """
    return IMPLEMENTATION
