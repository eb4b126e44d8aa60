"""The live view: THREADPATCH_MONITOR serves snapshots; `python -m threadpatch monitor`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

from threadpatch import _monitor

if TYPE_CHECKING:
    from pathlib import Path

APP = """
import sys, time, threadpatch
from threadpatch import _monitor

q = threadpatch.Queue()
ev = threadpatch.Event()
threads = [threadpatch.spawn(q.get, name="getter"), threadpatch.spawn(ev.wait, name="waiter")]
for _ in range(10000):
    kinds = {t.name: t.kind for t in threadpatch.snapshot(stacks=False)}
    if kinds.get("getter") == "queue.get" and kinds.get("waiter") == "event":
        break
    time.sleep(0.001)
print("READY", _monitor.serving(), " ".join(str(t.ident) for t in threads), flush=True)
for t in threads:
    t.wait(timeout=30)
print("ENDED", *[t.cancelled for t in threads], flush=True)
"""


def child_env(path: Path | str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    env.pop("THREADPATCH_AUTOPATCH", None)
    env.pop(_monitor.ENVIRONMENT, None)
    if path is not None:
        env[_monitor.ENVIRONMENT] = str(path)
    return env


def start(tmp_path: Path, code: str, path: Path | str | None) -> subprocess.Popen[str]:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(path),
    )


def monitor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadpatch", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=child_env(None),
    )


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=30)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs (a failed test) and reap it."""
    if proc.returncode is None:
        proc.kill()
        proc.communicate(timeout=10)


def test_monitor_shows_and_cancels(tmp_path: Path) -> None:
    sock = tmp_path / "m.sock"
    proc = start(tmp_path, APP, sock)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[:2] == ["READY", str(sock)], ready
        getter, waiter = ready[2:]
        assert sock.exists()
        assert oct(sock.stat().st_mode & 0o777) == oct(0o600)

        once = monitor(str(sock), "--once")
        assert once.returncode == 0, once.stderr
        lines = once.stdout.splitlines()
        # The serving thread is not among them: the two workers and the main thread.
        assert re.match(rf"pid {proc.pid} \(.*app\.py\): 3 thread\(s\), ", lines[0]), lines
        assert lines[1].split() == ["NAME", "IDENT", "STATE", "FOR", "DEADLINE", "WAITING", "FOR"]
        rows = {line.split()[0]: line for line in lines[2:]}
        assert set(rows) == {"getter", "waiter", "MainThread"}
        assert rows["getter"].split()[1:3] == [getter, "blocked"]
        assert rows["getter"].endswith("Queue.get on <Queue qsize=0 maxsize=0>")
        assert "Event.wait on <threadpatch.Event at 0x" in rows["waiter"]
        assert "join of thread 'getter'" in rows["MainThread"]

        live = monitor(str(sock), "--interval", "0.01", "--count", "3")
        assert live.returncode == 0, live.stderr
        assert live.stdout.count("NAME  ") == 3

        dump = monitor(str(sock), "--dump")
        assert "Thread 'getter' (ident " in dump.stdout
        assert "in Queue.get on <Queue qsize=0 maxsize=0>" in dump.stdout

        nobody = monitor(str(sock), "--cancel", "nobody")
        assert nobody.returncode == 1
        assert "cannot cancel 'nobody': no thread named 'nobody'" in nobody.stderr

        by_name = monitor(str(sock), "--cancel", "getter")
        assert by_name.stdout == f"cancelled 'getter' (ident {getter})\n", by_name.stderr
        by_ident = monitor(str(sock), "--cancel", waiter)
        assert by_ident.stdout == f"cancelled 'waiter' (ident {waiter})\n", by_ident.stderr
        out, err = finish(proc)
    finally:
        stop(proc)
    assert out == "ENDED True True\n", err
    assert proc.returncode == 0, err
    assert not sock.exists()  # removed at exit


def test_protocol_errors_are_replies(tmp_path: Path) -> None:
    sock = tmp_path / "m.sock"
    proc = start(tmp_path, APP, sock)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("READY")
        assert _monitor.request(str(sock), {"cmd": "nope"}) == {
            "ok": False,
            "error": "unknown command 'nope'",
        }
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(10)
            raw.connect(str(sock))
            raw.sendall(b"not json\n")
            reply: dict[str, Any] = json.loads(raw.makefile().readline())
        assert reply["ok"] is False
        assert reply["error"].startswith("JSONDecodeError")
        snap = _monitor.request(str(sock), {"cmd": "snapshot", "stacks": True})
        getter = next(t for t in snap["threads"] if t["name"] == "getter")  # type: ignore[union-attr]
        assert any("threadpatch" not in frame for frame in getter["stack"])
        assert snap["deadlocks"] == []
        for name in ("getter", "waiter"):
            assert _monitor.request(str(sock), {"cmd": "cancel", "target": name})["ok"] is True
        out, err = finish(proc)
    finally:
        stop(proc)
    assert out.endswith("ENDED True True\n"), err


def test_nothing_is_served_without_the_variable(tmp_path: Path) -> None:
    code = """
        import os
        def sockets():
            fds = os.listdir("/proc/self/fd")
            return sum(os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
                       for fd in fds if os.path.exists(f"/proc/self/fd/{fd}"))
        before = sockets()
        import threadpatch, threadpatch._monitor as m
        threadpatch.snapshot()
        print(m.serving(), sockets() - before, flush=True)
    """
    proc = start(tmp_path, code, None)
    out, err = finish(proc)
    assert (out, proc.returncode) == ("None 0\n", 0), err


def test_serving_thread_is_native_and_exit_is_quick(tmp_path: Path) -> None:
    sock = tmp_path / "m-%p.sock"
    code = """
        import sys, threading, threadpatch
        from threadpatch import _monitor
        path = _monitor.serving()
        threadpatch.sleep(0)  # the main thread is known to threadpatch now
        reply = _monitor.request(path, {"cmd": "snapshot"})  # the server runs
        # Two OS threads (main, server); threading and threadpatch see only main.
        print(path, len(sys._current_frames()), [x.name for x in threading.enumerate()],
              [s.name for s in threadpatch.snapshot()], [t["name"] for t in reply["threads"]],
              flush=True)
    """
    proc = start(tmp_path, code, sock)
    out, err = finish(proc)
    expected = tmp_path / f"m-{proc.pid}.sock"
    assert out == f"{expected} 2 ['MainThread'] ['MainThread'] ['MainThread']\n", err
    assert proc.returncode == 0, err
    assert not expected.exists()


def test_stale_socket_is_replaced_and_a_live_one_is_left_alone(tmp_path: Path) -> None:
    sock = tmp_path / "m.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens: a process that died
    first = start(tmp_path, APP, sock)
    try:
        assert first.stdout is not None
        assert first.stdout.readline().split()[1] == str(sock)
        # A second process with the same variable (a child inheriting it) does not steal it.
        second = start(
            tmp_path, "from threadpatch import _monitor; print(_monitor.serving())", sock
        )
        out, err = finish(second)
        assert out == "None\n", err
        assert sock.exists()
        snap = _monitor.request(str(sock), {"cmd": "snapshot"})
        assert snap["pid"] == first.pid
        for name in ("getter", "waiter"):
            assert _monitor.request(str(sock), {"cmd": "cancel", "target": name})["ok"] is True
        out, err = finish(first)
    finally:
        stop(first)
    assert out.endswith("ENDED True True\n"), err


def test_a_path_that_is_not_a_socket_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("keep me")
    proc = start(tmp_path, "from threadpatch import _monitor; print(_monitor.serving())", path)
    out, err = finish(proc)
    assert out == "None\n"
    assert "cannot serve on" in err
    assert "not a socket" in err
    assert path.read_text() == "keep me"


def test_monitor_without_a_server_says_so(tmp_path: Path) -> None:
    result = monitor(str(tmp_path / "nothing.sock"), "--once")
    assert result.returncode == 1
    assert "nothing.sock" in result.stderr


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_monitor_usage(args: list[str]) -> None:
    result = monitor(*args)
    assert "usage: python -m threadpatch monitor PATH" in result.stdout + result.stderr
