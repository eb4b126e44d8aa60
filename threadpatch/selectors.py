"""Drop-in for the :mod:`selectors` module whose ``select()`` is cancellable.

The selector classes are threadpatch's subclasses of the stdlib ones (see
:mod:`threadpatch._selectors`); ``BaseSelector``, ``SelectorKey`` and the
``EVENT_*`` constants are the stdlib's own objects.
"""

from __future__ import annotations

from selectors import EVENT_READ as EVENT_READ
from selectors import EVENT_WRITE as EVENT_WRITE
from selectors import BaseSelector as BaseSelector
from selectors import SelectorKey as SelectorKey

from ._selectors import DefaultSelector as DefaultSelector
from ._selectors import EpollSelector as EpollSelector
from ._selectors import PollSelector as PollSelector
from ._selectors import SelectSelector as SelectSelector

__all__ = [
    "EVENT_READ",
    "EVENT_WRITE",
    "BaseSelector",
    "DefaultSelector",
    "EpollSelector",
    "PollSelector",
    "SelectSelector",
    "SelectorKey",
]
