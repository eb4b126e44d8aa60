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
    "_accel": 1,  # loads the C accelerator
    "_speedups": 1,  # C fast paths of _sync and _socket (optional extension)
    "_queue": 1,
    "_time": 1,
    "_threading": 1,
    "_dns": 2,
    "_socket": 2,
    "_socket_timeouts": 2,  # the user's timeout in Python; adopting stdlib sockets
    "_socket_methods": 2,  # the blocking socket methods, from one factory
    "_ssl": 2,
    "_select": 2,
    "_selectors": 2,
    "_socketserver": 2,
    "socket": 2,
    "ssl": 2,
    "select": 2,
    "selectors": 2,
    "socketserver": 2,
    "_futures": 2,  # interop: concurrent.futures' worker loop, on the core
    "_asyncio": 2,  # interop: asyncio's Runner.close, on the core
    "patches": 3,
    "_patching": 3,
    "_autopatch": 4,
    "__main__": 4,
    "pytest_plugin": 4,
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
