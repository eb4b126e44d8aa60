"""Patched builtins that behave as builtins: :func:`builtin_like`.

A builtin function of a C module (``time.sleep``, ``select.select``,
``socket.gethostbyname``) is not a descriptor: stored as a class attribute
(``class A: nap = time.sleep``) it does not bind, so ``A().nap(0)`` works.
It has no ``__dict__`` (xmlrpc refuses to marshal it, introspection sees no
attributes) and pickles by reference.  A Python function does all three
differently, so the patch layer (:mod:`threadpatch._patching`) installs a
Python replacement of a module-level builtin wrapped by :func:`builtin_like`.

The C accelerator's ``BuiltinLike`` forwards calls by vectorcall (no extra
frame on the fast path); :class:`_PyBuiltinLike` is its pure-Python
reference (one extra frame per call).
"""

from __future__ import annotations

import copy
import sys
import types
from typing import Any, cast

from ._accel import speedups

__all__ = ["builtin_like", "is_plain_builtin"]


def is_plain_builtin(obj: object) -> bool:
    """Whether ``obj`` is a builtin function that a Python replacement must imitate."""
    return isinstance(obj, types.BuiltinFunctionType) and not hasattr(type(obj), "__get__")


class _PyBuiltinLike:
    """Calls ``__wrapped__``; not a descriptor, no ``__dict__``, the builtin's names."""

    __slots__ = ("__weakref__", "__wrapped__", "_doc", "_like", "_module", "_name", "_qualname")

    def __init__(self, wrapped: Any, like: Any) -> None:
        if not callable(wrapped):
            raise TypeError(f"BuiltinLike() needs a callable, got {wrapped!r}")
        setter = object.__setattr__
        setter(self, "__wrapped__", wrapped)
        setter(self, "_like", like)
        setter(self, "_name", like.__name__)
        setter(self, "_qualname", like.__qualname__)
        setter(self, "_module", like.__module__)
        setter(self, "_doc", like.__doc__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"readonly attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"readonly attribute {name!r}")

    # ``__name__`` and ``__qualname__`` cannot be class attributes (they are
    # the class's own); instance lookup falls through to __getattr__ for them.
    def __getattr__(self, name: str) -> Any:
        if name == "__name__":
            return self._name
        if name == "__qualname__":
            return self._qualname
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def __module__(self) -> str:  # type: ignore[override]
        return cast("str", self._module)

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return cast("str | None", self._doc)

    def __reduce__(self) -> str | tuple[Any, tuple[Any]]:
        # By name when the builtin's module holds us under it; else as what
        # the builtin itself unpickles to (its module, as _socket, is not patched).
        module = sys.modules.get(self._module)
        if module is not None and getattr(module, self._qualname, None) is self:
            return cast("str", self._qualname)
        return copy.copy, (self._like,)

    def __repr__(self) -> str:
        return f"<built-in function {self._name} (threadpatch: {self.__wrapped__!r})>"


_BuiltinLike: Any = _PyBuiltinLike if speedups is None else speedups.BuiltinLike


def builtin_like(wrapped: Any, like: Any) -> Any:
    """``wrapped``, callable as it is, with the builtin manners and names of ``like``."""
    return _BuiltinLike(wrapped, like)
