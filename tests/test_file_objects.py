"""File objects over pipes, FIFOs, terminals and sys.stdin under the io patch set.

For each kind of reader (``os.fdopen`` text/binary/unbuffered, a child's
``proc.stdout``, ``open(fifo)``, a pty, ``sys.stdin`` and ``input()``): a
thread blocked in a read is cancelled (``cancel(timeout=5)`` returns True),
a ``timeout_after`` deadline fires, a plain ``threading.Thread`` is
cancelled, and the line written afterwards is read by the next read (no
data lost).  Then the stdlib's semantics (non-blocking descriptors, closed
files, modes, ``readall``), what ``open`` gives a regular file (the C stack,
untouched), and child interpreters run by ``python -m threadpatch`` whose
stdin is a pipe: a thread reading it is cancelled, and Ctrl-C ends them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import threadpatch
from tests._helpers import wait_until
from threadpatch import _fileio

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LINE = b"a line\n"
NATIVE_OPEN = io.open  # the stdlib's, whatever is patched later


@dataclass
class Reader:
    """A read that blocks until ``feed(LINE)``, and what it then returns."""

    read: Callable[[], Any]
    feed: Callable[[bytes], None]
    expected: Any
    file: Any


@contextlib.contextmanager
def _pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        for fd in (r, w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _writer(w: int) -> Callable[[bytes], None]:
    def feed(data: bytes) -> None:
        os.write(w, data)

    return feed


@contextlib.contextmanager
def fdopen_text(tmp_path: Path) -> Iterator[Reader]:
    with _pipe() as (r, w), os.fdopen(os.dup(r)) as f:
        yield Reader(f.readline, _writer(w), LINE.decode(), f)


@contextlib.contextmanager
def fdopen_binary(tmp_path: Path) -> Iterator[Reader]:
    with _pipe() as (r, w), os.fdopen(os.dup(r), "rb") as f:
        yield Reader(f.readline, _writer(w), LINE, f)


@contextlib.contextmanager
def fdopen_unbuffered(tmp_path: Path) -> Iterator[Reader]:
    with _pipe() as (r, w), os.fdopen(os.dup(r), "rb", 0) as f:
        yield Reader(lambda: f.read(100), _writer(w), LINE, f)


@contextlib.contextmanager
def _child(text: bool) -> Iterator[Reader]:
    with subprocess.Popen(
        ["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, text=text
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout

        def feed(data: bytes) -> None:
            stdin.write(data.decode() if text else data)  # type: ignore[arg-type]
            stdin.flush()

        try:
            yield Reader(stdout.readline, feed, LINE.decode() if text else LINE, stdout)
        finally:
            stdin.close()


@contextlib.contextmanager
def popen_stdout_binary(tmp_path: Path) -> Iterator[Reader]:
    with _child(text=False) as reader:
        yield reader


@contextlib.contextmanager
def popen_stdout_text(tmp_path: Path) -> Iterator[Reader]:
    with _child(text=True) as reader:
        yield reader


@contextlib.contextmanager
def fifo_text(tmp_path: Path) -> Iterator[Reader]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    w = os.open(path, os.O_RDWR)  # never blocks on Linux, and is a writer: open() returns
    try:
        with open(path) as f:
            yield Reader(f.readline, _writer(w), LINE.decode(), f)
    finally:
        os.close(w)


@contextlib.contextmanager
def fifo_binary(tmp_path: Path) -> Iterator[Reader]:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    w = os.open(path, os.O_RDWR)
    try:
        with open(path, "rb", buffering=0) as f:
            yield Reader(lambda: f.read(100), _writer(w), LINE, f)
    finally:
        os.close(w)


@contextlib.contextmanager
def pty_text(tmp_path: Path) -> Iterator[Reader]:
    master, slave = os.openpty()
    try:
        with open(slave, closefd=False) as f:
            assert f.line_buffering  # a terminal, as io.open makes it

            def feed(data: bytes) -> None:
                os.write(master, data)

            yield Reader(f.readline, feed, LINE.decode(), f)
    finally:
        os.close(master)
        os.close(slave)


@contextlib.contextmanager
def _as_stdin(monkeypatch: pytest.MonkeyPatch, call: str) -> Iterator[Reader]:
    assert not threadpatch.is_patched("io")
    with _pipe() as (r, w):
        original = io.TextIOWrapper(io.BufferedReader(io.FileIO(os.dup(r), "r")), newline="\n")
        monkeypatch.setattr(sys, "stdin", original)
        monkeypatch.setattr(sys, "__stdin__", original)
        try:
            with threadpatch.patched():
                assert sys.stdin is not original
                assert type(sys.stdin.buffer.raw) is _fileio.FileIO
                read = sys.stdin.readline if call == "readline" else input
                yield Reader(read, _writer(w), "a line" + "\n" * (call == "readline"), sys.stdin)
            assert sys.stdin is original
        finally:
            original.close()


@contextlib.contextmanager
def stdin_readline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    with _as_stdin(monkeypatch, "readline") as reader:
        yield reader


@contextlib.contextmanager
def builtin_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    with _as_stdin(monkeypatch, "input") as reader:
        yield reader


READERS: dict[str, Callable[..., contextlib.AbstractContextManager[Reader]]] = {
    "fdopen-text": fdopen_text,
    "fdopen-binary": fdopen_binary,
    "fdopen-unbuffered": fdopen_unbuffered,
    "popen-stdout-binary": popen_stdout_binary,
    "popen-stdout-text": popen_stdout_text,
    "fifo-text": fifo_text,
    "fifo-binary-unbuffered": fifo_binary,
    "pty-text": pty_text,
    "stdin-readline": stdin_readline,
    "input": builtin_input,
}


@contextlib.contextmanager
def reader(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reader]:
    factory = READERS[name]
    if name in ("stdin-readline", "input"):
        with factory(tmp_path, monkeypatch) as r:
            yield r
    else:
        with threadpatch.patched(), factory(tmp_path) as r:
            assert isinstance(_raw(r.file), _fileio.FileIO)
            yield r


def _raw(f: Any) -> Any:
    while not isinstance(f, io.FileIO):
        f = f.buffer if isinstance(f, io.TextIOWrapper) else f.raw
    return f


@pytest.mark.parametrize("name", READERS)
def test_cancel_a_blocked_read(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with reader(name, tmp_path, monkeypatch) as r:
        thread = threadpatch.spawn(r.read)
        wait_all_threads_blocked(expected=1)
        assert thread.cancel(timeout=5)
        assert isinstance(thread.exception, threadpatch.ThreadCancelled)
        r.feed(LINE)
        assert r.read() == r.expected  # nothing lost, nothing left over


@pytest.mark.parametrize("name", READERS)
def test_deadline_fires(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with reader(name, tmp_path, monkeypatch) as r:

        def body() -> None:
            with threadpatch.timeout_after(0.05):
                r.read()

        thread = threadpatch.spawn(body)
        assert thread.wait(timeout=5)
        assert isinstance(thread.exception, threadpatch.ThreadTimeout)
        for _ in range(2):
            r.feed(LINE)
            assert r.read() == r.expected


@pytest.mark.parametrize("name", ["fdopen-text", "popen-stdout-binary", "stdin-readline"])
def test_cancel_a_plain_thread(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with reader(name, tmp_path, monkeypatch) as r:
        outcome: list[BaseException] = []

        def body() -> None:
            try:
                r.read()
            except threadpatch.ThreadCancelled as exc:
                outcome.append(exc)

        thread = threading.Thread(target=body)
        thread.start()
        wait_until(lambda: threadpatch.snapshot() and _blocked_in_read(thread))
        assert threadpatch.cancel(thread, timeout=5)
        assert len(outcome) == 1
        r.feed(LINE)
        assert r.read() == r.expected


def _blocked_in_read(thread: threading.Thread) -> bool:
    return any(
        info.native_id == thread.native_id and info.reason is not None
        for info in threadpatch.snapshot()
    )


def test_cancel_before_the_read_reads_nothing(tmp_path: Path) -> None:
    with reader("fdopen-binary", tmp_path, pytest.MonkeyPatch()) as r:
        r.feed(LINE)

        def body() -> bytes:
            threadpatch.cancel(threadpatch.current())  # pending: the read completes (no wait)
            return r.read()  # type: ignore[no-any-return]

        assert threadpatch.spawn(body).join(timeout=5) == LINE


def test_read_to_eof_is_cancellable(wait_all_threads_blocked: Callable[..., None]) -> None:
    with threadpatch.patched(), _pipe() as (r, w), os.fdopen(os.dup(r), "rb") as f:
        os.write(w, b"part")
        thread = threadpatch.spawn(f.read)
        wait_all_threads_blocked(expected=1)
        assert thread.cancel(timeout=5)
        os.write(w, b"rest")
        os.close(w)
        # The stdlib's read() keeps nothing of a read it was interrupted in (as
        # after a signal handler raised): what the pipe held later is read.
        assert f.read() in (b"rest", b"partrest")


# -- the stdlib's semantics -------------------------------------------------------


def test_regular_files_keep_the_stdlib_stack(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"x\n")
    with threadpatch.patched():
        for mode in ("r", "rb", "w", "a", "r+b"):
            with open(path, mode) as f:
                assert type(_raw(f)) is io.FileIO
        fd = os.open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb", 0) as f:
            assert type(f) is io.FileIO
        with open(os.devnull, "w") as f:
            assert type(_raw(f)) is io.FileIO  # a memory device never waits


def test_the_stack_is_what_io_open_builds(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    w = os.open(path, os.O_RDWR)
    try:
        native = [NATIVE_OPEN(path, m) for m in ("r", "rb", "w", "ab")]
        with threadpatch.patched():
            ours = [open(path, m) for m in ("r", "rb", "w", "ab")]  # noqa: SIM115
        for a, b in zip(native, ours, strict=True):
            assert type(a) is type(b)
            assert a.mode == b.mode
            assert a.name == b.name == str(path)
            assert type(_raw(b)) is _fileio.FileIO
            assert _raw(a).mode == _raw(b).mode
            assert _raw(a).closefd
            assert _raw(b).closefd
        assert native[0].encoding == ours[0].encoding
        assert native[0].line_buffering == ours[0].line_buffering
        for f in native + ours:
            f.close()
    finally:
        os.close(w)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("rt b",), {}),
        (("rw",), {}),
        (("rb",), {"encoding": "utf-8"}),
        (("r",), {"buffering": 0}),
        (("",), {}),
        ((1.5,), {}),
        (("r",), {"newline": "x"}),
    ],
)
def test_bad_arguments_raise_the_stdlib_errors(args: tuple[Any, ...], kwargs: Any) -> None:
    with _pipe() as (r, _w):
        with pytest.raises(Exception) as native:  # noqa: PT011 - compared below
            NATIVE_OPEN(r, *args, closefd=False, **kwargs)
        with threadpatch.patched(), pytest.raises(Exception) as ours:  # noqa: PT011
            open(r, *args, closefd=False, **kwargs)  # noqa: SIM115
    assert type(ours.value) is type(native.value)
    assert str(ours.value) == str(native.value)


def test_nonblocking_descriptor_returns_none() -> None:
    with _pipe() as (r, w):
        os.set_blocking(r, False)
        raw = _fileio.FileIO(r, "r", closefd=False)
        buffer = bytearray(10)
        assert raw.readinto(buffer) is None
        assert raw.read(10) is None
        assert raw.readall() is None
        os.write(w, b"abc")
        assert raw.readall() == b"abc"
        os.set_blocking(w, False)
        wraw = _fileio.FileIO(w, "w", closefd=False)
        total = 0
        while (n := wraw.write(b"y" * 65536)) is not None:
            total += n
        assert total > 0


def test_modes_and_closed_files() -> None:
    with _pipe() as (r, w):
        reader = _fileio.FileIO(r, "r", closefd=False)
        writer = _fileio.FileIO(w, "w", closefd=False)
        with pytest.raises(io.UnsupportedOperation, match="not open for reading"):
            writer.readinto(bytearray(1))
        with pytest.raises(io.UnsupportedOperation, match="not open for reading"):
            writer.read(1)
        with pytest.raises(io.UnsupportedOperation, match="not open for writing"):
            reader.write(b"x")
        with pytest.raises(TypeError):
            reader.readinto(b"read-only")
        assert writer.write(b"hello") == 5
        assert reader.read(0) == b""
        assert reader.read(2) == b"he"
        buffer = bytearray(10)
        assert reader.readinto(buffer) == 3
        assert buffer[:3] == b"llo"
        reader.close()
        for call in (reader.read, reader.readall, lambda: reader.readinto(bytearray(1))):
            with pytest.raises(ValueError, match="closed file"):
                call()
        writer.close()
        with pytest.raises(ValueError, match="closed file"):
            writer.write(b"x")


def test_readall_grows_and_stops_at_eof() -> None:
    data = os.urandom(300_000)
    with _pipe() as (r, w), _fileio.FileIO(r, "r", closefd=False) as raw:
        thread = threadpatch.spawn(raw.readall)
        with _fileio.FileIO(w, "w", closefd=True) as writer:
            writer.write(data)
        assert thread.join(timeout=10) == data
        assert raw.readall() == b""
        assert raw.read() == b""


def test_write_to_a_full_pipe_is_cancellable(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with threadpatch.patched(), _pipe() as (r, w):
        f = open(w, "wb", closefd=False)  # noqa: SIM115 - closed below
        thread = threadpatch.spawn(f.write, b"z" * 1_000_000)
        thread.wait(timeout=0)
        wait_all_threads_blocked(expected=1)
        assert thread.cancel(timeout=5)
        with contextlib.suppress(OSError):
            os.set_blocking(r, False)
        got = 0
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(r, 1 << 20):
                got += len(chunk)
        assert 0 < got <= 1_000_000
        os.set_blocking(w, False)  # what the writer still buffers is dropped, not waited for
        with contextlib.suppress(BlockingIOError):
            f.close()


def test_broken_pipe_is_the_stdlib_error() -> None:
    with threadpatch.patched(), _pipe() as (r, w):
        os.close(r)
        previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        try:
            raw = _fileio.FileIO(w, "w", closefd=False)
            with pytest.raises(BrokenPipeError) as excinfo:
                raw.write(b"x")
            assert excinfo.value.errno == errno.EPIPE
        finally:
            signal.signal(signal.SIGPIPE, previous)


def test_stdin_left_alone_when_not_the_interpreters(monkeypatch: pytest.MonkeyPatch) -> None:
    with _pipe() as (r, _w):
        mine = io.TextIOWrapper(io.FileIO(os.dup(r), "r"))
        monkeypatch.setattr(sys, "stdin", mine)
        try:
            with threadpatch.patched():
                assert sys.stdin is mine
        finally:
            mine.close()


def test_stdin_replaced_by_someone_else_is_left_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with _pipe() as (r, _w):
        original = io.TextIOWrapper(io.BufferedReader(io.FileIO(os.dup(r), "r")), newline="\n")
        monkeypatch.setattr(sys, "stdin", original)
        monkeypatch.setattr(sys, "__stdin__", original)
        other = io.StringIO()
        try:
            with pytest.warns(threadpatch.ThreadpatchWarning, match="sys.stdin"):
                with threadpatch.patched():
                    sys.stdin = other
            assert sys.stdin is other
        finally:
            original.close()


# -- child interpreters -------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, threading, threadpatch

    lines = []
    def reader():
        try:
            lines.append(sys.stdin.readline())
            lines.append(sys.stdin.readline())
        except threadpatch.ThreadCancelled:
            lines.append("cancelled")

    thread = threading.Thread(target=reader)
    thread.start()
    print("READY", flush=True)
    while len(lines) < 1:
        threadpatch.sleep(0.001)
    while not any(i.native_id == thread.native_id and i.reason for i in threadpatch.snapshot()):
        threadpatch.sleep(0.001)
    print(threadpatch.cancel(thread, timeout=5), lines, flush=True)
    print(repr(sys.stdin.readline()), flush=True)
    """
)


def test_child_cancels_a_thread_reading_stdin(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadpatch", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    with proc:
        assert proc.stdout.readline() == "READY\n"
        proc.stdin.write("first\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "True ['first\\n', 'cancelled']\n"
        proc.stdin.write("after\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "'after\\n'\n"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


_CTRL_C = textwrap.dedent(
    """
    import sys, threading
    thread = threading.Thread(target=sys.stdin.readline)  # not a daemon
    thread.start()
    print("READY", flush=True)
    thread.join()
    """
)


def test_ctrl_c_ends_a_program_whose_thread_reads_stdin(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CTRL_C)
    proc = subprocess.Popen(
        [sys.executable, "-m", "threadpatch", str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "READY\n"
        wait_until(lambda: _child_thread_sleeps(proc.pid), message="the reader blocked")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGINT, err
        assert "KeyboardInterrupt" in err
        assert "still" not in err  # no thread named as stuck
    finally:
        proc.kill()
        proc.wait()


def _child_thread_sleeps(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return len(tasks) >= 2


def test_communicate_after_a_partial_readline(
    wait_all_threads_blocked: Callable[..., None],
) -> None:
    with threadpatch.patched():
        proc = subprocess.Popen(
            ["sh", "-c", "echo one; echo two; exec sleep 60"], stdout=subprocess.PIPE
        )
    with proc:
        assert proc.stdout is not None
        assert isinstance(proc.stdout.raw, _fileio.FileIO)  # type: ignore[attr-defined]
        assert proc.stdout.readline() == b"one\n"  # "two" may be in the buffer now
        thread = threadpatch.spawn(proc.communicate)
        wait_all_threads_blocked(expected=1)
        assert thread.cancel(timeout=5)
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        # What the cancelled single-pipe communicate() had read is not kept
        # (threadpatch._subprocess._read_one_pipe collects it locally).
        assert out in (b"", b"two\n")
        assert proc.returncode == -signal.SIGKILL


_CPYTHON_FILEIO = textwrap.dedent(
    """
    import _io, sys, unittest
    from threadpatch import _fileio
    _io.FileIO = _fileio.FileIO  # before test.test_fileio binds it
    import test.test_fileio as suite
    assert suite.CAutoFileTests.FileIO is _fileio.FileIO
    loader = unittest.TestLoader()
    tests = unittest.TestSuite(
        loader.loadTestsFromTestCase(case) for case in (suite.CAutoFileTests, suite.COtherFileTests)
    )
    result = unittest.TextTestRunner(verbosity=0).run(tests)
    sys.exit(not result.wasSuccessful())
    """
)


def test_cpython_test_fileio_passes_with_our_fileio(tmp_path: Path) -> None:
    script = tmp_path / "fileio_suite.py"
    script.write_text(_CPYTHON_FILEIO)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # the suite's temporary files
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
