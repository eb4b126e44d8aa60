"""Start-up: ``python -m threadpatch``, ``THREADPATCH_AUTOPATCH``, and patching late."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _python(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, *args]
    if code is not None:
        argv += ["-c", textwrap.dedent(code)]
    full_env = {k: v for k, v in os.environ.items() if k != "THREADPATCH_AUTOPATCH"}
    full_env.update(env or {})
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False, env=full_env, cwd=cwd
    )


SCRIPT = """\
import sys, time, threadpatch
sleep = getattr(time.sleep, '__wrapped__', time.sleep)  # a patched builtin wraps ours
print(repr(sys.argv), __name__, threadpatch.is_patched(), sleep.__module__)
print(sys.path[0])
raise SystemExit(int(sys.argv[-1]))
"""


def test_run_a_script_patched(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    proc = _python("-m", "threadpatch", str(script), "a b", "7")
    assert proc.returncode == 7, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == f"{[str(script), 'a b', '7']!r} __main__ True threadpatch._time"
    assert second == str(tmp_path)


def test_run_a_module_patched(tmp_path: Path) -> None:
    (tmp_path / "progmod.py").write_text(SCRIPT)
    proc = _python("-m", "threadpatch", "--no-ssl", "-m", "progmod", "x", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first == f"{[str(tmp_path / 'progmod.py'), 'x', '0']!r} __main__ True threadpatch._time"


def test_a_failing_script_exits_1_with_its_traceback(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text("raise KeyError('boom')\n")
    proc = _python("-m", "threadpatch", str(script))
    assert proc.returncode == 1
    assert "KeyError: 'boom'" in proc.stderr


def test_usage_and_bad_options() -> None:
    assert "usage:" in _python("-m", "threadpatch").stdout
    proc = _python("-m", "threadpatch", "--no-such-flag", "x.py")
    assert proc.returncode != 0
    assert "unknown option" in proc.stderr


def _pth_installed() -> bool:
    return any(Path(p, "threadpatch-autopatch.pth").exists() for p in site.getsitepackages())


needs_pth = pytest.mark.skipif(
    not _pth_installed(), reason="threadpatch-autopatch.pth is not in site-packages (reinstall)"
)


@needs_pth
def test_autopatch_env_var_patches_at_start_up() -> None:
    code = """
        import sys, time
        assert "threadpatch" in sys.modules
        import threadpatch
        print(threadpatch.is_patched(), getattr(time.sleep, '__wrapped__', time.sleep).__module__)
    """
    proc = _python(env={"THREADPATCH_AUTOPATCH": "1"}, code=code)
    assert proc.stdout.split() == ["True", "threadpatch._time"], proc.stderr
    proc = _python(
        env={"THREADPATCH_AUTOPATCH": "0"}, code="import sys; print('threadpatch' in sys.modules)"
    )
    assert proc.stdout.strip() == "False", proc.stderr


@needs_pth
def test_autopatch_unset_imports_nothing() -> None:
    proc = _python("-X", "importtime", code="pass")
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    ours = [name for name in imported if name.split(".")[0] in ("threadpatch", "wrapt", "curio")]
    assert ours == [], ours


def test_already_imported_requests_becomes_cancellable() -> None:
    code = """
        import socket, time
        from socket import socket as early_socket       # bound before patching
        import requests, urllib3, http.client            # imported before patching
        import threadpatch
        from threadpatch import _core

        listener = early_socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = "http://127.0.0.1:%d/" % listener.getsockname()[1]
        threadpatch.patch_all()
        t = threadpatch.spawn(requests.get, url)
        deadline = time.monotonic() + 10
        while not (t._state.parked or time.monotonic() > deadline):
            time.sleep(0.001)
        t0 = time.monotonic()
        assert t.cancel(timeout=5)
        print(t.cancelled, round(time.monotonic() - t0, 3))
    """
    proc = _python(code=code)
    cancelled, _elapsed = proc.stdout.split()
    assert cancelled == "True", proc.stderr
