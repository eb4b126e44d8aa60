"""``python -m threadpatch`` (or the ``threadpatch`` command): run a program patched.

Runs a program with the standard library patched from its first line, as if
it had been started with ``python script.py``, ``python -m module`` or
``python -c CODE``: ``sys.argv``, ``sys.path[0]``, ``__name__ == "__main__"``,
the exit status and the traceback of an uncaught exception are the program's
own (no runpy or threadpatch frames in it).

Usage::

    python -m threadpatch [options] script.py [args ...]
    python -m threadpatch [options] -m module [args ...]
    python -m threadpatch [options] -c CODE [args ...]
    python -m threadpatch monitor PATH [--once] [--interval S] [--dump] [--cancel NAME_OR_IDENT]

``threadpatch ...`` (the console script) is the same as ``python -m threadpatch ...``.

Options, before the program:

``--no-FLAG``
    Leave one patch set out, e.g. ``--no-ssl`` (the flags are those of
    :func:`threadpatch.patch_all`, listed by ``--help``).
``--FLAG``
    Turn on a patch set that is off by default, e.g. ``--asyncio`` (listed
    by ``--help``).
``-m module``
    Run a module as ``python -m module`` does.
``-c CODE``
    Run the code as ``python -c CODE`` does (``sys.argv[0] == "-c"``).
``--``
    End of options: what follows is the script, even if it starts with ``-``
    or is named ``monitor``.
``--version``
    Print threadpatch's version and which implementation of its fast paths
    runs (``c`` or ``python``), and exit.
``-h``, ``--help``
    Print the usage and exit.

``monitor PATH`` is the client of the live view instead: it shows the threads
of a process started with ``THREADPATCH_MONITOR=PATH`` (see
``python -m threadpatch monitor --help`` and :mod:`threadpatch._monitor`).

Errors are Python's: a script that cannot be opened is one line on stderr and
exit status 2, a module that cannot be found one line and status 1, an unknown
option the usage and status 2.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NamedTuple

from ._patching import FLAGS, patch_all
from ._version import __version__
from .patches import OFF_BY_DEFAULT

if TYPE_CHECKING:
    from types import TracebackType

USAGE = """\
usage: {prog} [--no-FLAG | --FLAG ...] script.py [args ...]
       {prog} [--no-FLAG | --FLAG ...] -m module [args ...]
       {prog} [--no-FLAG | --FLAG ...] -c CODE [args ...]
       {prog} monitor PATH [--once] [--interval S] [--dump] [--cancel NAME_OR_IDENT]
       {prog} --version

Run a Python program with the standard library patched by threadpatch, so that
its blocking calls (sleep, locks, queues, sockets, ssl, select, DNS, joins) are
cancellation points.  `monitor PATH` shows the threads of a process started
with THREADPATCH_MONITOR=PATH (see `{prog} monitor --help`).

options:
  --no-FLAG     leave one patch set out; FLAG is one of:
{flags}
  --FLAG        turn on a patch set that is off by default; FLAG is one of:
{off}
  -m module     run a library module as a script, as python -m does
  -c CODE       run CODE as python -c does
  --            end of options (the next word is the script)
  --version     print the version and the implementation (c or python), and exit
  -h, --help    print this help and exit
"""


class _Program(NamedTuple):
    flags: dict[str, bool]
    kind: str  # "script", "module", "code", or "" for none
    target: str
    args: list[str]


def _invoked_as() -> str:
    """How this command was invoked: ``python -m threadpatch`` or ``threadpatch``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m threadpatch" if name in ("", "__main__.py", "-m", "-c") else name


_prog_name = ""  # set by main(), before sys.argv becomes the program's


def _prog() -> str:
    """The command's name, for its messages."""
    return _prog_name or _invoked_as()


def _usage() -> str:
    import textwrap

    indent = " " * 16
    flags = textwrap.fill(", ".join(FLAGS), 79, initial_indent=indent, subsequent_indent=indent)
    off = textwrap.fill(
        ", ".join(f for f in FLAGS if f in OFF_BY_DEFAULT),
        79,
        initial_indent=indent,
        subsequent_indent=indent,
    )
    return USAGE.format(prog=_prog(), flags=flags, off=off)


def _usage_error(message: str) -> SystemExit:
    print(f"{_prog()}: {message}\n\n{_usage()}", end="", file=sys.stderr)
    return SystemExit(2)


def _parse(argv: list[str]) -> _Program:
    """Split ``argv`` into patch flags, what to run, and the program's arguments."""
    flags: dict[str, bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return _Program(flags, "help", "", [])
        if arg == "--version":
            return _Program(flags, "version", "", [])
        if arg in ("-m", "-c"):
            if i + 1 >= len(argv):
                raise _usage_error(f"argument expected for the {arg} option")
            kind = "module" if arg == "-m" else "code"
            return _Program(flags, kind, argv[i + 1], argv[i + 2 :])
        if arg.startswith("--no-") and arg[5:] in FLAGS:
            flags[arg[5:]] = False
        elif arg.startswith("--") and arg[2:] in FLAGS:
            flags[arg[2:]] = True
        elif arg == "--":
            i += 1
            break
        elif arg.startswith("-"):
            raise _usage_error(f"unknown option {arg}")
        else:
            break
        i += 1
    if i >= len(argv):
        return _Program(flags, "", "", [])
    return _Program(flags, "script", argv[i], argv[i + 1 :])


# -- tracebacks without our frames --------------------------------------------------------


def _is_launcher(filename: str) -> bool:
    """Frames that run the program rather than belong to it: runpy's and this module's."""
    return filename in (__file__, "<frozen runpy>") or os.path.basename(filename) == "runpy.py"


def _program_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from the program's first frame on, as ``python script.py`` would show it.

    The frames before it are the interpreter's start-up (``<frozen runpy>`` for
    ``python -m threadpatch``, the console script's wrapper), :func:`main`, and
    runpy's ``run_path``/``run_module``.  If this module's frame is not in ``tb``
    (the exception did not come through :func:`main`), ``tb`` is left whole.
    """
    t = tb
    while t is not None and t.tb_frame.f_code.co_filename != __file__:
        t = t.tb_next
    if t is None:
        return tb
    while t is not None and _is_launcher(t.tb_frame.f_code.co_filename):
        t = t.tb_next
    return t


def _install_excepthook() -> None:
    """Show the program's uncaught exception without the frames that launched it.

    A hook, not a ``try``/``except`` around the program: the exception must
    still leave the interpreter as it would natively (a ``KeyboardInterrupt``
    then ends the process as a Ctrl-C does, and ``sys.last_exc`` is set).
    """
    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> object:
        tb = _program_frames(tb)
        # The interpreter's hook prints exc.__traceback__ (not its tb argument) when set.
        return previous(exc_type, exc.with_traceback(tb), tb)

    sys.excepthook = excepthook


# -- running the program ------------------------------------------------------------------


def _run_script(script: str, args: list[str]) -> None:
    import runpy

    if not os.path.isdir(script):  # a directory or a zip file with __main__.py runs too
        try:
            with open(script, "rb"):
                pass
        except OSError as exc:
            # As `python nosuch.py`: one line, status 2.
            print(
                f"{_prog()}: can't open file {os.path.abspath(script)!r}:"
                f" [Errno {exc.errno}] {exc.strerror}",
                file=sys.stderr,
            )
            raise SystemExit(2) from None
    sys.argv[:] = [script, *args]
    # As `python script.py`: the script's directory comes first on sys.path
    # (python -m put the current directory there).
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


def _run_module(module: str, args: list[str]) -> None:
    import runpy

    sys.argv[:] = [module, *args]  # run_module replaces argv[0] by the file name
    sys.path[0] = os.getcwd()  # as python -m (the console script put its bin/ there)
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ImportError as exc:
        # runpy's own "No module named ..." (raised by runpy, before the module runs),
        # not an ImportError of the program: one line and status 1, as python -m.
        last = exc.__traceback__
        while last is not None and last.tb_next is not None:
            last = last.tb_next
        if last is None or not _is_launcher(last.tb_frame.f_code.co_filename):
            raise
        raise SystemExit(f"{_prog()}: {exc}") from None


def _run_code(code: str, args: list[str]) -> None:
    import types

    sys.argv[:] = ["-c", *args]
    sys.path[0] = ""  # as python -c: the current directory, by an empty entry
    main_module = types.ModuleType("__main__")
    main_module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main_module
    if sys.version_info >= (3, 13):
        # As python -c from 3.13 on: tracebacks show the lines of the code.
        import linecache

        linecache.cache["<string>"] = (len(code), None, code.splitlines(True), "<string>")
    exec(compile(code, "<string>", "exec"), main_module.__dict__)


def main(argv: list[str] | None = None) -> None:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); see the module docstring."""
    global _prog_name
    _prog_name = _invoked_as()
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["monitor"]:
        from ._monitor import main as monitor

        raise SystemExit(monitor(words[1:]))
    program = _parse(words)
    if program.kind == "version":
        from ._accel import implementation

        print(f"threadpatch {__version__} ({implementation()})")
        return
    if program.kind in ("help", ""):
        print(_usage(), end="")
        raise SystemExit(0 if program.kind == "help" else 2)
    patch_all(**program.flags)
    _install_excepthook()
    # runpy only after patching: whatever it imports then sees the patched names.
    if program.kind == "module":
        _run_module(program.target, program.args)
    elif program.kind == "code":
        _run_code(program.target, program.args)
    else:
        _run_script(program.target, program.args)


if __name__ == "__main__":
    main()
