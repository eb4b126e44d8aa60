"""``python -m threadpatch [options] script.py [args]`` / ``-m module [args]``.

Runs a program with the standard library patched from its first line, as if
it had been started with ``python script.py`` / ``python -m module``:
``sys.argv``, ``sys.path[0]``, ``__name__ == "__main__"`` and the exit code
are the program's own.

Options (before the program): ``--no-<flag>`` leaves one patch set out,
``--<flag>`` puts one in (for the sets off by default: ``--futures``; flags:
see :data:`threadpatch._patching.FLAGS`).

``python -m threadpatch monitor PATH ...`` is the client of the live view
instead (see :mod:`threadpatch._monitor`); a script that is literally named
``monitor`` runs with ``python -m threadpatch -- monitor``.
"""

from __future__ import annotations

import os
import sys

from ._patching import FLAGS, OFF_BY_DEFAULT, patch_all

USAGE = """\
usage: python -m threadpatch [--no-FLAG | --FLAG ...] script.py [args ...]
       python -m threadpatch [--no-FLAG | --FLAG ...] -m module [args ...]
       python -m threadpatch monitor PATH [--once] [--cancel NAME_OR_IDENT] ...

Run a Python program with the standard library patched by threadpatch, so that
its blocking calls (sleep, locks, queues, sockets, ssl, select, DNS, joins) are
cancellation points.  `monitor PATH` shows the threads of a process started
with THREADPATCH_MONITOR=PATH (see `python -m threadpatch monitor --help`).

flags: {flags}
(on by default but {off}: --{off} turns it on, e.g. Future.cancel() then stops running work)
""".format(flags=", ".join(FLAGS), off=", ".join(sorted(OFF_BY_DEFAULT)))


def _parse(argv: list[str]) -> tuple[dict[str, bool], str | None, str | None, list[str]]:
    """Split ``argv`` into patch flags, a script or a module, and the program's args."""
    flags: dict[str, bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return flags, None, None, []
        if arg == "-m":
            if i + 1 >= len(argv):
                raise SystemExit("python -m threadpatch: -m needs a module name")
            return flags, None, argv[i + 1], argv[i + 2 :]
        if arg.startswith("--no-") and arg[5:] in FLAGS:
            flags[arg[5:]] = False
        elif arg.startswith("--") and arg[2:] in FLAGS:
            flags[arg[2:]] = True
        elif arg == "--":
            i += 1
            break
        elif arg.startswith("-"):
            raise SystemExit(f"python -m threadpatch: unknown option {arg!r}\n\n{USAGE}")
        else:
            break
        i += 1
    if i >= len(argv):
        return flags, None, None, []
    return flags, argv[i], None, argv[i + 1 :]


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["monitor"]:
        from ._monitor import main as monitor

        raise SystemExit(monitor(words[1:]))
    flags, script, module, args = _parse(words)
    if script is None and module is None:
        print(USAGE, end="")
        raise SystemExit(0 if argv or sys.argv[1:] else 2)
    patch_all(**flags)
    # runpy only after patching: whatever it imports then sees the patched names.
    import runpy

    if module is not None:
        sys.argv[:] = [module, *args]  # run_module replaces argv[0] by the file name
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        assert script is not None
        sys.argv[:] = [script, *args]
        # As `python script.py`: the script's directory comes first on sys.path
        # (python -m put the current directory there).
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
