"""File objects under the io patch set: open() of a regular file, readline of pipes, vs the stdlib.

Each round runs the workload either inside ``threadpatch.patched()`` or
unpatched, alternating, so the ratio is of the same calls on the same
machine.  ``open()+close()`` of a regular file must stay the stdlib's speed
(the patched ``open`` adds an opener and one ``fstat``).  The readline rows
write one line into a pipe and read it back through a file object made by
``open(fd)`` (so every readline makes one raw read, as a line-at-a-time
reader of a pipe does): patched, the raw read is threadpatch's ``FileIO``
(one ``preadv2(RWF_NOWAIT)``), unpatched the C ``FileIO``'s ``read``.  The
``sys.stdin``-like row is the text stack the io set puts in place of
``sys.stdin`` (``TextIOWrapper(BufferedReader(FileIO(fd, closefd=False)))``).
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import TYPE_CHECKING

import threadpatch
from benchmarks._harness import Table, ratio_row
from threadpatch import _fileio

if TYPE_CHECKING:
    from collections.abc import Callable

LINE = b"a line of some forty bytes, as logs are\n"


def _open_close(path: str, mode: str, patch: bool) -> Callable[[int], None]:
    def body(n: int) -> None:
        for _ in range(n):
            open(path, mode).close()

    def run(n: int) -> None:
        if patch:
            with threadpatch.patched():
                body(n)
        else:
            body(n)

    return run


def _pipe_readline(mode: str, patch: bool) -> Callable[[int], None]:
    def run(n: int) -> None:
        r, w = os.pipe()
        try:
            if patch:
                with threadpatch.patched():
                    f = open(r, mode, closefd=False)  # noqa: SIM115 - closed below
            else:
                f = open(r, mode, closefd=False)  # noqa: SIM115
            with f:
                readline, write = f.readline, os.write
                for _ in range(n):
                    write(w, LINE)
                    readline()
        finally:
            os.close(r)
            os.close(w)

    return run


def _stdin_like(patch: bool) -> Callable[[int], None]:
    raw_class = _fileio.FileIO if patch else io.FileIO

    def run(n: int) -> None:
        r, w = os.pipe()
        try:
            raw = raw_class(r, "r", closefd=False)
            with io.TextIOWrapper(io.BufferedReader(raw), "utf-8", newline="\n") as f:
                readline, write = f.readline, os.write
                for _ in range(n):
                    write(w, LINE)
                    readline()
        finally:
            os.close(r)
            os.close(w)

    return run


def run() -> Table:
    table = Table("file objects under the io patch set (ratio to the stdlib)")
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(b"x" * 1000)
        tmp.flush()
        for mode in ("rb", "r"):
            ratio_row(
                table,
                f"open(regular file, {mode!r}) + close()",
                _open_close(tmp.name, mode, True),
                _open_close(tmp.name, mode, False),
                5000,
                1.05,
                rounds=9,
            )
    for mode in ("rb", "r"):
        ratio_row(
            table,
            f"write + readline of a pipe, open(fd, {mode!r})",
            _pipe_readline(mode, True),
            _pipe_readline(mode, False),
            20000,
            1.5,
        )
    ratio_row(
        table,
        "write + readline, sys.stdin-like TextIOWrapper",
        _stdin_like(True),
        _stdin_like(False),
        20000,
        1.5,
    )
    return table


if __name__ == "__main__":
    run()
