"""Cancellable TLS: an ``ssl.SSLSocket`` whose handshake, reads and writes wait cancellably.

:class:`SSLSocket` inherits from both the stdlib ``ssl.SSLSocket`` and
threadpatch's :class:`~threadpatch._socket.socket`::

    SSLSocket -> ssl.SSLSocket -> threadpatch socket -> socket.socket -> _socket.socket

so the plain-socket paths of the stdlib class (``connect``, ``accept``, and
``recv``/``send`` before the handshake) already land on the cancellable
socket methods.  Unlike a plain socket's, a TLS socket's descriptor is
non-blocking whatever the timeout (``_tp_fd_follows_timeout = False``), with
the user's timeout kept in Python; ``detach()`` hands a blocking socket's
descriptor over in blocking mode.  The OpenSSL object therefore never blocks:
it raises ``SSLWantReadError``/``SSLWantWriteError``, and this module waits for
the descriptor with the core's ``wait_fd`` (a cancellation point) and
retries, honouring the socket timeout with the stdlib's messages ("The read
operation timed out", ...).

Reads wait first after a read had to wait (adaptive, as the plain socket's
receives): request/response traffic finds no data almost every time, and an
empty read costs OpenSSL's ``SSLWantReadError``, raised and caught, before
the wait.  A read waits first only while OpenSSL holds no decrypted bytes
(``pending()``; Python's contexts never turn on read-ahead, so a record only
partly read from the socket is waiting for the socket).  The read after a
streak of ``_POLL_FIRST`` tries first again; if it has to wait too, the next
streak is twice as long (at most 256).

:class:`SSLContext` is ``ssl.SSLContext`` with ``sslsocket_class`` set to
:class:`SSLSocket`.  The patch layer may instead set
``ssl.SSLContext.sslsocket_class = SSLSocket``, which covers every context,
including ones created before patching.
"""

from __future__ import annotations

import socket as _stdsocket
import ssl as _std
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core, _socket
from ._socket_methods import POLLIN, POLLOUT
from ._socket_methods import fast_waiter as _fast_waiter
from ._socket_methods import wait_socket as _wait_socket

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["SSLContext", "SSLSocket", "create_default_context", "get_server_certificate"]

T = TypeVar("T")

_WantRead = _std.SSLWantReadError
_WantWrite = _std.SSLWantWriteError
_SSLError = _std.SSLError
_SSL_ERROR_EOF = _std.SSL_ERROR_EOF
_timeout_error = _stdsocket.timeout
_deadline_after = _core.deadline_after
_POLL_FIRST = 16
_POLL_FIRST_MAX = 256


def _asks_for_bytes(len: Any, buffer: Any) -> bool:
    """True if ``read(len, buffer)`` waits for data (else it returns at once, or raises)."""
    if type(len) is not int or len <= 0:
        return False
    if buffer is None:
        return True
    try:
        with memoryview(buffer) as view:
            return view.nbytes > 0
    except TypeError:
        return False  # the read raises the stdlib's error


class SSLSocket(_std.SSLSocket, _socket.socket):
    """``ssl.SSLSocket`` with cancellable handshake, read, write, sendfile and unwrap.

    Made by :meth:`SSLContext.wrap_socket`; same methods, timeouts and
    exceptions as the stdlib class.

    Cancellation:
        A blocked call raises ``ThreadCancelled``/``DeadlineExpired``.  A TLS
        record half read or half written stays in OpenSSL's buffers; after a
        cancelled ``write`` the connection should be closed, as after a
        timeout in the stdlib.
    """

    # OpenSSL must never block: the descriptor stays non-blocking (see above).
    _tp_fd_follows_timeout = False

    # True until _create() returns: a handshake cancelled inside _create()
    # must close the socket, since the stdlib only closes on OSError/ValueError.
    _tp_creating = True

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> SSLSocket:
        self = super()._create(*args, **kwargs)  # type: ignore[misc]
        self._tp_creating = False
        return self  # type: ignore[no-any-return]

    # Reads left that wait before they try (see the module docstring).
    _tp_read_wait = 0
    _tp_read_streak = 0

    def _ssl_retry(
        self,
        func: Callable[..., T],
        args: tuple[Any, ...],
        events: int,
        timeout: float | None,
        what: str,
        kind: str,
    ) -> T:
        """Wait for ``events`` and retry ``func(*args)`` until OpenSSL wants nothing more.

        ``what`` names the operation in the timeout message, ``kind`` the
        wait reason's kind (``"tls.read"``, ...).
        """
        deadline = _deadline_after(timeout)
        reason = (kind, self)
        waiter = _fast_waiter(timeout)
        while True:
            # The descriptor of the moment (EBADF once closed), as the native
            # loop waits: a number read before an earlier wait may name
            # another file by now.  The TLS object is the one taken at entry.
            if not _wait_socket(self, events, deadline, reason, waiter):
                raise _timeout_error(f"The {what} operation timed out")
            try:
                return func(*args)
            except _WantRead:
                events = POLLIN
            except _WantWrite:
                events = POLLOUT

    # read, write, do_handshake and unwrap take the TLS object once, at entry,
    # and retry on it after every wait, as the native calls (which block
    # inside it) do: shutdown(), close() or unwrap() in another thread set
    # self._sslobj to None, and the read then ends as the native one does (EOF
    # or the OpenSSL error), not with "Read on closed or unwrapped SSL socket".

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Read up to ``len`` bytes (into ``buffer``); b"" or 0 at EOF, as the stdlib."""
        self._checkClosed()  # type: ignore[attr-defined]
        sslobj = self._sslobj  # type: ignore[has-type]
        if sslobj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        args = (len,) if buffer is None else (len, buffer)
        timeout = self._tp_timeout
        try:
            if (
                self._tp_read_wait
                and timeout != 0.0
                and (
                    (buffer is None and type(len) is int and len > 0)
                    or _asks_for_bytes(len, buffer)
                )
                and not sslobj.pending()
            ):
                self._tp_read_wait -= 1
                return self._ssl_retry(sslobj.read, args, POLLIN, timeout, "read", "tls.read")
            try:
                return sslobj.read(*args)
            except (_WantRead, _WantWrite) as exc:
                if timeout == 0.0:
                    raise
                events = POLLIN if isinstance(exc, _WantRead) else POLLOUT
            # The read that tried first had to wait: wait first for the next
            # reads, twice as many as last time (request/response traffic).
            streak = min(self._tp_read_streak * 2 or _POLL_FIRST, _POLL_FIRST_MAX)
            self._tp_read_wait = self._tp_read_streak = streak
            return self._ssl_retry(sslobj.read, args, events, timeout, "read", "tls.read")
        except _SSLError as x:
            # The stdlib's read(): a ragged EOF is an EOF.
            if x.args[0] == _SSL_ERROR_EOF and self.suppress_ragged_eofs:  # type: ignore[attr-defined]
                return b"" if buffer is None else 0
            raise

    def write(self, data: Any) -> int:
        """Write ``data`` to the TLS channel; the number of bytes written."""
        self._checkClosed()  # type: ignore[attr-defined]
        sslobj = self._sslobj
        if sslobj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        try:
            return sslobj.write(data)
        except (_WantRead, _WantWrite) as exc:
            if self._tp_timeout == 0.0:
                raise
            events = POLLIN if isinstance(exc, _WantRead) else POLLOUT
        return self._ssl_retry(
            sslobj.write, (data,), events, self._tp_timeout, "write", "tls.write"
        )

    def send(self, data: Any, flags: int = 0) -> int:
        if self._sslobj is None:
            return super().send(data, flags)
        self._checkClosed()
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {self.__class__}")
        return self.write(data)

    def do_handshake(self, block: bool = False) -> None:
        """Perform the TLS handshake (cancellably, unless the socket is non-blocking)."""
        self._check_connected()  # type: ignore[attr-defined]
        timeout = self._tp_timeout
        sslobj = self._sslobj
        assert sslobj is not None
        try:
            sslobj.do_handshake()
        except (_WantRead, _WantWrite) as exc:
            if timeout == 0.0 and not block:
                raise
            events = POLLIN if isinstance(exc, _WantRead) else POLLOUT
        else:
            return
        try:
            self._ssl_retry(
                sslobj.do_handshake,
                (),
                events,
                None if timeout == 0.0 else timeout,
                "handshake",
                "tls.handshake",
            )
        except BaseException as error:
            if self._tp_creating and not isinstance(error, OSError | ValueError):
                self.close()  # cancelled inside wrap_socket(): nobody else will
            raise

    def unwrap(self) -> _stdsocket.socket:
        """Shut TLS down (waiting for the peer's close_notify) and return the socket."""
        sslobj = self._sslobj  # type: ignore[has-type]
        if not sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        try:
            s = sslobj.shutdown()
        except (_WantRead, _WantWrite) as exc:
            if self._tp_timeout == 0.0:
                raise
            want_read = isinstance(exc, _WantRead)
        else:
            self._sslobj = None
            return s  # type: ignore[no-any-return]
        # The stdlib's message names the direction of the first wait.
        events, what = (POLLIN, "read") if want_read else (POLLOUT, "write")
        s = self._ssl_retry(sslobj.shutdown, (), events, self._tp_timeout, what, "tls.unwrap")
        self._sslobj = None
        return s  # type: ignore[no-any-return]

    def accept(self) -> tuple[SSLSocket, Any]:
        """Accept a connection and wrap it (server side) in an :class:`SSLSocket`."""
        newsock, addr = _socket.accept(self)
        wrapped = SSLSocket._create(
            newsock,
            server_side=True,
            do_handshake_on_connect=self.do_handshake_on_connect,  # type: ignore[attr-defined]
            suppress_ragged_eofs=self.suppress_ragged_eofs,  # type: ignore[attr-defined]
            context=self.context,
        )
        return wrapped, addr


SSLSocket.__module__ = "threadpatch.ssl"


class SSLContext(_std.SSLContext):
    """``ssl.SSLContext`` whose ``wrap_socket`` returns a cancellable :class:`SSLSocket`."""

    sslsocket_class = SSLSocket


SSLContext.__module__ = "threadpatch.ssl"


def create_default_context(
    purpose: _std.Purpose = _std.Purpose.SERVER_AUTH,
    *,
    cafile: str | None = None,
    capath: str | None = None,
    cadata: str | bytes | None = None,
) -> SSLContext:
    """``ssl.create_default_context`` returning our :class:`SSLContext`."""
    context = _std.create_default_context(purpose, cafile=cafile, capath=capath, cadata=cadata)
    # Same C layout, no extra state: adopt the stdlib's fully configured context.
    context.__class__ = SSLContext
    return context  # type: ignore[return-value]


def get_server_certificate(
    addr: tuple[str, int],
    ssl_version: int = _std.PROTOCOL_TLS_CLIENT,
    ca_certs: str | None = None,
    timeout: float | None = _stdsocket._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
) -> str:
    """``ssl.get_server_certificate`` with a cancellable connect and handshake."""
    host, _port = addr
    cert_reqs = _std.CERT_REQUIRED if ca_certs is not None else _std.CERT_NONE
    context = _std._create_unverified_context(ssl_version, cert_reqs=cert_reqs, cafile=ca_certs)
    context.__class__ = SSLContext
    with (
        _socket.create_connection(addr, timeout=timeout) as sock,
        context.wrap_socket(sock, server_hostname=host) as sslsock,
    ):
        dercert = sslsock.getpeercert(True)
    assert dercert is not None  # binary_form of a connected socket
    return _std.DER_cert_to_PEM_cert(dercert)
