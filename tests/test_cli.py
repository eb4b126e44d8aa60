"""The command line: ``python -m threadpatch`` and the ``threadpatch`` console script.

Each test runs a child interpreter as a user would, and compares with what
plain ``python`` does for the same program where the two must agree (error
messages, exit statuses, tracebacks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import threadpatch
from threadpatch import __main__ as cli
from threadpatch._patching import FLAGS

ROOT = Path(__file__).resolve().parent.parent


# the module of the function that time.sleep runs (a patched builtin wraps it)
SLEEP_MODULE = "getattr(time.sleep, '__wrapped__', time.sleep).__module__"


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "THREADPATCH_AUTOPATCH"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
    )


def _tp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run("-m", "threadpatch", *args, cwd=cwd)


# Run the CLI as the console script does (a wrapper file in bin/ calling main()).
CONSOLE_SCRIPT = """\
import sys
from threadpatch.__main__ import main
sys.argv[0] = "/some/venv/bin/threadpatch"
sys.exit(main())
"""


def _console(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    wrapper = tmp_path / "threadpatch-wrapper.py"
    wrapper.write_text(CONSOLE_SCRIPT)
    return _run(str(wrapper), *args, cwd=tmp_path)


def _after_prefix(line: str) -> str:
    """An error line without the program name before its first ': '."""
    return line.split(": ", 1)[1]


def test_c_runs_code_as_python_c_does() -> None:
    code = f"import sys, time; print(sys.argv, repr(sys.path[0]), __name__, {SLEEP_MODULE})"
    proc = _tp("-c", code, "a", "b c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "['-c', 'a', 'b c'] '' __main__ threadpatch._time\n"
    native = _run("-c", code.replace(SLEEP_MODULE, "'time'"), "a", "b c")
    assert native.stdout.split()[:4] == proc.stdout.split()[:4]


def test_c_exit_status_and_flags() -> None:
    assert _tp("-c", "raise SystemExit(5)").returncode == 5
    proc = _tp("--no-time", "-c", f"import time, threadpatch; print({SLEEP_MODULE})")
    assert proc.stdout.strip() == "time"


def test_version() -> None:
    proc = _tp("--version")
    assert proc.returncode == 0
    expected = f"threadpatch {threadpatch.__version__} ({threadpatch.implementation()})\n"
    assert proc.stdout == expected
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", threadpatch.__version__)


def test_missing_script_is_one_line_exit_2_as_python(tmp_path: Path) -> None:
    ours, native = _tp("nosuch.py", cwd=tmp_path), _run("nosuch.py", cwd=tmp_path)
    assert native.returncode == ours.returncode == 2
    assert ours.stderr.count("\n") == 1
    assert ours.stderr.startswith("python -m threadpatch: can't open file ")
    assert _after_prefix(ours.stderr) == _after_prefix(native.stderr)
    assert ours.stdout == ""


def test_missing_module_is_one_line_exit_1_as_python(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    for name in ("nosuchmodule", "pkg"):  # not found; a package without __main__
        ours, native = _tp("-m", name, cwd=tmp_path), _run("-m", name, cwd=tmp_path)
        assert native.returncode == ours.returncode == 1
        assert ours.stderr.count("\n") == 1, ours.stderr
        assert _after_prefix(ours.stderr) == _after_prefix(native.stderr)


def test_a_programs_import_error_keeps_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text("import no_such_dependency\n")
    ours, native = _tp("-m", "prog", cwd=tmp_path), _run("-m", "prog", cwd=tmp_path)
    assert ours.returncode == native.returncode == 1
    # Native python -m shows two frames of runpy first; we show none.
    runpy_lines = [line for line in native.stderr.splitlines(True) if "<frozen runpy>" in line]
    assert len(runpy_lines) == 2
    assert ours.stderr == "".join(
        line for line in native.stderr.splitlines(True) if line not in runpy_lines
    )
    assert "import no_such_dependency" in ours.stderr


FAILING = """\
def inner():
    raise {exc}

def outer():
    try:
        inner()
    except Exception as e:
        raise RuntimeError("outer") from e

outer()
"""


@pytest.mark.parametrize("exc", ["KeyError('boom')", "KeyboardInterrupt"])
def test_tracebacks_are_the_programs_own(tmp_path: Path, exc: str) -> None:
    # KeyboardInterrupt is not an Exception: it escapes `except Exception`, and ends the
    # process as a Ctrl-C does (killed by SIGINT), natively and under threadpatch.
    script = tmp_path / "fail.py"
    script.write_text(FAILING.format(exc=exc))
    native = _run(str(script), cwd=tmp_path)
    (tmp_path / "failmod.py").write_text(script.read_text())
    for ours in (_tp(str(script), cwd=tmp_path), _tp("-m", "failmod", cwd=tmp_path)):
        assert ours.returncode == native.returncode != 0
        assert ours.stderr.replace("failmod.py", "fail.py") == native.stderr
        assert "runpy" not in ours.stderr
        assert "threadpatch" not in ours.stderr


def test_c_tracebacks_and_syntax_errors_are_pythons() -> None:
    for code in ("def f():\n    1/0\nf()", "x = ("):
        ours, native = _tp("-c", code), _run("-c", code)
        assert ours.returncode == native.returncode == 1
        assert ours.stderr == native.stderr


def test_a_programs_own_excepthook_is_called(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.excepthook = lambda t, v, tb: print('hook', t.__name__, file=sys.stderr)\n"
        "1/0\n"
    )
    proc = _tp("-c", code)
    assert proc.returncode == 1
    assert proc.stderr == "hook ZeroDivisionError\n"


def test_console_script_is_declared_and_runs(tmp_path: Path) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"threadpatch": "threadpatch.__main__:main"}
    proc = _console(tmp_path, "-c", "import sys; print(sys.argv)")
    assert proc.stdout == "['-c']\n", proc.stderr
    assert _console(tmp_path).stdout.startswith("usage: threadpatch ")
    missing = _console(tmp_path, "nosuch.py")
    assert missing.returncode == 2
    assert missing.stderr.startswith("threadpatch: can't open file ")
    failing = tmp_path / "fail.py"
    failing.write_text("1/0\n")
    proc = _console(tmp_path, str(failing))
    assert proc.stderr == _run(str(failing)).stderr  # no frame of the wrapper either


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (["--bogus", "x.py"], ["-c"], ["-m"]):
        proc = _tp(*args)
        assert proc.returncode == 2, args
        assert "usage: python -m threadpatch" in proc.stderr
    assert _tp().returncode == 2  # nothing to run: the usage, on stdout
    help_ = _tp("--help")
    assert help_.returncode == 0
    assert help_.stdout.startswith("usage: python -m threadpatch")


def test_double_dash_runs_a_script_named_like_an_option(tmp_path: Path) -> None:
    (tmp_path / "monitor").write_text("print('the script named monitor')\n")
    proc = _tp("--", "monitor", cwd=tmp_path)
    assert proc.stdout == "the script named monitor\n", proc.stderr


def test_docstring_and_help_list_every_option() -> None:
    options = ["-m", "-c", "--", "--version", "-h", "--help", "--no-FLAG", "monitor PATH"]
    doc = cli.__doc__ or ""
    for option in options:
        assert f"``{option}" in doc or f"{option} " in doc, option
        assert option in cli.USAGE, option
    monitor_flags = ["--once", "--interval", "--dump", "--cancel"]
    for flag in monitor_flags:
        assert flag in doc
        assert flag in cli.USAGE
    help_text = _tp("--help").stdout
    for flag in FLAGS:
        assert flag in help_text, flag


_REPORT_FLAGS = (
    "import threadpatch; "
    "from threadpatch._patching import FLAGS; "
    "print(*(f for f in FLAGS if threadpatch.is_patched(f)), sep=',')"
)


@pytest.mark.parametrize(
    ("value", "on", "off"),
    [
        ("1", {"time", "os", "ssl"}, {"futures", "asyncio"}),
        ("yes", {"time", "ssl"}, {"futures"}),
        ("futures", {"time", "ssl", "futures"}, {"asyncio"}),
        ("futures, -ssl,no-dns", {"time", "futures"}, {"ssl", "dns", "asyncio"}),
        ("+asyncio", {"asyncio", "time"}, {"futures"}),
    ],
)
def test_autopatch_takes_a_list_of_flags(value: str, on: set[str], off: set[str]) -> None:
    env = {**os.environ, "THREADPATCH_AUTOPATCH": value}
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT_FLAGS], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    patched = set(proc.stdout.strip().split(","))
    assert on <= patched, proc.stdout
    assert not off & patched, proc.stdout
    assert proc.stderr == ""


def test_autopatch_warns_of_an_unknown_flag_and_applies_the_rest() -> None:
    env = {**os.environ, "THREADPATCH_AUTOPATCH": "futures,bogus"}
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT_FLAGS], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "futures" in proc.stdout.split(",")
    assert "ThreadpatchWarning: THREADPATCH_AUTOPATCH: unknown flag 'bogus'" in proc.stderr
