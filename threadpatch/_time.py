"""``time.sleep`` with the exact standard-library contract, as a cancellation point.

:func:`threadpatch.sleep` validates its argument its own way (``ValueError``
for NaN and negatives, ``TypeError`` for non-numbers, ``inf`` sleeps forever).
Code that calls ``time.sleep`` expects the builtin's behaviour instead: an
``OverflowError`` for ``inf`` or huge values, ``TypeError`` for ``Decimal``,
the builtin's messages.  :func:`sleep` keeps that contract by handing every
value the builtin would reject to the builtin itself, which raises at once
without sleeping; every value it accepts sleeps in :func:`threadpatch.sleep`.
"""

from __future__ import annotations

import operator
from typing import SupportsFloat, SupportsIndex

from . import _core
from ._core import _natives

__all__ = ["sleep"]

_native_sleep = _natives.sleep
_core_sleep = _core.sleep
# The builtin converts to nanoseconds in a signed 64-bit integer; longer
# sleeps raise OverflowError there.
_MAX_SECONDS = (2**63 - 1) / 1e9


def sleep(secs: SupportsFloat | SupportsIndex, /) -> None:
    """Suspend the calling thread for ``secs`` seconds (a cancellation point).

    Args:
        secs: a non-negative ``float`` or integer (anything with ``__index__``).

    Raises:
        ValueError: ``secs`` is negative or NaN (as ``time.sleep``).
        OverflowError: ``secs`` is infinite or too large (as ``time.sleep``).
        TypeError: ``secs`` is not a float or an integer (as ``time.sleep``).

    Cancellation:
        The sleep ends at once with ``ThreadCancelled`` (or ``DeadlineExpired``).
    """
    if type(secs) is float or type(secs) is int:
        seconds: float = secs
    elif isinstance(secs, float):
        seconds = float(secs)
    else:
        try:
            seconds = operator.index(secs)  # type: ignore[arg-type]
        except TypeError:
            _native_sleep(secs)  # type: ignore[arg-type]  # raises the builtin's TypeError
            raise  # pragma: no cover - the builtin always raises here
    if not 0 <= seconds <= _MAX_SECONDS:  # also false for NaN
        _native_sleep(secs)  # type: ignore[arg-type]  # raises ValueError/OverflowError at once
        return  # pragma: no cover
    _core_sleep(seconds)
