"""Patching the standard library: ``patch_all``, ``unpatch_all``, ``patched``.

The tables of what to replace live in :mod:`threadpatch.patches` (one data
module per patched standard-library module); this module applies them and
undoes them exactly.

How it works::

    patch_all(socket=True, ...)      with patched(...):
          |                               |
          +--> acquire(patch set) <-------+      depth 0 -> 1: apply the table
                                                  depth 1 -> 0: restore it
    patch set "ssl", target not imported yet:
          acquire --> pending; a permanent wrapt post-import hook for "ssl"
          import ssl --> hook --> apply every pending set of "ssl"

* Every change is a :class:`_Record` (owner object, attribute, whether the
  owner had the attribute itself, the original, our replacement).  Restoring
  walks the records backwards: ``setattr`` of the original, or ``delattr``
  when the attribute was inherited (class-level patches of methods that live
  on a C base class).  A record whose attribute no longer holds our
  replacement (someone patched over us) is left alone, with a
  :class:`ThreadpatchWarning`.
* Patch sets are reference counted: ``patch_all()`` holds one reference per
  set it enabled (calling it again is a no-op), each ``patched()`` block
  holds one more for the sets it names.  Only the first reference applies a
  set and only the last one restores it.
* One native ``RLock`` serialises all of it; applying a set is a transaction
  (a failure rolls back what the set had applied).
* Nothing here starts the hub or imports curio: the tables only bind names.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Literal, TypedDict

from . import _core
from ._builtin_like import builtin_like, is_plain_builtin
from ._core import _natives
from .patches import OFF_BY_DEFAULT as OFF_BY_DEFAULT
from .patches import TARGETS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Unpack

__all__ = [
    "FLAGS",
    "OFF_BY_DEFAULT",
    "PatchFlag",
    "PatchFlags",
    "ThreadpatchWarning",
    "is_patched",
    "original",
    "patch_all",
    "patched",
    "unpatch_all",
]

#: The flags of :func:`patch_all` and :func:`patched`, in the order the sets apply.
FLAGS: tuple[str, ...] = tuple(TARGETS)


class PatchFlags(TypedDict, total=False):
    """The keyword arguments of :func:`patch_all` and :func:`patched`: one bool per patch set.

    Every set is on by default except ``futures`` and ``asyncio`` (see ``OFF_BY_DEFAULT``);
    a type checker rejects a flag that does not exist.
    """

    time: bool
    threading: bool
    queue: bool
    socket: bool
    dns: bool
    select: bool
    selectors: bool
    socketserver: bool
    ssl: bool
    subprocess: bool
    os: bool
    multiprocessing: bool
    io: bool
    urllib3: bool
    xmlrpc: bool
    imaplib: bool
    thread_pool: bool
    futures: bool
    asyncio_runner: bool
    asyncio: bool
    trio: bool
    psycopg: bool
    psycopg_pool: bool
    psycopg2: bool
    pg8000: bool
    pymysql: bool


PatchFlags.__module__ = "threadpatch"

#: The name of one patch set, for :func:`is_patched` (the keys of :class:`PatchFlags`).
PatchFlag = Literal[
    "time",
    "threading",
    "queue",
    "socket",
    "dns",
    "select",
    "selectors",
    "socketserver",
    "ssl",
    "subprocess",
    "os",
    "multiprocessing",
    "io",
    "urllib3",
    "xmlrpc",
    "imaplib",
    "thread_pool",
    "futures",
    "asyncio_runner",
    "asyncio",
    "trio",
    "psycopg",
    "psycopg_pool",
    "psycopg2",
    "pg8000",
    "pymysql",
]


class ThreadpatchWarning(UserWarning):
    """Something about patching deserves attention but is not an error."""

    __module__ = "threadpatch"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


class _Record:
    """One attribute we replaced, and how to put it back."""

    __slots__ = ("had_own", "name", "original", "owner", "replacement")

    def __init__(
        self, owner: object, name: str, had_own: bool, original: object, replacement: object
    ) -> None:
        self.owner = owner
        self.name = name
        self.had_own = had_own  # False: inherited (restore by delattr)
        self.original = original
        self.replacement = replacement


class _PatchSet:
    """One ``threadpatch.patches.<flag>`` table and whether it is applied."""

    __slots__ = ("after_restore", "depth", "flag", "records", "target")

    def __init__(self, flag: str, target: str) -> None:
        self.flag = flag
        self.target = target
        self.depth = 0
        self.records: list[_Record] | None = None  # None: not applied
        self.after_restore: Callable[[], object] | None = None

    def __repr__(self) -> str:
        state = "applied" if self.records is not None else "pending" if self.depth else "off"
        return f"<patch set {self.flag!r} ({self.target}) depth={self.depth} {state}>"


_lock = _natives.RLock()
_sets: dict[str, _PatchSet] = {flag: _PatchSet(flag, target) for flag, target in TARGETS.items()}
_global: list[str] = []  # the sets patch_all() holds, in acquisition order
_hooked: set[str] = set()  # targets with a post-import hook waiting to fire
_pending_warnings: list[str] = []


# -- applying and restoring one set ------------------------------------------------


def _load_table(flag: str) -> ModuleType:
    return importlib.import_module(f"{__package__}.patches.{flag}")


def _set_attr(owner: object, name: str, replacement: object, records: list[_Record]) -> None:
    namespace = vars(owner)
    had_own = name in namespace
    original = namespace[name] if had_own else _MISSING
    if isinstance(owner, ModuleType) and is_plain_builtin(original):
        replacement = _as_builtin(owner, name, replacement, original)
    setattr(owner, name, replacement)
    records.append(_Record(owner, name, had_own, original, replacement))


# One wrapper per (builtin, replacement), wherever it is installed: pickle finds
# ``psycopg_pool.pool.sleep`` (``time.sleep`` imported by name) as ``time.sleep``.
_builtin_likes: dict[tuple[int, int], tuple[object, object, object]] = {}


def _as_builtin(module: ModuleType, name: str, replacement: object, original: object) -> object:
    """``replacement`` of the builtin ``module.name``, behaving as a builtin.

    A Python function is a descriptor with a ``__dict__``: stored as a class
    attribute it would bind as a method, where the builtin it replaces does
    not.  It is installed wrapped (see :mod:`threadpatch._builtin_like`); a
    class or another non-descriptor is installed as it is.  The wrapper is made
    once per builtin and replacement, so patching again installs the same object.
    """
    if not hasattr(type(replacement), "__get__"):
        return replacement
    key = (id(original), id(replacement))
    known = _builtin_likes.get(key)
    if known is not None:
        return known[2]
    wrapper = builtin_like(replacement, original)
    _builtin_likes[key] = (original, replacement, wrapper)  # keeps the ids valid
    return wrapper


def _resolve(module: ModuleType, path: str) -> object:
    owner: object = module
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def _apply(patch_set: _PatchSet, module: ModuleType) -> None:
    table = _load_table(patch_set.flag)
    records: list[_Record] = []
    try:
        replacements: Mapping[str, object] = table.REPLACEMENTS
        for name, replacement in replacements.items():
            if name in vars(module):  # a name this Python lacks is not invented
                _set_attr(module, name, replacement, records)
        for owner, name, replacement in _class_entries(module, table):
            if hasattr(owner, name):
                _set_attr(owner, name, replacement, records)
        after_apply: Callable[[], object] | None = getattr(table, "AFTER_APPLY", None)
        if after_apply is not None:
            after_apply()
    except BaseException:
        _restore(records)
        raise
    patch_set.records = records
    patch_set.after_restore = getattr(table, "AFTER_RESTORE", None)


def _class_entries(module: ModuleType, table: ModuleType) -> list[tuple[object, str, object]]:
    """The class-level entries of a table, as (class, attribute, replacement).

    ``CLASS_REPLACEMENTS`` maps either a class path inside the target module
    to ``{attribute: replacement}``, or ``(class, attribute)`` to a replacement
    (the shape of the I/O modules' ``CLASS_PATCHES``).
    """
    entries: list[tuple[object, str, object]] = []
    table_entries: Mapping[object, object] = getattr(table, "CLASS_REPLACEMENTS", {})
    for key, value in table_entries.items():
        if isinstance(key, tuple):
            owner, name = key
            entries.append((owner, name, value))
        else:
            owner = _resolve(module, str(key))
            attributes: Mapping[str, object] = value  # type: ignore[assignment]
            entries.extend((owner, name, replacement) for name, replacement in attributes.items())
    return entries


def _restore(records: list[_Record]) -> None:
    for record in reversed(records):
        owner, name = record.owner, record.name
        current = vars(owner).get(name, _MISSING)
        if current is not record.replacement:
            _pending_warnings.append(
                f"{_describe(owner)}.{name} was replaced by someone else while patched "
                f"(it is {current!r}); threadpatch left it as it is"
            )
            continue
        if record.had_own:
            setattr(owner, name, record.original)
        else:
            delattr(owner, name)


def _describe(owner: object) -> str:
    if isinstance(owner, ModuleType):
        return owner.__name__
    module = getattr(owner, "__module__", "?")
    return f"{module}.{getattr(owner, '__qualname__', owner)!s}"


# -- reference counting ---------------------------------------------------------


def _acquire(flag: str) -> None:
    patch_set = _sets[flag]
    patch_set.depth += 1
    if patch_set.depth > 1:
        return
    module = sys.modules.get(patch_set.target)
    if module is not None:
        try:
            _apply(patch_set, module)
        except BaseException:
            patch_set.depth -= 1
            raise
    else:
        _hook(patch_set.target)


def _release(flag: str) -> None:
    patch_set = _sets[flag]
    if patch_set.depth == 0:
        return
    patch_set.depth -= 1
    if patch_set.depth == 0 and patch_set.records is not None:
        records, patch_set.records = patch_set.records, None
        _restore(records)
        if patch_set.after_restore is not None:
            message = patch_set.after_restore()
            if isinstance(message, str):  # something it could not put back
                _pending_warnings.append(message)


def _hook(target: str) -> None:
    """Patch ``target`` when it is imported (one permanent wrapt hook per name)."""
    if target in _hooked:
        return
    _hooked.add(target)
    import wrapt  # lazily: it is heavy, and only needed for modules not imported yet

    wrapt.register_post_import_hook(_on_import, target)


def _on_import(module: ModuleType) -> None:
    """The post-import dispatcher: apply the sets waiting for ``module``; else nothing."""
    with _lock:
        _hooked.discard(module.__name__)
        for patch_set in _sets.values():
            if (
                patch_set.target == module.__name__
                and patch_set.depth > 0
                and patch_set.records is None
            ):
                _apply(patch_set, module)
    _flush_warnings()


def _flush_warnings() -> None:
    with _lock:
        messages = list(_pending_warnings)
        _pending_warnings.clear()
    for message in messages:
        warnings.warn(message, ThreadpatchWarning, stacklevel=3)


def _unknown_flag(name: object) -> TypeError:
    return TypeError(f"unknown patch flag {name!r}; the flags are {', '.join(FLAGS)}")


def _select(flags: Mapping[str, object], default: bool) -> list[str]:
    for name, value in flags.items():
        if name not in _sets:
            raise _unknown_flag(name)
        if not isinstance(value, bool):
            raise TypeError(f"patch flag {name}= must be True or False, got {value!r}")
    return [flag for flag in FLAGS if flags.get(flag, default and flag not in OFF_BY_DEFAULT)]


# -- public API ----------------------------------------------------------------------


def patch_all(**flags: Unpack[PatchFlags]) -> None:
    """Make the standard library's blocking operations cancellation points.

    Every patch set is on by default but those of :data:`OFF_BY_DEFAULT`; turn
    one off with ``flag=False`` (flags: ``time``, ``threading``, ``queue``,
    ``socket``, ``dns``, ``select``, ``selectors``, ``socketserver``, ``ssl``,
    ``subprocess``, ``urllib3``, ``xmlrpc``, ``imaplib``, ``thread_pool``,
    ``futures``, ``asyncio_runner``, ``asyncio``, ``trio``, ``psycopg``,
    ``psycopg_pool``, ``psycopg2``, ``pg8000``, ``pymysql``; see
    :class:`PatchFlags`).  The sets that change documented behaviour are off
    unless turned on with ``flag=True``: ``futures`` (``Future.cancel()`` of the
    standard ``ThreadPoolExecutor`` stops running work, see
    :mod:`threadpatch.futures`) and ``asyncio`` (``asyncio.to_thread`` and
    ``run_in_executor(None, ...)`` cancel their thread when the task is
    cancelled).
    Calling it again is a no-op for the sets already on (and turns on the
    sets newly selected).  A module that is imported later is patched when it
    is imported.  Never starts the hub.

    Raises:
        TypeError: an unknown flag, or a flag that is not a bool.
    """
    selected = _select(flags, True)
    # Plain threads of a patched program block in our calls: Ctrl-C at exit
    # must cancel them, even those that have not touched threadpatch yet.
    _core.watch_exit()
    try:
        with _lock:
            added: list[str] = []
            try:
                for flag in selected:
                    if flag not in _global:
                        _acquire(flag)
                        _global.append(flag)
                        added.append(flag)
            except BaseException:
                for flag in reversed(added):  # all or nothing
                    _global.remove(flag)
                    _release(flag)
                raise
    finally:
        _flush_warnings()


def unpatch_all() -> None:
    """Undo :func:`patch_all`: every attribute it replaced is the original again.

    Sets that an open ``with patched():`` block also holds stay applied until
    that block exits.  Calling it when nothing is patched is a no-op.  An
    attribute that someone else replaced while patched is left as it is, with
    a :class:`ThreadpatchWarning`.
    """
    try:
        with _lock:
            while _global:
                _release(_global.pop())
    finally:
        _flush_warnings()


class patched:
    """``with patched(**flags):`` patches for the duration of the block.

    Same flags (and defaults) as :func:`patch_all`.  Blocks nest (also inside or around
    :func:`patch_all`): each set is applied by the first holder and restored
    by the last.  An instance can be entered again after it has exited.
    """

    __module__ = "threadpatch"

    def __init__(self, **flags: Unpack[PatchFlags]) -> None:
        self._flags = _select(flags, True)
        self._held: list[list[str]] = []

    def __repr__(self) -> str:
        return f"<threadpatch.patched {' '.join(self._flags)}>"

    def __enter__(self) -> patched:
        acquired: list[str] = []
        try:
            with _lock:
                try:
                    for flag in self._flags:
                        _acquire(flag)
                        acquired.append(flag)
                except BaseException:
                    for flag in reversed(acquired):
                        _release(flag)
                    raise
                self._held.append(acquired)
        finally:
            _flush_warnings()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            with _lock:
                for flag in reversed(self._held.pop()):
                    _release(flag)
        finally:
            _flush_warnings()
        return False


def is_patched(flag: PatchFlag | None = None) -> bool:
    """Whether patch set ``flag`` is on (any set, if ``flag`` is None).

    A set is on from :func:`patch_all` (or entering ``patched()``) until it is
    undone, also while its target module has not been imported yet.

    Raises:
        TypeError: ``flag`` is not a patch flag (as ``patched(bogus=True)``).
    """
    with _lock:
        if flag is None:
            return any(s.depth for s in _sets.values())
        try:
            return _sets[flag].depth > 0
        except (KeyError, TypeError):
            raise _unknown_flag(flag) from None


def original(module: str | object, name: str) -> object:
    """The standard-library object behind ``module.name``, patched or not.

    Args:
        module: a module or class, or its dotted name (``"socket"``,
            ``"socket.socket"``, ``"threading.Thread"``).
        name: the attribute.

    Returns:
        What the attribute was before threadpatch replaced it (for a method
        that a class inherits, what it inherits); the current value if it is
        not patched.

    Raises:
        AttributeError: there is no such attribute.
    """
    owner = _owner(module) if isinstance(module, str) else module
    with _lock:
        for patch_set in _sets.values():
            for record in patch_set.records or ():
                if record.owner is owner and record.name == name:
                    if record.had_own:
                        return record.original
                    return _inherited(owner, name)
    return getattr(owner, name)


def _owner(path: str) -> object:
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: object = module
        for part in parts[i:]:
            owner = getattr(owner, part)
        return owner
    raise ModuleNotFoundError(f"no module named {parts[0]!r}")


def _inherited(cls: object, name: str) -> object:
    for base in getattr(cls, "__mro__", ())[1:]:
        if name in vars(base):
            return vars(base)[name]
    raise AttributeError(name)  # pragma: no cover - the record says it was there


def _active_records() -> list[_Record]:
    """Every change currently applied, in application order (tests, diagnostics)."""
    with _lock:
        return [r for s in _sets.values() for r in s.records or ()]
