"""Package hygiene: public names, layering (imports flow one way), curio behind the hub."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import threadpatch

PACKAGE = Path(threadpatch.__file__).resolve().parent

# Rows of STYLE.md, bottom first: a module may import only from its own row or lower.
LAYERS: dict[str, int] = {
    "_core": 0,
    "_sync": 1,
    "_locks": 1,
    "_conditions": 1,
    "_semaphores": 1,
    "_signal_safe": 1,
    "_version": 0,  # the version string, read by pyproject.toml too
    "_accel": 1,  # loads the C accelerator; refuses a platform other than Linux
    "_speedups": 1,  # C fast paths of _sync and _socket (optional extension)
    "_queue": 1,
    "_simple_queue": 1,
    "_time": 1,
    "_builtin_like": 1,  # patched builtins that behave as builtins (for _patching)
    "_threading": 1,
    "_dns": 2,
    "_socket": 2,
    "_socket_timeouts": 2,  # the user's timeout in Python; adopting stdlib sockets
    "_socket_methods": 2,  # the blocking socket methods, from one factory
    "_ssl": 2,
    "_select": 2,
    "_selectors": 2,
    "_socketserver": 2,
    "_subprocess": 2,  # Popen waits on a pidfd, on the core
    "_os": 2,  # os.read/os.write of pipes and terminals, on the core
    "_mpconnection": 3,  # multiprocessing.connection over _os
    "_fileio": 2,  # file objects over pipes and terminals, on _os
    "socket": 2,
    "ssl": 2,
    "select": 2,
    "selectors": 2,
    "socketserver": 2,
    "_futures": 2,  # interop: concurrent.futures' worker loop, on the core
    "futures": 2,  # interop: the executor whose Future.cancel() stops running work
    "_asyncio": 2,  # interop: asyncio's Runner.close and task deadlines, on the core
    "_workers": 2,  # interop: the bounded pool of to_thread's worker threads
    "_bridges": 2,  # interop: to_thread / from_thread for asyncio, trio and the hub's curio
    "_psycopg": 2,  # interop: psycopg 3's wait functions, on the core
    "_psycopg2": 2,  # interop: psycopg2's wait callback, on the core
    "_dbcancel": 2,  # interop: server-side cancel for pg8000 and PyMySQL
    "_cleanup": 2,  # interop: a client's own clean-up on a cancellation (xmlrpc, imaplib)
    "_describe": 2,  # wait reasons in words, for _diagnostics
    "_diagnostics": 2,  # snapshot, dump, find_deadlocks: reads the core's wait records
    "_monitor": 2,  # the live view: serves snapshots on a Unix socket
    "patches": 3,
    "_patching": 3,
    "_autopatch": 4,
    "__main__": 4,
    "pytest_plugin": 4,
    "_pytest": 4,  # the pytest plugin's settings and watchdog
    "testing": 4,  # test support: the virtual clock
    "__init__": 5,
}


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _internal_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    rel = path.relative_to(PACKAGE)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = list(rel.parts[:-1])[: len(rel.parts) - node.level]
                parts = [*base, *(node.module.split(".") if node.module else [])]
                if parts:
                    found.add(parts[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "threadpatch":
                rest = node.module.split(".")[1:]
                found.update([rest[0]] if rest else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "threadpatch" and len(parts) > 1:
                    found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    me = _top(path)
    assert me in LAYERS, f"{me} has no layer: add it to LAYERS (and STYLE.md's table)"
    for name in _internal_imports(path):
        if name == me:
            continue
        assert name in LAYERS, f"{path.name} imports unknown module {name}"
        assert LAYERS[name] <= LAYERS[me], f"{path.name} (layer {me}) imports upward: {name}"


def test_only_the_hub_imports_curio() -> None:
    offenders = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            if any(n.split(".")[0] == "curio" for n in names):
                offenders.append(path.relative_to(PACKAGE))
    assert {str(p) for p in offenders} <= {"_core/_hub.py"}


def test_all_is_complete_and_exact() -> None:
    public = {
        name
        for name, value in vars(threadpatch).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("threadpatch")
        and not isinstance(value, type(threadpatch))
    }
    assert public <= set(threadpatch.__all__), public - set(threadpatch.__all__)
    for name in threadpatch.__all__:
        assert hasattr(threadpatch, name), name


def test_public_classes_present_as_threadpatch() -> None:
    import queue
    import threading

    # Exception classes callers already catch are the stdlib's own, never copies.
    stdlib_identity = {getattr(threading, "BrokenBarrierError", None)} | {
        getattr(queue, n, None) for n in ("Empty", "Full", "ShutDown")
    }
    for name in threadpatch.__all__:
        obj = getattr(threadpatch, name)
        if isinstance(obj, type) and obj not in stdlib_identity:
            assert obj.__module__ == "threadpatch", (name, obj.__module__)


def test_py_typed_ships() -> None:
    assert (PACKAGE / "py.typed").exists()


def test_core_is_the_door() -> None:
    core = importlib.import_module("threadpatch._core")
    for name in core.__all__:
        assert hasattr(core, name)


def _module_of(path: Path, level: int, module: str | None) -> tuple[str, ...]:
    """The dotted parts (below ``threadpatch``) that a relative import names."""
    rel = path.relative_to(PACKAGE)
    base = list(rel.parts[:-1])[: len(rel.parts) - 1 - (level - 1)]
    return (*base, *(module.split(".") if module else []))


def _is_package(parts: tuple[str, ...]) -> bool:
    return PACKAGE.joinpath(*parts).is_dir()


#: The one private name of the core that every layer may use: its table of
#: the native primitives captured at import (threadpatch/_core/_natives.py).
CORE_SHARED = {"_natives"}


def _private_reaches(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE)
    inside_core = rel.parts[0] == "_core"
    tree = ast.parse(path.read_text())
    modules: dict[str, tuple[str, ...]] = {}  # local name -> the threadpatch module it is
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        source = _module_of(path, node.level, node.module)
        if source[:1] == ("_core",) and len(source) > 1 and not inside_core:
            internal = ".".join(source)
            found.append(f"line {node.lineno}: imports from the core's internals {internal}")
            continue
        for alias in node.names:
            local = alias.asname or alias.name
            if _is_package(source):
                modules[local] = (*source, alias.name)
                private = source == ("_core",) and alias.name.startswith("_")
                if private and alias.name not in CORE_SHARED and not inside_core:
                    found.append(f"line {node.lineno}: imports _core.{alias.name}")
            elif alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"line {node.lineno}: imports {alias.name} from {'.'.join(source)}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            owner = modules[node.value.id]
            if owner == ("_core",) and (node.attr in CORE_SHARED or inside_core):
                continue
            found.append(f"line {node.lineno}: uses {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_reaching_into_private_names(path: Path) -> None:
    # A module uses what another module exports, never its private names; the
    # core is entered through threadpatch._core only (its door, __all__).
    assert _private_reaches(path) == []
