"""Packaging: what ``pip install threadpatch`` gives a user.

The sdist and the wheel are built from a copy of this tree and installed
into fresh virtual environments, as a user would (dependencies from the
package index), with a C compiler and without one (``CC=false``: the
accelerator cannot be built, the install still succeeds, and threadpatch runs
its pure-Python code and says so once).  That part runs on every Python of
the suite except in the pure-Python leg (``THREADPATCH_PURE_PYTHON``: the
install it checks is the same there), about 25 s a Python; the rest runs
everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

import threadpatch

ROOT = Path(__file__).resolve().parent.parent
# Whether this run builds and installs: not in the pure-Python leg (the child
# processes drop THREADPATCH_* variables, so it would repeat that Python's run).
BUILDS = os.environ.get("THREADPATCH_PURE_PYTHON", "").strip().lower() in (
    "",
    "0",
    "false",
    "no",
    "off",
)
LIMIT = 600  # seconds for one build or install (the index may be slow)


def _child(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("THREADPATCH_")}
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
    )


# -- on every Python: what import reports --------------------------------------------------


def test_implementation_is_public_and_matches_the_locks() -> None:
    from threadpatch import _locks

    assert threadpatch.implementation() in ("c", "python")
    assert threadpatch.implementation() == _locks.IMPLEMENTATION
    if not BUILDS:  # the pure-Python leg
        assert threadpatch.implementation() == "python"


def test_pure_python_on_request_is_silent() -> None:
    proc = _child(
        """
        import warnings
        warnings.simplefilter("error")
        import threadpatch
        print(threadpatch.implementation())
        """,
        env={"THREADPATCH_PURE_PYTHON": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "python\n"
    assert proc.stderr == ""


def test_a_missing_accelerator_warns_once() -> None:
    # sys.modules[name] = None makes the import fail as a missing extension does.
    proc = _child(
        """
        import sys, warnings
        sys.modules["threadpatch._speedups"] = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import threadpatch
            import importlib, threadpatch._sync
            importlib.import_module("threadpatch._socket")
        print([type(w.message).__name__ for w in caught])
        print(threadpatch.implementation())
        assert issubclass(threadpatch.AcceleratorWarning, RuntimeWarning)
        print(caught[0].message)
        """
    )
    assert proc.returncode == 0, proc.stderr
    names, impl, message = proc.stdout.splitlines()
    assert names == "['AcceleratorWarning']"
    assert impl == "python"
    assert "THREADPATCH_PURE_PYTHON=1" in message
    assert "C compiler" in message


def test_other_platforms_get_an_import_error() -> None:
    proc = _child(
        """
        import sys
        sys.platform = "darwin"
        try:
            import threadpatch
        except ImportError as e:
            print(e)
        else:
            raise SystemExit("imported")
        """
    )
    assert proc.returncode == 0, proc.stderr
    expected = "threadpatch supports Linux only (it waits on eventfd and poll); this is 'darwin'"
    assert proc.stdout == expected + "\n"


def test_one_version_everywhere() -> None:
    from threadpatch import _version

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "threadpatch._version.__version__"
    }
    assert threadpatch.__version__ is _version.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{threadpatch.__version__}]" in changelog


def test_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "Operating System :: POSIX :: Linux" in project["classifiers"]
    for minor in (11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in project["classifiers"]
    assert set(project["urls"]) >= {"Homepage", "Source", "Issues", "Changelog"}
    assert project["authors"]


# -- on one Python: build, install, run -------------------------------------------------

needs_packaging_python = pytest.mark.skipif(
    not BUILDS, reason="the pure-Python leg: the build and installs run on the C legs"
)

_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "site",
    "dist",
    "build",
    "*.egg-info",
    "__pycache__",
    "*.so",
    ".coverage*",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "conformance-results",
    ".results",
)


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("THREADPATCH_", "COVERAGE"))}
    full.pop("PYTHONPATH", None)
    full["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    full.update(env)
    # cwd "/": python -c puts the current directory first on sys.path, and this tree's
    # threadpatch must not be the one imported.
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=LIMIT, env=full, cwd="/")
    assert proc.returncode == 0, f"{argv}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sdist, and the wheel built from it (as pip would), from a copy of this tree."""
    if not BUILDS:
        pytest.skip("the pure-Python leg")
    base = tmp_path_factory.mktemp("packaging")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_IGNORE)
    out = base / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(src)])
    (sdist,) = out.glob("threadpatch-*.tar.gz")
    (wheel,) = out.glob("threadpatch-*.whl")
    _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])
    return {"sdist": sdist, "wheel": wheel, "base": base}


def _fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


SMOKE = """\
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import threadpatch
print(threadpatch.__version__, threadpatch.implementation(),
      [type(w.message).__name__ for w in caught])
started = threadpatch.Event()
def worker():
    started.set()
    threadpatch.sleep(3600)
t = threadpatch.spawn(worker)
started.wait(10)
assert t.cancel(timeout=10) and t.cancelled
assert threadpatch.timeout_after(5, sum, [1, 2]) == 3
"""


def _check_install(python: Path, expect: str) -> None:
    out = _run([str(python), "-c", SMOKE]).stdout.strip().split(maxsplit=2)
    warned = "['AcceleratorWarning']" if expect == "python" else "[]"
    assert out == [threadpatch.__version__, expect, warned]
    script = python.parent / "threadpatch"
    version = _run([str(script), "--version"]).stdout
    assert version == f"threadpatch {threadpatch.__version__} ({expect})\n"
    autopatch = _run(
        [
            str(python),
            "-c",
            "import time; print(getattr(time.sleep, '__wrapped__', time.sleep).__module__)",
        ],
        THREADPATCH_AUTOPATCH="1",
    )
    assert autopatch.stdout == "threadpatch._time\n"  # the .pth was installed
    code = "import threadpatch, pathlib; print(pathlib.Path(threadpatch.__file__).parent)"
    package = Path(_run([str(python), "-c", code]).stdout.strip())
    assert package.parent != ROOT  # the installed copy, not this tree
    assert (package / "py.typed").exists()
    assert package.name == "threadpatch"
    assert "site-packages" in package.parts


@needs_packaging_python
def test_sdist_ships_the_library_and_no_tests(artifacts: dict[str, Path]) -> None:
    with tarfile.open(artifacts["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "setup.py"} <= names
    assert "threadpatch-autopatch.pth" in names
    assert {"threadpatch/_speedups.c", "threadpatch/_speedups.h", "threadpatch/py.typed"} <= names
    assert not [n for n in names if n.split("/")[0] in ("tests", "integration", "examples")]
    assert "conftest.py" not in names
    with zipfile.ZipFile(artifacts["wheel"]) as whl:
        wnames = set(whl.namelist())
    assert "threadpatch-autopatch.pth" in wnames
    assert any(n.startswith("threadpatch/_speedups") and n.endswith(".so") for n in wnames)
    assert not [n for n in wnames if n.startswith(("tests/", "integration/"))]
    meta = next(n for n in wnames if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(artifacts["wheel"]).read(meta).decode()
    assert "License-Expression: MIT" in text


@needs_packaging_python
def test_wheel_installs_into_a_fresh_venv(artifacts: dict[str, Path]) -> None:
    python = _fresh_venv(artifacts["base"] / "venv-wheel")
    _run([str(python), "-m", "pip", "install", "-q", str(artifacts["wheel"])])
    _check_install(python, "c")


@needs_packaging_python
@pytest.mark.parametrize("compiler", [True, False], ids=["with-cc", "without-cc"])
def test_sdist_installs_into_a_fresh_venv(artifacts: dict[str, Path], compiler: bool) -> None:
    python = _fresh_venv(artifacts["base"] / f"venv-sdist-{compiler}")
    argv = [str(python), "-m", "pip", "install", "-q", str(artifacts["sdist"])]
    env = {}
    if not compiler:
        env["CC"] = "false"  # no C compiler: the extension cannot build
        argv.append("--no-cache-dir")  # nor a wheel built earlier with one be reused
    _run(argv, **env)
    _check_install(python, "c" if compiler else "python")
