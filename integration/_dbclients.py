"""Database and cache clients under test, what each server shows of them, and the scenarios.

A :class:`Client` knows how to connect one driver to its server (tagging the
session with a unique *name* the server shows: PostgreSQL's
``application_name``, redis' ``CLIENT SETNAME``, the MariaDB user, which
``--skip-grant-tables`` accepts as given), do a round trip, block on the
server for 30 s, and tell whether the connection still works.  A
:class:`Monitor` asks the server whether a named session is running its
blocking operation, and how many named sessions are left.

The scenarios run in the test process and, unchanged, in child interpreters
(``python -m _dbclients``: the driver imported *after* patching, or another
psycopg implementation), which print their :class:`Outcome` as JSON.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from _routes import ROUTES, parked, patch_and_import, run_stopped

BLOCK_SECONDS = 30  # what a blocking call asks the server for; the tests never wait for it
_names = itertools.count()


def unique_name(tag: str) -> str:
    return f"tp_{tag}_{os.getpid()}_{next(_names)}"


def poll_until(predicate: Any, timeout: float, every: float = 0.005) -> float | None:
    """Seconds until ``predicate()`` held, or None if it did not within ``timeout``."""
    t0 = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(every)  # polling a server's state, not synchronising on time


# -- what the servers show -------------------------------------------------------------


class Monitor:
    def active(self, name: str) -> bool:
        raise NotImplementedError

    def count(self, name: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class PostgresMonitor(Monitor):
    def __init__(self, conninfo: str) -> None:
        import psycopg

        self.conn = psycopg.connect(conninfo, autocommit=True)

    def _rows(self, name: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT state, query FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchall()

    def active(self, name: str) -> bool:
        return any(state == "active" and "pg_sleep" in query for state, query in self._rows(name))

    def count(self, name: str) -> int:
        return len(self._rows(name))

    def close(self) -> None:
        self.conn.close()


class RedisMonitor(Monitor):
    def __init__(self, host: str, port: int) -> None:
        import redis

        self.conn = redis.Redis(host=host, port=port)
        self.conn.ping()  # connect now (redis-py connects lazily), not inside a leak check

    def _clients(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.conn.client_list() if c.get("name") == name]

    def active(self, name: str) -> bool:
        # b: blocked in BLPOP/XREAD; P: subscribed (pub/sub)
        return any("b" in c["flags"] or "P" in c["flags"] for c in self._clients(name))

    def count(self, name: str) -> int:
        return len(self._clients(name))

    def close(self) -> None:
        self.conn.close()


class MariaDBMonitor(Monitor):
    def __init__(self, host: str, port: int) -> None:
        import pymysql

        self.conn = pymysql.connect(host=host, port=port, user="monitor", autocommit=True)

    def _rows(self, name: str) -> tuple[tuple[Any, ...], ...]:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT COMMAND, INFO FROM information_schema.PROCESSLIST WHERE USER = %s", (name,)
            )
            return tuple(cur.fetchall())

    def active(self, name: str) -> bool:
        return any(info and "SLEEP" in info.upper() for _, info in self._rows(name))

    def count(self, name: str) -> int:
        return len(self._rows(name))

    def close(self) -> None:
        self.conn.close()


def make_monitor(server: str, info: dict[str, Any]) -> Monitor:
    if server == "postgres":
        return PostgresMonitor(info["conninfo"])
    if server == "redis":
        return RedisMonitor(info["host"], info["port"])
    return MariaDBMonitor(info["host"], info["port"])


# -- the clients -----------------------------------------------------------------------


class Client:
    """One driver and one way of blocking on the server."""

    key = ""  # test id
    label = ""  # the table's client column
    distribution = ""  # for the version
    server = ""  # postgres, redis or mariadb
    expected_after = "usable"  # or "closed"
    notes = ""

    def import_driver(self) -> None:
        raise NotImplementedError

    def connect(self, info: dict[str, Any], name: str) -> Any:
        raise NotImplementedError

    def round_trip(self, conn: Any) -> object:
        """One request and its answer (returns something to compare with ``expected``)."""
        raise NotImplementedError

    expected: object = 1

    def block(self, conn: Any) -> None:
        raise NotImplementedError

    def close(self, conn: Any) -> None:
        conn.close()

    def after(self, conn: Any) -> str:
        """``usable``, or ``closed: <the error a use raises>``."""
        try:
            result = self.round_trip(conn)
        except Exception as exc:
            return f"closed: {type(exc).__name__}: {exc}".strip()
        assert result == self.expected, result
        return "usable"

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)


def _pg_conninfo(info: dict[str, Any], name: str) -> str:
    return f"{info['conninfo']} application_name={name}"


class Psycopg(Client):
    key = "psycopg"
    distribution = "psycopg"
    server = "postgres"
    notes = "CancelRequest (cancel_safe) and the answer read: connection stays usable"

    @property
    def label(self) -> str:  # type: ignore[override]
        import psycopg

        return f"psycopg 3 ({psycopg.pq.__impl__})"

    def import_driver(self) -> None:
        import psycopg  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import psycopg

        return psycopg.connect(_pg_conninfo(info, name), autocommit=True)

    def round_trip(self, conn: Any) -> object:
        return conn.execute("SELECT 1").fetchone()[0]

    def block(self, conn: Any) -> None:
        conn.execute(f"SELECT pg_sleep({BLOCK_SECONDS})")


class PsycopgPool(Client):
    key = "psycopg_pool"
    label = "psycopg_pool"
    distribution = "psycopg-pool"
    server = "postgres"
    notes = "the pooled connection is cancelled server-side and goes back to the pool usable"

    def import_driver(self) -> None:
        import psycopg_pool  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import psycopg_pool

        pool = psycopg_pool.ConnectionPool(
            _pg_conninfo(info, name), min_size=1, max_size=2, open=False,
            kwargs={"autocommit": True},
        )  # fmt: skip
        pool.open(wait=True, timeout=10)
        return pool

    def round_trip(self, conn: Any) -> object:
        with conn.connection(timeout=5) as c:
            return c.execute("SELECT 1").fetchone()[0]

    def block(self, conn: Any) -> None:
        with conn.connection(timeout=5) as c:
            c.execute(f"SELECT pg_sleep({BLOCK_SECONDS})")

    def close(self, conn: Any) -> None:
        conn.close(timeout=5)


class Psycopg2(Client):
    key = "psycopg2"
    label = "psycopg2"
    distribution = "psycopg2-binary"
    server = "postgres"
    expected_after = "closed"
    notes = (
        "through its wait callback; conn.cancel() server-side, then psycopg2 closes the "
        "connection; COPY and large objects refuse to run while patched"
    )

    def import_driver(self) -> None:
        import psycopg2  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import psycopg2

        conn = psycopg2.connect(_pg_conninfo(info, name))
        conn.autocommit = True
        return conn

    def round_trip(self, conn: Any) -> object:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0]

    def block(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT pg_sleep({BLOCK_SECONDS})")


class Pg8000(Client):
    key = "pg8000"
    label = "pg8000"
    distribution = "pg8000"
    server = "postgres"
    expected_after = "closed"
    notes = "CancelRequest with its backend key, then the connection is closed"

    def import_driver(self) -> None:
        import pg8000.native  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import pg8000.native

        return pg8000.native.Connection(
            "postgres", host=info["host"], port=info["port"], application_name=name
        )

    def round_trip(self, conn: Any) -> object:
        return conn.run("SELECT 1")[0][0]

    def block(self, conn: Any) -> None:
        conn.run(f"SELECT pg_sleep({BLOCK_SECONDS})")

    def close(self, conn: Any) -> None:
        if conn._usock is not None:  # closed by the cancel
            conn.close()


class PyMySQL(Client):
    key = "pymysql"
    label = "PyMySQL"
    distribution = "PyMySQL"
    server = "mariadb"
    expected_after = "closed"
    notes = "KILL QUERY from a second connection; PyMySQL closes the connection"

    def import_driver(self) -> None:
        import pymysql  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import pymysql

        return pymysql.connect(host=info["host"], port=info["port"], user=name, autocommit=True)

    def round_trip(self, conn: Any) -> object:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone()[0]

    def block(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"SELECT SLEEP({BLOCK_SECONDS})")

    def close(self, conn: Any) -> None:
        if conn.open:
            conn.close()


class _Redis(Client):
    distribution = "redis"
    server = "redis"
    notes = "redis-py drops the connection on any exception; the server forgets the client"

    def import_driver(self) -> None:
        import redis  # noqa: F401

    def connect(self, info: dict[str, Any], name: str) -> Any:
        import redis

        return redis.Redis(host=info["host"], port=info["port"], client_name=name)

    def round_trip(self, conn: Any) -> object:
        return conn.ping()

    expected = True


class RedisBlpop(_Redis):
    key = "redis-blpop"
    label = "redis-py BLPOP"

    def block(self, conn: Any) -> None:
        conn.blpop([unique_name("list")], timeout=BLOCK_SECONDS)


class RedisXread(_Redis):
    key = "redis-xread"
    label = "redis-py XREAD BLOCK"

    def block(self, conn: Any) -> None:
        conn.xread({unique_name("stream"): "$"}, block=BLOCK_SECONDS * 1000)


class RedisPubSub(_Redis):
    key = "redis-pubsub"
    label = "redis-py pub/sub get_message(timeout=None)"

    def block(self, conn: Any) -> None:
        with conn.pubsub() as pubsub:
            pubsub.subscribe(unique_name("channel"))
            while True:  # the subscribe confirmation first, then nothing ever comes
                message = pubsub.get_message(timeout=None)
                assert message is not None, "get_message(timeout=None) returned None"
                assert message["type"] == "subscribe", message


class RedisPubSubListen(_Redis):
    key = "redis-pubsub-listen"
    label = "redis-py pub/sub listen()"

    def block(self, conn: Any) -> None:
        with conn.pubsub() as pubsub:
            pubsub.subscribe(unique_name("channel"))
            for message in pubsub.listen():  # the subscribe confirmation, then nothing
                assert message["type"] == "subscribe", message


CLIENTS: dict[str, Client] = {
    c.key: c for c in (Psycopg(), PsycopgPool(), Psycopg2(), Pg8000(), PyMySQL(),
                       RedisBlpop(), RedisXread(), RedisPubSub(), RedisPubSubListen())
}  # fmt: skip


# -- the scenarios -----------------------------------------------------------------------


@dataclass
class Outcome:
    """What one cancel of a blocked call did (JSON for the table and for child interpreters)."""

    client: str
    label: str
    version: str
    how: str  # a key of _routes.ROUTES
    imported: str  # before | after (patch_all()) | startup (THREADPATCH_AUTOPATCH=1)
    round_trip: bool
    raised: str  # the exception the blocked thread saw
    latency: float | None  # seconds from the cancel (or deadline) to that exception
    server_stopped: float | None  # seconds until the server no longer ran it; None: > 1 s
    after: str  # usable | closed: ...
    sessions_left: int  # named server sessions still there after close

    def as_json(self) -> str:
        return json.dumps(asdict(self))


def run_blocked(
    client: Client, info: dict[str, Any], monitor: Monitor, how: str, imported: str
) -> Outcome:
    """Block a plain thread on the server, stop it by route ``how``, and see what is left."""
    name = unique_name(client.key.replace("-", "_"))
    conn = client.connect(info, name)
    try:
        assert client.round_trip(conn) == client.expected
        stopped = run_stopped(
            ROUTES[how],
            lambda: client.block(conn),
            lambda thread: parked(thread) and monitor.active(name),
            f"blocked-{client.key}",
        )
        server_stopped = poll_until(lambda: not monitor.active(name), 1.0)
        after = client.after(conn)
    finally:
        client.close(conn)
    left = 0
    if poll_until(lambda: monitor.count(name) == 0, 5) is None:
        left = monitor.count(name)
    return Outcome(
        client.key, client.label, client.version(), how, imported, True,
        stopped.raised, stopped.latency, server_stopped, after.split(":")[0], left,
    )  # fmt: skip


def main() -> None:
    """Child interpreter: ``python _dbclients.py KEY HOW IMPORTED JSON-INFO`` prints an Outcome."""
    key, how, imported, info_json = sys.argv[1:5]
    info = json.loads(info_json)
    client = CLIENTS[key]
    patch_and_import(imported, client.import_driver)
    monitor = make_monitor(client.server, info)
    try:
        outcome = run_blocked(client, info, monitor, how, imported)
    finally:
        monitor.close()
    print(outcome.as_json())


if __name__ == "__main__":
    main()
