"""The live view: a process serves its thread snapshot on a Unix socket; a client shows it.

With ``THREADPATCH_MONITOR=/path/to/socket`` in its environment, a process
that imports threadpatch serves on that socket (nothing is opened without the
variable); ``%p`` in the path stands for the process id, so that the children
of a process, which inherit the variable, each serve their own.
``python -m threadpatch monitor /path/to/socket`` is the client: a live table
of the threads, ``--once`` for one, ``--cancel NAME_OR_IDENT`` to cancel one.

How it works::

    served process                               python -m threadpatch monitor
    --------------                               -----------------------------
    import threadpatch: bind PATH (mode 0600),
    start one native daemon thread:
      accept  <------------- connect ----------  every --interval seconds
      read one JSON line  <- {"cmd": "snapshot"}
      snapshot(), reply one JSON line  -------->  print the table
      close
    exit: atexit closes the socket and removes PATH

The protocol is one request line and one reply line per connection, JSON:
``{"cmd": "snapshot"}`` (``"stacks": true`` for the stacks), ``{"cmd":
"dump"}`` (the text of ``threadpatch.dump()``), ``{"cmd": "cancel",
"target": "worker-3"}`` (a name or an ident); every reply has ``"ok"``, and
``"error"`` when it is false.

The serving thread is started with ``_thread`` and uses the C socket type,
never a threadpatch wait: it is not in any snapshot, nothing cancels it, and
the interpreter does not wait for it at exit.
"""

from __future__ import annotations

import _socket
import _thread
import atexit
import contextlib
import errno
import json
import os
import stat
import sys
import time
from typing import TYPE_CHECKING

from . import _core, _diagnostics

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ENVIRONMENT", "main", "request", "serve", "serve_from_environment", "serving"]

#: The variable naming the socket to serve on.
ENVIRONMENT = "THREADPATCH_MONITOR"
_MAX_REQUEST = 65536
_CLIENT_TIMEOUT = 5.0
#: Captured now, before anything is patched: the serving thread never uses threadpatch.
_native_sleep = time.sleep


class _Server:
    """The listening socket and what to remove at exit."""

    def __init__(self, sock: _socket.socket, path: str) -> None:
        self.sock = sock
        self.path = path
        self.pid = os.getpid()
        self.inode = os.stat(path).st_ino
        self.closing = False

    def close(self) -> None:
        """Stop serving; remove the socket file if it is still ours (idempotent)."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(_socket.SHUT_RDWR)  # wakes the accept
        self.sock.close()
        if os.getpid() == self.pid:
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)


_server: _Server | None = None


def serving() -> str | None:
    """The path this process serves its snapshot on, or None."""
    return _server.path if _server is not None else None


def serve_from_environment() -> str | None:
    """Serve on ``$THREADPATCH_MONITOR`` if it is set (threadpatch's import calls it)."""
    path = os.environ.get(ENVIRONMENT, "")
    if not path or _server is not None:
        return serving()
    return serve(path.replace("%p", str(os.getpid())))


def _in_use(path: str) -> bool:
    """True if a live process serves on ``path``; removes a stale socket file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left by a process that died
        return False
    finally:
        probe.close()
    return True


def serve(path: str) -> str | None:
    """Serve this process's snapshot on the Unix socket ``path``.

    Returns:
        ``path``, or None if another live process serves there (a child that
        inherited the variable) or it cannot be bound (said on stderr).
    """
    global _server
    if _server is not None:
        return _server.path
    try:
        if _in_use(path):
            return None
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)  # whoever connects may cancel threads
            sock.listen(8)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        print(f"threadpatch: {ENVIRONMENT}: cannot serve on {path!r}: {exc}", file=sys.stderr)
        return None
    server = _server = _Server(sock, path)
    atexit.register(server.close)
    _thread.start_new_thread(_serve_forever, (server,))
    return path


def _forget_in_child() -> None:
    # A forked child has no serving thread; the socket is the parent's.
    global _server
    if _server is not None:
        _server.closing = True
        _server.sock.close()
        _server = None


os.register_at_fork(after_in_child=_forget_in_child)


def _serve_forever(server: _Server) -> None:
    failures = 0
    while not server.closing:
        try:
            fd, _ = server.sock._accept()  # type: ignore[attr-defined]
        except OSError:
            if server.closing:
                return
            failures += 1  # out of descriptors, say: do not spin
            _native_sleep(min(1.0, 0.01 * failures))
            continue
        failures = 0
        conn = _socket.socket(fileno=fd)
        try:
            conn.settimeout(_CLIENT_TIMEOUT)
            _answer(conn)
        except Exception:  # a client that went away or sent junk: serve the next one
            pass
        finally:
            conn.close()


def _answer(conn: _socket.socket) -> None:
    data = b""
    while b"\n" not in data and len(data) < _MAX_REQUEST:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    then: Callable[[], object] | None = None
    try:
        reply, then = _handle(json.loads(data.split(b"\n", 1)[0] or b"null"))
    except Exception as exc:
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    # The reply goes first: a cancel may end the process (its last thread
    # ends, the interpreter exits) before a reply sent afterwards is out.
    conn.sendall(json.dumps(reply).encode() + b"\n")
    if then is not None:
        then()


def _handle(req: object) -> tuple[dict[str, object], Callable[[], object] | None]:
    """The reply to ``req``, and what to do once it is sent."""
    if not isinstance(req, dict):
        return {"ok": False, "error": "a request is a JSON object with a 'cmd'"}, None
    cmd = req.get("cmd")
    if cmd == "snapshot":
        threads = _diagnostics.snapshot(stacks=bool(req.get("stacks")))
        cycles = _diagnostics.find_deadlocks(threads)
        reply = {
            "ok": True,
            "pid": os.getpid(),
            "argv": sys.argv,
            "threads": [t.to_dict(stack=bool(req.get("stacks"))) for t in threads],
            "deadlocks": [
                [{"name": s.thread.name, "ident": s.thread.ident, "lock": _lock(s)} for s in c]
                for c in cycles
            ],
        }
        return reply, None
    if cmd == "dump":
        threads = _diagnostics.snapshot()
        text = _diagnostics.format_dump(threads, _diagnostics.find_deadlocks(threads))
        return {"ok": True, "text": text}, None
    if cmd == "cancel":
        return _cancel(str(req.get("target", "")))
    return {"ok": False, "error": f"unknown command {cmd!r}"}, None


def _lock(step: _diagnostics.DeadlockStep) -> str:
    return f"{type(step.lock).__name__} at {id(step.lock):#x}"


def _cancel(target: str) -> tuple[dict[str, object], Callable[[], object] | None]:
    states = [s for s in _core.all_states() if not s.finished]
    chosen = [s for s in states if str(s.ident) == target] or [
        s for s in states if s.name == target
    ]
    if not chosen:
        return {"ok": False, "error": f"no thread named {target!r} or with that ident"}, None
    if len(chosen) > 1:
        idents = ", ".join(str(s.ident) for s in chosen)
        error = f"{len(chosen)} threads are named {target!r}: {idents}"
        return {"ok": False, "error": error}, None
    state = chosen[0]
    # Not Thread.cancel(): that looks up the calling thread's state, which
    # would adopt this serving thread into the registry.
    return {"ok": True, "name": state.name, "ident": state.ident}, state.request_cancel


# -- the client --------------------------------------------------------------------


def request(path: str, req: dict[str, object], timeout: float = 10.0) -> dict[str, object]:
    """Send one request to the process serving on ``path``; its reply."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise ValueError(f"not a reply: {data[:200]!r}")
    return reply


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f} s"
    return str(value)


def table(reply: dict[str, object]) -> str:
    """A snapshot reply as a table for people."""
    threads = reply.get("threads")
    rows = [("NAME", "IDENT", "STATE", "FOR", "DEADLINE", "WAITING FOR")]
    for t in threads if isinstance(threads, list) else []:
        deadlines = [
            t[k] for k in ("wait_deadline_left", "scope_deadline_left") if t[k] is not None
        ]
        rows.append(
            (
                _cell(t["name"]),
                _cell(t["ident"]),
                _cell(t["state"]),
                _cell(t["blocked_for"]),
                _cell(min(deadlines) if deadlines else None),
                _cell(t["reason"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    argv = reply.get("argv")
    command = " ".join(argv) if isinstance(argv, list) else "?"
    lines = [
        f"pid {reply.get('pid')} ({command}): {len(rows) - 1} thread(s), "
        + time.strftime("%H:%M:%S")
    ]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    ]
    cycles = reply.get("deadlocks")
    for cycle in cycles if isinstance(cycles, list) else []:
        steps = " -> ".join(f"{s['name']!r} waits for {s['lock']}" for s in cycle)
        lines.append(f"DEADLOCK: {steps} -> {cycle[0]['name']!r}")
    return "\n".join(line.rstrip() for line in lines)


USAGE = """\
usage: python -m threadpatch monitor PATH [--interval SECONDS] [--once] [--count N]
       python -m threadpatch monitor PATH --dump
       python -m threadpatch monitor PATH --cancel NAME_OR_IDENT [...]

Show the threads of the process serving on the Unix socket PATH (started with
THREADPATCH_MONITOR=PATH): a table refreshed every --interval seconds (default
1) until Ctrl-C, --once for one table, --count N for N; --dump prints every
thread's stack and wait; --cancel cancels a thread by name or ident.
"""


def main(argv: Sequence[str]) -> int:
    """``python -m threadpatch monitor ...``; the exit status."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m threadpatch monitor", usage=USAGE)
    parser.add_argument("path")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--dump", action="store_true")
    parser.add_argument("--cancel", action="append", default=[], metavar="NAME_OR_IDENT")
    args = parser.parse_args(list(argv))
    try:
        if args.cancel or args.dump:
            return _commands(args.path, args.cancel, args.dump)
        return _watch(args.path, args.interval, 1 if args.once else args.count)
    except OSError as exc:
        print(f"python -m threadpatch monitor: {args.path}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _commands(path: str, targets: list[str], dump: bool) -> int:
    status = 0
    for target in targets:
        reply = request(path, {"cmd": "cancel", "target": target})
        if reply.get("ok"):
            print(f"cancelled {reply['name']!r} (ident {reply['ident']})")
        else:
            print(f"cannot cancel {target!r}: {reply.get('error')}", file=sys.stderr)
            status = 1
    if dump:
        reply = request(path, {"cmd": "dump"})
        print(reply.get("text", ""), end="")
    return status


def _watch(path: str, interval: float, count: int | None) -> int:
    clear = sys.stdout.isatty()
    shown = 0
    while count is None or shown < count:
        if shown:
            time.sleep(max(interval, 0.01))
        text = table(request(path, {"cmd": "snapshot"}))
        print(("\x1b[H\x1b[2J" if clear else "\n" if shown else "") + text, flush=True)
        shown += 1
    return 0
