"""Network clients under test (HTTP, S3, websocket, mail, FTP, XML-RPC) and their one scenario.

A :class:`NetClient` knows how to connect one client library to its server
(:mod:`_netservers`), do a round trip, make a call the server never answers,
and what the client is good for afterwards:

- ``usable``: the same client object (its pool, its connection) works on:
  the library dropped the interrupted connection itself;
- ``reconnect``: the connection is out of step with its server (the server
  is still busy with the interrupted command, the protocol has no way to
  abandon one), as after a ``socket.timeout`` in the stdlib: close it; a new
  connection works.  (``http.client.HTTPConnection`` raises
  ``CannotSendRequest`` until ``close()``, then reconnects by itself.)

The scenario (:func:`run_blocked`) runs in the test process and, unchanged,
in a child interpreter (``python _netclients.py KEY ROUTE after JSON``: the
client imported *after* ``patch_all()``, or ``startup``: with
``THREADPATCH_AUTOPATCH=1``), which prints its
:class:`NetOutcome` as JSON.  Client libraries are imported lazily, so the
child decides what comes first.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import io
import json
import ssl
import sys
from dataclasses import asdict, dataclass
from typing import Any

from _routes import ROUTES, patch_and_import, poll_until, run_stopped, waiting_to_read

import threadpatch

AFTER_LIMIT = 10.0  # seconds for the round trip after the cancel (a hang fails, never hangs)


class NetClient:
    """One client library and one call its server never answers."""

    key = ""  # test id
    label = ""  # the table's client column
    distribution = ""  # for the version; "" for the standard library
    modules: tuple[str, ...] = ()  # what the client imports (and a skip message names)
    pip = ""  # what provides ``modules`` (for the skip message)
    server = ""  # a key of _netservers.PACKAGES
    expected_after = "usable"  # or "reconnect" (see the module docstring)
    expected: object = b"hello"
    notes = ""

    def import_client(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    def connect(self, info: dict[str, Any]) -> Any:
        raise NotImplementedError

    def round_trip(self, conn: Any) -> object:
        raise NotImplementedError

    def block(self, conn: Any) -> None:
        raise NotImplementedError

    def close(self, conn: Any) -> None:
        conn.close()

    def after(self, conn: Any, info: dict[str, Any]) -> tuple[str, Any]:
        """What the client does next, and the client to close at the end."""
        if self.expected_after == "reconnect":
            self.close(conn)
            conn = self.connect(info)
        with threadpatch.timeout_after(AFTER_LIMIT):
            result = self.round_trip(conn)
        assert result == self.expected, result
        return self.expected_after, conn

    def version(self) -> str:
        if not self.distribution:
            return "stdlib"
        return importlib.metadata.version(self.distribution)


def _url(info: dict[str, Any], path: str = "/hello", scheme: str = "") -> str:
    scheme = scheme or ("https" if "ca_file" in info else "http")
    return f"{scheme}://{info['host']}:{info['port']}{path}"


def _tls(info: dict[str, Any]) -> ssl.SSLContext:
    """A client context trusting the test CA (``info["ca_file"]``), ALPN h2 and http/1.1."""
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


# -- HTTP -------------------------------------------------------------------------------


class HttpGet(NetClient):
    """An HTTP client: the round trip GETs ``/hello``, the call never answered GETs ``/hang``."""

    def get(self, conn: Any, path: str) -> bytes:
        raise NotImplementedError

    def round_trip(self, conn: Any) -> object:
        return self.get(conn, "/hello")

    def block(self, conn: Any) -> None:
        self.get(conn, "/hang")


class HttpClient(HttpGet):
    key = "http.client"
    label = "http.client"
    modules = ("http.client",)
    server = "http"
    expected_after = "reconnect"
    notes = "as after a timeout: CannotSendRequest until close(), then it reconnects"

    def connect(self, info: dict[str, Any]) -> Any:
        import http.client

        if self.server == "https":
            ctx = ssl.create_default_context(cafile=info["ca_file"])
            return http.client.HTTPSConnection(info["host"], info["port"], context=ctx)
        return http.client.HTTPConnection(info["host"], info["port"])

    def get(self, conn: Any, path: str) -> bytes:
        conn.request("GET", path)
        data: bytes = conn.getresponse().read()
        return data

    def after(self, conn: Any, info: dict[str, Any]) -> tuple[str, Any]:
        import http.client

        try:
            self.round_trip(conn)
        except http.client.CannotSendRequest:
            pass
        else:  # pragma: no cover - a changed stdlib
            raise AssertionError("http.client accepted a request on a broken connection")
        conn.close()  # the documented recovery; the same object reconnects
        with threadpatch.timeout_after(AFTER_LIMIT):
            assert self.round_trip(conn) == self.expected
        return "reconnect", conn


class UrllibRequest(HttpGet):
    key = "urllib.request"
    label = "urllib.request"
    modules = ("urllib.request",)
    server = "http"
    notes = "a connection per request; the interrupted one is closed"

    def connect(self, info: dict[str, Any]) -> Any:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.base = _url(info, "")  # type: ignore[attr-defined]
        return opener

    def get(self, conn: Any, path: str) -> bytes:
        with conn.open(conn.base + path) as response:
            data: bytes = response.read()
            return data


class Requests(HttpGet):
    key = "requests"
    label = "requests"
    distribution = "requests"
    modules = ("requests",)
    pip = "requests"
    server = "http"
    notes = "the pool (urllib3) closes the interrupted connection; the Session goes on"

    def connect(self, info: dict[str, Any]) -> Any:
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = info.get("ca_file", True)
        session.base = _url(info, "")  # type: ignore[attr-defined]
        return session

    def get(self, conn: Any, path: str) -> bytes:
        data: bytes = conn.get(conn.base + path).content
        return data


class RequestsStream(Requests):
    key = "requests-stream"
    label = "requests, streamed body (iter_content)"
    notes = "stopped between chunks of a streamed body; closing the response drops the connection"

    def block(self, conn: Any) -> None:
        with conn.get(conn.base + "/stream", stream=True) as response:
            for _ in response.iter_content(64):  # b"first\n", then nothing more comes
                pass


class Urllib3(HttpGet):
    key = "urllib3"
    label = "urllib3"
    distribution = "urllib3"
    modules = ("urllib3",)
    pip = "urllib3"
    server = "http"
    notes = "urlopen closes the interrupted connection (not returned to the pool)"

    def connect(self, info: dict[str, Any]) -> Any:
        import urllib3

        pool = urllib3.PoolManager()
        pool.base = _url(info, "")  # type: ignore[attr-defined]
        return pool

    def get(self, conn: Any, path: str) -> bytes:
        data: bytes = conn.request("GET", conn.base + path, retries=False).data
        return data

    def close(self, conn: Any) -> None:
        conn.clear()


class Httpx(HttpGet):
    key = "httpx"
    label = "httpx (sync, HTTP/1.1)"
    distribution = "httpx"
    modules = ("httpx",)
    pip = "httpx"
    server = "http"
    notes = "httpcore's pool closes the interrupted connection"
    http2 = False

    def connect(self, info: dict[str, Any]) -> Any:
        import httpx

        return httpx.Client(
            base_url=_url(info, ""), http1=not self.http2, http2=self.http2, trust_env=False,
            timeout=None, verify=_tls(info) if "ca_file" in info else True,
        )  # fmt: skip

    def get(self, conn: Any, path: str) -> bytes:
        response = conn.get(path)
        assert response.http_version == ("HTTP/2" if self.http2 else "HTTP/1.1")
        data: bytes = response.content
        return data


class HttpxStream(Httpx):
    key = "httpx-stream"
    label = "httpx, streamed body (iter_raw)"
    notes = "stopped between chunks of a streamed body"

    def block(self, conn: Any) -> None:
        with conn.stream("GET", "/stream") as response:
            for _ in response.iter_raw():
                pass


class HttpxHttp2(Httpx):
    key = "httpx-h2"
    label = "httpx (sync, HTTP/2)"
    pip = "httpx[http2]"
    modules = ("httpx", "h2")
    http2 = True
    notes = "HTTP/2 with prior knowledge (hypercorn); httpcore closes the stream, the pool goes on"


class HttpsClient(HttpClient):
    key = "https:http.client"
    label = "http.client (HTTPS)"
    server = "https"
    notes = "TLS (ssl module); " + HttpClient.notes


class RequestsHttps(Requests):
    key = "https:requests"
    label = "requests (HTTPS)"
    server = "https"


class HttpxHttp2Tls(HttpxHttp2):
    key = "https:httpx-h2"
    label = "httpx (sync, HTTP/2 over TLS, ALPN)"
    server = "https"
    notes = "HTTP/2 chosen by ALPN (hypercorn); httpcore closes the stream, the pool goes on"


# -- S3 -----------------------------------------------------------------------------------


class Boto3S3(NetClient):
    key = "boto3-s3"
    label = "boto3 / botocore S3"
    distribution = "boto3"
    modules = ("boto3",)
    pip = "boto3"
    server = "s3"
    expected = b"payload"
    notes = "put/get against moto's S3 server; botocore's pool (urllib3) drops the connection"

    def connect(self, info: dict[str, Any]) -> Any:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3", endpoint_url=_url(info, ""), region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}, read_timeout=300),
        )  # fmt: skip
        client.create_bucket(Bucket="threadpatch")
        return client

    def round_trip(self, conn: Any) -> object:
        conn.put_object(Bucket="threadpatch", Key="object", Body=b"payload")
        return conn.get_object(Bucket="threadpatch", Key="object")["Body"].read()

    def block(self, conn: Any) -> None:
        conn.get_object(Bucket="threadpatch", Key="hang")


# -- websocket ----------------------------------------------------------------------------


class WebsocketClient(NetClient):
    key = "websocket-client"
    label = "websocket-client recv()"
    distribution = "websocket-client"
    modules = ("websocket",)
    pip = "websocket-client"
    server = "websocket"
    expected = "ping"
    notes = "recv() with no message coming (websockets server); the connection goes on"

    def connect(self, info: dict[str, Any]) -> Any:
        import websocket

        return websocket.create_connection(_url(info, "/", "ws"), enable_multithread=True)

    def round_trip(self, conn: Any) -> object:
        conn.send("ping")
        return conn.recv()

    def block(self, conn: Any) -> None:
        conn.recv()


# -- mail, FTP, XML-RPC ------------------------------------------------------------------


class Smtplib(NetClient):
    key = "smtplib"
    label = "smtplib"
    modules = ("smtplib",)
    server = "smtp"
    expected_after = "reconnect"
    expected: object = {}
    notes = "aiosmtpd; stopped in RCPT TO, the session is out of step: close it"

    def connect(self, info: dict[str, Any]) -> Any:
        import smtplib

        smtp = smtplib.SMTP()
        smtp.connect(info["host"], info["port"])
        return smtp

    def round_trip(self, conn: Any) -> object:
        return conn.sendmail("a@example.org", ["b@example.org"], "Subject: hi\r\n\r\nhello\r\n")

    def block(self, conn: Any) -> None:
        conn.sendmail("a@example.org", ["hang@example.org"], "Subject: hi\r\n\r\nhello\r\n")


class Ftplib(NetClient):
    key = "ftplib"
    label = "ftplib"
    modules = ("ftplib",)
    server = "ftp"
    expected_after = "reconnect"
    notes = "pyftpdlib; stopped in SIZE, the control connection is out of step: close it"

    def connect(self, info: dict[str, Any]) -> Any:
        import ftplib

        ftp = ftplib.FTP()
        ftp.connect(info["host"], info["port"])
        ftp.login("user", "secret")
        return ftp

    def round_trip(self, conn: Any) -> object:
        conn.storbinary("STOR file", io.BytesIO(b"hello"))
        out = io.BytesIO()
        conn.retrbinary("RETR file", out.write)
        return out.getvalue()

    def block(self, conn: Any) -> None:
        conn.size("hang")


class Poplib(NetClient):
    key = "poplib"
    label = "poplib"
    modules = ("poplib",)
    server = "pop3"
    expected_after = "reconnect"
    expected: object = [b"hello"]
    notes = "a small POP3 server; stopped in RETR, the session is out of step: close it"

    def connect(self, info: dict[str, Any]) -> Any:
        import poplib

        pop = poplib.POP3(info["host"], info["port"])
        pop.user("user")
        pop.pass_("secret")
        return pop

    def round_trip(self, conn: Any) -> object:
        return conn.retr(1)[1]

    def block(self, conn: Any) -> None:
        conn.retr(2)


class Imaplib(NetClient):
    key = "imaplib"
    label = "imaplib"
    modules = ("imaplib",)
    server = "imap"
    expected_after = "reconnect"
    expected: object = ("OK", [b"1"])
    notes = "a small IMAP server; stopped in SELECT, the session is out of step: close it"

    def connect(self, info: dict[str, Any]) -> Any:
        import imaplib

        imap = imaplib.IMAP4(info["host"], info["port"])
        imap.login("user", "secret")
        return imap

    def round_trip(self, conn: Any) -> object:
        return conn.select("INBOX")

    def block(self, conn: Any) -> None:
        conn.select("hang")

    def close(self, conn: Any) -> None:
        conn.shutdown()


class XmlrpcClient(NetClient):
    key = "xmlrpc.client"
    label = "xmlrpc.client"
    modules = ("xmlrpc.client",)
    server = "xmlrpc"
    expected: object = 5
    notes = "the Transport closes the interrupted connection (xmlrpc patch set); the proxy goes on"

    def connect(self, info: dict[str, Any]) -> Any:
        import xmlrpc.client

        return xmlrpc.client.ServerProxy(_url(info, "/"))

    def round_trip(self, conn: Any) -> object:
        return conn.add(2, 3)

    def block(self, conn: Any) -> None:
        conn.hang()

    def close(self, conn: Any) -> None:
        conn("close")()


CLIENTS: dict[str, NetClient] = {
    c.key: c
    for c in (
        HttpClient(), UrllibRequest(), Requests(), RequestsStream(), Urllib3(), Httpx(),
        HttpxStream(), HttpxHttp2(), HttpsClient(), RequestsHttps(), HttpxHttp2Tls(),
        Boto3S3(), WebsocketClient(), Smtplib(), Ftplib(), Poplib(), Imaplib(), XmlrpcClient(),
    )
}  # fmt: skip


# -- the scenario -------------------------------------------------------------------------


@dataclass
class NetOutcome:
    """What one stop of a blocked call did (JSON for the table and for child interpreters)."""

    client: str
    label: str
    version: str
    how: str  # a key of _routes.ROUTES
    imported: str  # before | after (patch_all()) | startup (THREADPATCH_AUTOPATCH=1)
    raised: str  # the exception that left the route's block
    inner: str  # the exception the blocked call raised
    latency: float | None  # seconds from the stop (or deadline) to that exception
    after: str  # usable | reconnect
    connections_left: int  # server-side connections still open after close
    section: str = "net"

    def as_json(self) -> str:
        return json.dumps(asdict(self))


def open_connections(info: dict[str, Any]) -> int:
    # Imported here: _netservers imports http.client and xmlrpc.client (for its
    # servers), which a child interpreter must import only after patching.
    import _netservers

    return _netservers.established(int(info["port"]))


def run_blocked(client: NetClient, info: dict[str, Any], how: str, imported: str) -> NetOutcome:
    """Block a plain thread on the server, stop it by route ``how``, and see what is left."""
    conn = client.connect(info)
    try:
        assert client.round_trip(conn) == client.expected
        stopped = run_stopped(
            ROUTES[how], lambda: client.block(conn), waiting_to_read, f"blocked-{client.key}"
        )
        after, conn = client.after(conn, info)
    finally:
        client.close(conn)
    left = 0
    if not poll_until(lambda: open_connections(info) == 0, 5, every=0.005):
        left = open_connections(info)
    return NetOutcome(
        client.key, client.label, client.version(), how, imported,
        stopped.raised, stopped.inner, stopped.latency, after, left,
    )  # fmt: skip


def main() -> None:
    """Child interpreter: ``python _netclients.py KEY ROUTE IMPORTED JSON-INFO``.

    IMPORTED: ``before`` or ``after`` ``patch_all()``, or ``startup`` (run with
    ``THREADPATCH_AUTOPATCH=1``: patched before this module runs).
    """
    key, how, imported, info_json = sys.argv[1:5]
    client = CLIENTS[key]
    if imported in ("after", "startup"):
        early = [m for m in client.modules if m in sys.modules]
        assert not early, f"imported before patching: {early}"
    patch_and_import(imported, client.import_client)
    print(run_blocked(client, json.loads(info_json), how, imported).as_json())


if __name__ == "__main__":
    main()
