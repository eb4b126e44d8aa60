"""Real database and cache servers for the integration tests.

Each server is the Debian package's binary, started in a temporary data
directory on a free loopback port, and stopped (and its directory removed)
when the test session ends.  The process gets ``PR_SET_PDEATHSIG``: if pytest
dies, the kernel ends the server too, so nothing is left running.

PostgreSQL and MariaDB refuse to run as root with their defaults: as root,
PostgreSQL runs as the ``postgres`` user (made by the Debian package; else
``nobody``) and MariaDB with ``--user=root``.

A missing binary skips the tests that need it, with a message naming the
Debian package; with ``CI=true`` in the environment it fails them instead
(CI installs every package, see ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

START_TIMEOUT = 30.0  # seconds for a server to accept connections
STOP_TIMEOUT = 15.0


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip (a developer's machine) or fail (CI) because ``what`` is missing."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: nothing may be skipped)", pytrace=False)
    pytest.skip(what)


def find_binary(name: str, package: str, extra_globs: tuple[str, ...] = ()) -> str:
    found = shutil.which(name)
    for pattern in extra_globs:
        if found:
            break
        matches = sorted(glob.glob(pattern))
        found = matches[-1] if matches else None
    if not found:
        missing(f"{name} not found: install the Debian package {package}")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Process:
    """A server process we started, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log: str
    stop_signal: int = signal.SIGTERM
    tmpdir: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def log_tail(self) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT)
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _start(
    name: str,
    argv: list[str],
    log: str,
    ready: Callable[[], bool],
    *,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
    tmpdir: str = "",
) -> Process:
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            preexec_fn=_die_with_parent,
            cwd=tmpdir or None,
        )
    proc = Process(name, popen, log, stop_signal, tmpdir)
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if popen.poll() is not None or time.monotonic() > deadline:
            proc.stop()
            pytest.fail(f"{name} did not start:\n{proc.log_tail()}", pytrace=False)
        time.sleep(0.05)  # polling for a port to open, bounded by START_TIMEOUT
    return proc


def _accepts(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return check


def _run(argv: list[str], log: str, user: str | None = None, timeout: float = 120) -> None:
    with open(log, "ab") as out:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            user=user, timeout=timeout, check=False,
        )  # fmt: skip
    if result.returncode:
        with open(log, errors="replace") as f:
            tail = f.read()[-3000:]
        pytest.fail(f"{argv[0]} failed ({result.returncode}):\n{tail}", pytrace=False)


def _unprivileged_user() -> str | None:
    """As root, the user to run PostgreSQL as; otherwise None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    missing("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")
    return None  # pragma: no cover


# -- PostgreSQL ------------------------------------------------------------------


@dataclass
class Postgres:
    host: str
    port: int
    user: str = "postgres"
    dbname: str = "postgres"

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"


def start_postgres() -> tuple[Postgres, Process]:
    pg_globs = ("/usr/lib/postgresql/*/bin/initdb",)
    initdb = find_binary("initdb", "postgresql", pg_globs)
    postgres = find_binary(
        "postgres", "postgresql", (os.path.join(os.path.dirname(initdb), "postgres"),)
    )
    user = _unprivileged_user()
    tmpdir = tempfile.mkdtemp(prefix="threadpatch-pg-")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(tmpdir, entry.pw_uid, entry.pw_gid)
    data = os.path.join(tmpdir, "data")
    log = os.path.join(tmpdir, "server.log")
    _run([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
         log, user)  # fmt: skip
    port = free_port()
    argv = [
        postgres, "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", tmpdir,
        "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
        "-c", "max_connections=60",
    ]  # fmt: skip
    # SIGINT: PostgreSQL's fast shutdown (ends sessions, then exits).
    proc = _start("postgres", argv, log, _accepts(port), user=user,
                  stop_signal=signal.SIGINT, tmpdir=tmpdir)  # fmt: skip
    return Postgres("127.0.0.1", port), proc


# -- redis -------------------------------------------------------------------------


@dataclass
class Redis:
    host: str
    port: int


def start_redis() -> tuple[Redis, Process]:
    binary = find_binary("redis-server", "redis-server")
    tmpdir = tempfile.mkdtemp(prefix="threadpatch-redis-")
    port = free_port()
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--daemonize", "no", "--dir", tmpdir, "--protected-mode", "yes",
    ]  # fmt: skip
    log = os.path.join(tmpdir, "server.log")
    proc = _start("redis-server", argv, log, _accepts(port), tmpdir=tmpdir)
    return Redis("127.0.0.1", port), proc


# -- MariaDB -----------------------------------------------------------------------


@dataclass
class MariaDB:
    host: str
    port: int
    user: str = "root"


def start_mariadb() -> tuple[MariaDB, Process]:
    server = find_binary("mariadbd", "mariadb-server", ("/usr/sbin/mariadbd", "/usr/sbin/mysqld"))
    install = find_binary("mariadb-install-db", "mariadb-server")
    tmpdir = tempfile.mkdtemp(prefix="threadpatch-mariadb-")
    data = os.path.join(tmpdir, "data")
    log = os.path.join(tmpdir, "server.log")
    as_root = ["--user=root"] if os.geteuid() == 0 else []
    _run([install, "--no-defaults", f"--datadir={data}", "--skip-test-db",
          "--auth-root-authentication-method=normal", *as_root], log)  # fmt: skip
    port = free_port()
    argv = [
        server, "--no-defaults", *as_root, f"--datadir={data}",
        f"--socket={tmpdir}/mysqld.sock", f"--port={port}", "--bind-address=127.0.0.1",
        "--skip-grant-tables", "--skip-name-resolve", f"--pid-file={tmpdir}/mysqld.pid",
        f"--log-error={log}", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
        "--max-connections=60",
    ]  # fmt: skip
    proc = _start("mariadbd", argv, log, _accepts(port), tmpdir=tmpdir)
    return MariaDB("127.0.0.1", port), proc


@contextlib.contextmanager
def running(start: Callable[[], tuple[object, Process]]) -> Iterator[object]:
    server, proc = start()
    try:
        yield server
    finally:
        proc.stop()
