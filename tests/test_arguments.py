"""Arguments and types: keyword forwarding, the options that are the API's own, typed flags.

``spawn``, ``run``, ``ThreadGroup.spawn``, the call forms of ``timeout_after`` /
``ignore_after`` and ``submit`` forward keyword arguments to the function;
``daemon=`` and ``name=`` are spawn's own (keyword only).  A type checker
(mypy --strict, run here on small snippets) rejects wrong arguments to
``spawn`` and unknown patch flags, and accepts the right ones.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import threadpatch
from threadpatch import ThreadGroup, ignore_after, run, spawn, timeout_after
from threadpatch.futures import ThreadPoolExecutor

ROOT = Path(__file__).resolve().parent.parent


def describe(x: int, /, *, scale: int = 1, name: str = "none", daemon: str = "none") -> str:
    return f"{x * scale} {name} {daemon}"


def test_spawn_forwards_keywords() -> None:
    t = spawn(describe, 2, scale=3)
    assert t.join(timeout=10) == "6 none none"


def test_spawn_options_are_its_own_and_keyword_only() -> None:
    t = spawn(describe, 1, name="worker-1", daemon=True)
    assert t.join(timeout=10) == "1 none none"  # neither reached the function
    assert t.name == "worker-1"
    assert t.daemon
    # A function's own keyword of that name: bind it first.
    t2 = spawn(functools.partial(describe, 1, name="theirs"), name="mine")
    assert t2.join(timeout=10) == "1 theirs none"
    assert t2.name == "mine"


def test_spawn_name_is_made_a_str_as_threading_does() -> None:
    t = spawn(threading.current_thread, name=5)  # type: ignore[call-overload]
    assert t.name == "5"
    assert t.join(timeout=10).name == "5"
    assert threading.Thread(target=int, name=5).name == "5"  # type: ignore[arg-type]


def test_spawn_rejects_what_is_not_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        spawn(42)  # type: ignore[call-overload]


def test_run_forwards_keywords_even_name_and_daemon() -> None:
    assert run(describe, 2, scale=2, name="n", daemon="d") == "4 n d"


def test_thread_group_spawn_forwards_keywords() -> None:
    with ThreadGroup() as g:
        a = g.spawn(describe, 1, scale=5)
        b = g.spawn(describe, 1, name="member")
    assert a.result == "5 none none"
    assert b.result == "1 none none"
    assert b.name == "member"


def test_deadline_call_forms_forward_keywords() -> None:
    assert timeout_after(10, describe, 3, scale=2) == "6 none none"
    assert ignore_after(10, describe, 3, name="x") == "3 x none"

    def takes_seconds(*, seconds: int) -> int:
        return seconds

    # The scope's own argument is positional: every keyword is the function's.
    assert timeout_after(10, takes_seconds, seconds=7) == 7
    assert ignore_after(10, takes_seconds, seconds=8) == 8
    with pytest.raises(TypeError, match="no function"):
        timeout_after(10, seconds=7)  # type: ignore[call-overload]


def test_submit_forwards_keywords() -> None:
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(describe, 4, scale=2, name="x").result(timeout=10) == "8 x none"


def test_is_patched_rejects_an_unknown_flag_as_patched_does() -> None:
    with pytest.raises(TypeError, match="unknown patch flag 'bogus'"):
        threadpatch.is_patched("bogus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unknown patch flag 'bogus'"):
        threadpatch.patched(bogus=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unknown patch flag"):
        threadpatch.is_patched(["socket"])  # type: ignore[arg-type]


def test_patch_flags_type_lists_every_flag() -> None:
    from typing import get_args

    from threadpatch import _patching, patches

    assert tuple(threadpatch.PatchFlags.__annotations__) == tuple(patches.TARGETS)
    assert get_args(_patching.PatchFlag) == tuple(patches.TARGETS)
    assert set(patches.TARGETS) >= patches.OFF_BY_DEFAULT


# -- what a type checker says --------------------------------------------------------------


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the module's runs: the package is analysed once."""
    pytest.importorskip("mypy")
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(tmp_path: Path, cache: Path, source: str) -> tuple[int, str]:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--follow-imports=silent",  # judge the snippet, not the package
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            str(snippet),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_mypy_accepts_right_arguments(tmp_path: Path, mypy_cache: Path) -> None:
    code, out = _mypy(
        tmp_path,
        mypy_cache,
        """
        import threadpatch
        from threadpatch.futures import ThreadPoolExecutor

        def fetch(url: str, *, timeout: float = 1.0) -> bytes:
            return b""

        t: threadpatch.Thread[bytes] = threadpatch.spawn(fetch, "http://x", timeout=5)
        threadpatch.spawn(fetch, "http://x", name="fetcher", daemon=True)
        with threadpatch.ThreadGroup() as g:
            g.spawn(fetch, "http://x", timeout=2.5)
        data: bytes = threadpatch.run(fetch, "http://x", timeout=1)
        got: bytes = threadpatch.timeout_after(5, fetch, "http://x", timeout=2)
        maybe: bytes | None = threadpatch.ignore_after(5, fetch, "http://x")
        with ThreadPoolExecutor() as pool:
            future = pool.submit(fetch, "http://x", timeout=3)
            body: bytes = future.result()
        threadpatch.patch_all(socket=False, futures=True)
        with threadpatch.patched(ssl=False):
            pass
        threadpatch.is_patched("futures")
        flags: threadpatch.PatchFlags = {"dns": False}
        threadpatch.patch_all(**flags)
        with threadpatch.CancelScope(threadpatch.current_time() + 5, shield=True) as scope:
            scope.cancel()
        """,
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        ("threadpatch.spawn(fetch, 42)", "incompatible type"),
        ('threadpatch.spawn(fetch, "u", timeout="soon")', "incompatible type"),
        ('threadpatch.spawn(fetch, "u", retries=3)', 'Unexpected keyword argument "retries"'),
        ("threadpatch.spawn(fetch)", "spawn"),
        ('threadpatch.spawn(fetch, 42, name="x")', "incompatible type"),
        ("threadpatch.ThreadGroup().spawn(fetch, 42)", "incompatible type"),
        ("threadpatch.run(fetch, 42)", "incompatible type"),
        ("threadpatch.timeout_after(5, fetch, 42)", 'variant of "timeout_after"'),
        ("ThreadPoolExecutor().submit(fetch, 42)", "incompatible type"),
        ("threadpatch.patch_all(bogus=True)", 'Unexpected keyword argument "bogus"'),
        ("threadpatch.patched(sockets=False)", 'Unexpected keyword argument "sockets"'),
        ("threadpatch.patch_all(socket=1)", "incompatible type"),
        ('threadpatch.is_patched("bogus")', "incompatible type"),
    ],
)
def test_mypy_rejects_wrong_arguments(
    tmp_path: Path, mypy_cache: Path, call: str, complaint: str
) -> None:
    code, out = _mypy(
        tmp_path,
        mypy_cache,
        f"""
        import threadpatch
        from threadpatch.futures import ThreadPoolExecutor

        def fetch(url: str, *, timeout: float = 1.0) -> bytes:
            return b""

        {call}
        """,
    )
    assert code == 1, out
    assert "snippet.py:8: error" in out, out
    assert complaint in out, out
