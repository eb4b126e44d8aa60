"""Replacements of module-level builtins behave as builtins (threadpatch/_builtin_like.py).

A builtin function of a C module (``time.sleep``, ``select.select``) is not a
descriptor and has no ``__dict__``; the Python functions that patch them are
installed wrapped so that ``class A: nap = time.sleep`` still works, xmlrpc
still refuses to marshal them and pickle finds them by reference.  The cases
are enumerated from the patch tables, so a new replacement is covered as soon
as a table names it.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import socket
import time
import xmlrpc.client
from types import ModuleType
from typing import Any

import pytest

import threadpatch
from threadpatch import _builtin_like, _patching
from threadpatch._accel import speedups

ALL_FLAGS: dict[str, Any] = dict.fromkeys(_patching.FLAGS, True)


def _builtin_replacements() -> list[tuple[str, str]]:
    """(module, attribute) of every table entry that replaces a builtin function by a descriptor."""
    found: list[tuple[str, str]] = []
    for flag, target in _patching.TARGETS.items():
        try:
            module = importlib.import_module(target)
        except ImportError:
            continue
        table = _patching._load_table(flag)
        entries = [(module, n, r) for n, r in getattr(table, "REPLACEMENTS", {}).items()]
        entries += [
            (owner, n, r)
            for owner, n, r in _patching._class_entries(module, table)
            if isinstance(owner, ModuleType)
        ]
        for owner, name, replacement in entries:
            current = vars(owner).get(name)
            if _builtin_like.is_plain_builtin(current) and hasattr(type(replacement), "__get__"):
                found.append((owner.__name__, name))
    return found


CASES = _builtin_replacements()


def test_the_enumeration_finds_the_known_builtins() -> None:
    assert {("time", "sleep"), ("select", "select"), ("socket", "gethostbyname")} <= set(CASES)


def _shape(sig: inspect.Signature) -> list[tuple[object, ...]]:
    """Parameters as kinds and defaults (and names, where a caller can use them)."""
    return [
        (p.kind, p.default, None if p.kind is p.POSITIONAL_ONLY else p.name)
        for p in sig.parameters.values()
    ]


@pytest.mark.parametrize(("module_name", "name"), CASES)
def test_replacement_behaves_as_the_builtin(module_name: str, name: str) -> None:
    module = importlib.import_module(module_name)
    native = getattr(module, name)
    with threadpatch.patched(**ALL_FLAGS):
        ours = getattr(module, name)
        assert ours is not native
        assert threadpatch.original(module, name) is native
        # not a descriptor: a class attribute does not bind
        assert not hasattr(type(ours), "__get__")
        holder = type("Holder", (), {"attr": ours})
        assert holder().attr is ours
        assert holder.attr is ours
        # no __dict__, read-only names of the builtin
        assert hasattr(ours, "__dict__") == hasattr(native, "__dict__")
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            assert getattr(ours, attr) == getattr(native, attr), attr
            with pytest.raises(AttributeError):
                setattr(ours, attr, "x")
        try:
            native_sig = inspect.signature(native)
        except ValueError:
            pass
        else:
            assert _shape(inspect.signature(ours)) == _shape(native_sig)
        # pickled by reference, as the builtin is: as what the builtin's own
        # reference names now (ours where its module is patched, else the builtin)
        expected = getattr(importlib.import_module(native.__module__), native.__qualname__)
        assert expected is ours or expected is native
        assert pickle.loads(pickle.dumps(ours)) is expected
        with pytest.raises(TypeError):
            xmlrpc.client.dumps((ours,))
    assert getattr(module, name) is native
    assert pickle.loads(pickle.dumps(native)) is native


def test_a_class_attribute_calls_through_an_instance() -> None:
    with threadpatch.patched(time=True):

        class Napper:
            nap = time.sleep

        assert Napper().nap(0) is None
        with pytest.raises(TypeError):
            Napper().nap()  # the builtin's arity, not a bound method's


def test_patching_again_installs_the_same_wrapper_and_unpatching_restores() -> None:
    native = time.sleep
    with threadpatch.patched(time=True):
        first = time.sleep
    assert time.sleep is native
    with threadpatch.patched(time=True):
        assert time.sleep is first
    assert time.sleep is native


def test_method_replacements_on_classes_still_bind() -> None:
    with threadpatch.patched(**ALL_FLAGS):
        for record in _patching._active_records():
            if isinstance(record.owner, type):
                assert not isinstance(
                    record.replacement, (_builtin_like._PyBuiltinLike, *_c_type())
                ), record.name
        sock = socket.socket()
        try:
            assert sock.getblocking() is True
            assert hasattr(type(vars(socket.socket)["recv"]), "__get__")
        finally:
            sock.close()


def _c_type() -> tuple[type, ...]:
    return () if speedups is None else (speedups.BuiltinLike,)


IMPLEMENTATIONS = [_builtin_like._PyBuiltinLike, *_c_type()]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda t: t.__name__)
def test_the_wrapper_forwards_arguments_and_exceptions(impl: Any) -> None:
    def target(a: object, /, b: object = None, *, c: object = None) -> tuple[object, ...]:
        if a == "boom":
            raise KeyError(a)
        return a, b, c

    wrapper = impl(target, time.sleep)
    assert wrapper(1, 2, c=3) == (1, 2, 3)
    assert wrapper(*[1], **{"b": 2}) == (1, 2, None)
    with pytest.raises(KeyError):
        wrapper("boom")
    assert wrapper.__wrapped__ is target
    assert wrapper.__name__ == "sleep"
    assert not hasattr(wrapper, "__dict__")
    assert "sleep" in repr(wrapper)
    with pytest.raises(AttributeError):
        wrapper.__wrapped__ = len


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda t: t.__name__)
def test_the_wrapper_refuses_a_non_callable(impl: Any) -> None:
    with pytest.raises(TypeError, match="callable"):
        impl(42, time.sleep)
