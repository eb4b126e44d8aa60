"""Network servers for the client tests, in one child process, and what the kernel shows of them.

``python _netservers.py DIR`` starts, on 127.0.0.1 and ephemeral ports:

- ``http``: hypercorn (HTTP/1.1 and HTTP/2 with prior knowledge) serving a
  small ASGI app: ``/hello`` answers, ``/hang`` never answers, ``/stream``
  sends its headers and a first chunk and then nothing; ``https``: the same
  over TLS (ALPN ``h2`` and ``http/1.1``; a trustme CA, whose PEM file is
  ``ca_file``);
- ``s3``: moto's S3 server mode (``ThreadedMotoServer``); a key whose name
  contains ``hang`` is never answered;
- ``ftp``: pyftpdlib (``ThreadedFTPServer``); ``SIZE hang`` is never answered;
- ``smtp``: aiosmtpd; ``RCPT TO:<hang@...>`` is never answered;
- ``websocket``: a ``websockets`` echo server (a ``recv()`` with nothing sent
  waits forever);
- ``xmlrpc``, ``pop3``, ``imap``: small stdlib servers (no PyPI or Debian
  server fits a test run): ``hang()``, ``RETR 2`` and ``SELECT hang`` are
  never answered.

A call that is "never answered" waits until the client closes its
connection, so the server keeps no connection of a client that left.  The
child writes the ports to ``DIR/ports.json`` (a server whose package is
missing is listed with the ``pip install`` that provides it) and runs until
it is stopped; it gets ``PR_SET_PDEATHSIG`` (see :mod:`_dbservers`), so it
never outlives the tests.  Running the servers in another process keeps
their sockets and threads out of the tests' leak checks; what the servers
hold is read from ``/proc/net/tcp`` instead (:func:`established`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import socket
import socketserver
import sys
import tempfile
import threading
import xmlrpc.server
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

HANG_LIMIT = 120.0  # seconds a never-answered call waits for its client to leave

#: server -> the packages its tests need (the pip install a skip message names)
PACKAGES = {
    "http": "hypercorn h2",
    "https": "hypercorn h2 trustme",
    "s3": "moto[server]",
    "ftp": "pyftpdlib",
    "smtp": "aiosmtpd",
    "websocket": "websockets",
    "xmlrpc": "",
    "pop3": "",
    "imap": "",
}


# -- the test process's side --------------------------------------------------------

_TCP_ESTABLISHED = "01"


def established(port: int) -> int:
    """Connections in state ESTABLISHED whose local end is ``port`` on this machine.

    The servers' end of a connection: once a client has closed its socket
    the kernel moves the server's end out of ESTABLISHED (to CLOSE_WAIT, then
    gone), whatever the server does, so a count above zero means a client
    still holds a connection open.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == _TCP_ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def start() -> tuple[dict[str, Any], Any]:
    """Start the child; return ``{server: {"host", "port"} or {"missing"}}`` and its Process."""
    import _dbservers

    tmpdir = tempfile.mkdtemp(prefix="threadpatch-net-")
    ports = os.path.join(tmpdir, "ports.json")
    log = os.path.join(tmpdir, "servers.log")
    argv = [sys.executable, os.path.abspath(__file__), tmpdir]
    proc = _dbservers._start("net servers", argv, log, lambda: os.path.exists(ports),
                             tmpdir=tmpdir)  # fmt: skip
    with open(ports) as f:
        return json.load(f), proc


# -- the child: hang helpers ----------------------------------------------------------


def wait_for_close(sock: socket.socket) -> None:
    """Block until the peer closes ``sock`` (or HANG_LIMIT passes); reads nothing."""
    with contextlib.suppress(OSError, ValueError):
        select.select([sock], [], [], HANG_LIMIT)


# -- HTTP: an ASGI app under hypercorn --------------------------------------------------


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]  # startup / shutdown
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    while (await receive()).get("more_body"):  # the request body, if any
        pass
    if path == "/hang":
        await receive()  # http.disconnect, when the client leaves
        return
    headers = [(b"content-type", b"text/plain")]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await receive()
        return
    body = b"hello"
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve_http(ready: Callable[[str, dict[str, Any]], None], tmpdir: str) -> None:
    import hypercorn.asyncio
    import hypercorn.config
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (
        os.path.join(tmpdir, n) for n in ("ca.pem", "cert.pem", "key.pem")
    )
    ca.cert_pem.write_to_path(ca_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    plain, tls = _listener(), _listener()
    config = hypercorn.config.Config()
    config.insecure_bind = [f"fd://{plain.fileno()}"]
    config.bind = [f"fd://{tls.fileno()}"]  # TLS, with ALPN h2 and http/1.1
    config.certfile, config.keyfile = cert_file, key_file
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = HANG_LIMIT
    ready("http", {"port": plain.getsockname()[1]})
    ready("https", {"port": tls.getsockname()[1], "ca_file": ca_file})
    forever: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    # A shutdown trigger: hypercorn then installs no signal handlers (not the main thread).
    await hypercorn.asyncio.serve(
        _asgi,  # type: ignore[arg-type]
        config,
        mode="asgi",
        shutdown_trigger=lambda: forever,  # type: ignore[arg-type,return-value]
    )


# -- websocket, SMTP (asyncio) ------------------------------------------------------------


async def _serve_websocket(ready: Callable[[int], None]) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


async def _serve_smtp(ready: Callable[[int], None]) -> None:
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, options: Any
        ) -> str:
            if address.startswith("hang@"):
                await asyncio.sleep(HANG_LIMIT)  # the session ends when the client leaves
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 Message accepted"

    loop = asyncio.get_running_loop()
    listener = _listener()
    server = await loop.create_server(
        lambda: SMTP(Handler(), hostname="localhost", loop=loop), sock=listener
    )
    ready(listener.getsockname()[1])
    async with server:
        await server.serve_forever()


# -- S3 (moto), FTP (pyftpdlib): threads ------------------------------------------------


def _serve_s3(ready: Callable[[int], None]) -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    wsgi = server._server  # werkzeug's server; its handler threads look .app up per request
    assert wsgi is not None
    moto_app = wsgi.app

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if "hang" in environ.get("PATH_INFO", ""):
            wait_for_close(environ["werkzeug.socket"])
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        return moto_app(environ, start_response)

    wsgi.app = app
    ready(server.get_host_and_port()[1])


def _serve_ftp(ready: Callable[[int], None], home: str) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.ERROR)

    class Handler(FTPHandler):  # type: ignore[misc]
        def ftp_SIZE(self, path: str) -> Any:
            if os.path.basename(path) == "hang":
                wait_for_close(self.socket)  # this handler's own thread (ThreadedFTPServer)
                return None
            return super().ftp_SIZE(path)

    authorizer = DummyAuthorizer()
    authorizer.add_user("user", "secret", home, perm="elradfmw")
    Handler.authorizer = authorizer
    Handler.passive_ports = None
    server = ThreadedFTPServer(("127.0.0.1", 0), Handler)
    _thread(server.serve_forever, "ftp")
    ready(server.address[1])


# -- xmlrpc, POP3, IMAP: small stdlib servers -------------------------------------------

_local = threading.local()


class _XmlrpcHandler(xmlrpc.server.SimpleXMLRPCRequestHandler):
    def do_POST(self) -> None:
        _local.sock = self.connection
        super().do_POST()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _XmlrpcServer(socketserver.ThreadingMixIn, xmlrpc.server.SimpleXMLRPCServer):
    daemon_threads = True


def _hang() -> int:
    wait_for_close(_local.sock)
    return 0


class _Lines(socketserver.StreamRequestHandler):
    def say(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())
        self.wfile.flush()


class _Pop3(_Lines):
    """USER, PASS, STAT, NOOP, RETR 1 (``hello``), QUIT; ``RETR 2`` is never answered."""

    def handle(self) -> None:
        self.say("+OK threadpatch test POP3")
        for raw in self.rfile:
            verb, _, arg = raw.decode().strip().partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                self.say("+OK bye")
                return
            if verb == "RETR" and arg == "2":
                wait_for_close(self.connection)
                return
            if verb == "RETR":
                self.say("+OK 5 octets", "hello", ".")
            elif verb == "STAT":
                self.say("+OK 1 5")
            else:
                self.say("+OK")


class _Imap(_Lines):
    """CAPABILITY, LOGIN, NOOP, SELECT, LOGOUT; ``SELECT hang`` is never answered."""

    def handle(self) -> None:
        self.say("* OK [CAPABILITY IMAP4rev1] threadpatch test IMAP")
        for raw in self.rfile:
            tag, _, rest = raw.decode().strip().partition(" ")
            verb, _, arg = rest.partition(" ")
            verb = verb.upper()
            if verb == "LOGOUT":
                self.say("* BYE", f"{tag} OK LOGOUT done")
                return
            if verb == "CAPABILITY":
                self.say("* CAPABILITY IMAP4rev1", f"{tag} OK done")
            elif verb == "SELECT" and arg.strip('"') == "hang":
                wait_for_close(self.connection)
                return
            elif verb == "SELECT":
                self.say("* 1 EXISTS", "* FLAGS ()", f"{tag} OK [READ-WRITE] done")
            elif verb in ("LOGIN", "NOOP"):
                self.say(f"{tag} OK done")
            else:
                self.say(f"{tag} BAD unknown")


class _ThreadingTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve_stdlib(ready: dict[str, Callable[[int], None]]) -> None:
    xml = _XmlrpcServer(("127.0.0.1", 0), _XmlrpcHandler, logRequests=False, allow_none=True)
    xml.register_function(lambda a, b: a + b, "add")
    xml.register_function(_hang, "hang")
    for name, server in (
        ("xmlrpc", xml),
        ("pop3", _ThreadingTCP(("127.0.0.1", 0), _Pop3)),
        ("imap", _ThreadingTCP(("127.0.0.1", 0), _Imap)),
    ):
        _thread(server.serve_forever, name)
        ready[name](server.server_address[1])


# -- the child's main -----------------------------------------------------------------


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _thread(target: Callable[[], object], name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


def main(tmpdir: str) -> None:  # pragma: no cover - runs in the child
    found: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    everything = threading.Event()

    def ready_for(name: str) -> Callable[[int], None]:
        def ready(port: int) -> None:
            found_one(name, {"port": port})

        return ready

    def found_one(name: str, info: dict[str, Any]) -> None:
        with lock:
            found[name] = {"host": "127.0.0.1", **info}
            if len(found) == len(PACKAGES):
                everything.set()

    def missing(name: str, exc: BaseException) -> None:
        with lock:
            for each in ("http", "https") if name == "http" else (name,):
                found[each] = {"missing": f"{exc}: pip install {PACKAGES[each]}"}
            if len(found) == len(PACKAGES):
                everything.set()

    def guarded(name: str, body: Callable[[], object]) -> None:
        try:
            body()
        except ImportError as exc:
            missing(name, exc)

    async def serve_async() -> None:
        async def one(name: str, serve: Callable[[], Any]) -> None:
            try:
                await serve()
            except ImportError as exc:
                missing(name, exc)

        await asyncio.gather(
            one("http", lambda: _serve_http(found_one, tmpdir)),
            one("websocket", lambda: _serve_websocket(ready_for("websocket"))),
            one("smtp", lambda: _serve_smtp(ready_for("smtp"))),
        )

    _thread(lambda: asyncio.run(serve_async()), "asyncio")
    home = os.path.join(tmpdir, "ftp")
    os.makedirs(home)
    guarded("s3", lambda: _serve_s3(ready_for("s3")))
    guarded("ftp", lambda: _serve_ftp(ready_for("ftp"), home))
    _serve_stdlib({name: ready_for(name) for name in ("xmlrpc", "pop3", "imap")})
    if not everything.wait(60):
        raise SystemExit(f"servers did not start: only {sorted(found)}")
    path = os.path.join(tmpdir, "ports.json")
    with open(path + ".tmp", "w") as f:
        json.dump(found, f)
    os.replace(path + ".tmp", path)
    threading.Event().wait()  # until stopped (SIGTERM)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
