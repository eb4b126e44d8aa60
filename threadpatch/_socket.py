"""Cancellable sockets: every blocking socket call is a cancellation point.

:class:`socket` subclasses the stdlib ``socket.socket`` (``isinstance`` holds);
the module helpers (``socketpair``, ``fromfd``, ``create_connection``,
``create_server``, ``getfqdn``) make and use sockets of this class.  The
pieces live along their seams:

* :mod:`threadpatch._socket_timeouts`: the user's timeout, kept in Python
  (the descriptor's mode is the stdlib's; the calls never block in the
  kernel: ``MSG_DONTWAIT``, or ``O_NONBLOCK`` for the call), and the adoption
  of plain stdlib sockets;
* :mod:`threadpatch._socket_methods`: the blocking methods, built by one
  factory on the core's ``wait_fd``, usable on any ``socket.socket``;
* this module: the class, the C accelerator's methods on it, the helpers.

So the stdlib semantics hold: ``socket.timeout``/``TimeoutError`` when the
socket timeout passes, ``BlockingIOError`` on a non-blocking socket (or with
``MSG_DONTWAIT`` on a blocking one).  A socket timeout and a
``timeout_after`` deadline combine: the earlier wins and each raises its own
exception.

Reuse by the patch layer
------------------------
:data:`BLOCKING_METHODS` maps method names to functions that accept *any*
``socket.socket`` instance as ``self``; :data:`TIMEOUT_METHODS` holds
``settimeout``/``gettimeout``/``setblocking``/``getblocking``/``timeout`` for
plain stdlib sockets.  Install both tables on ``socket.socket`` together;
:func:`release_adopted` gives adopted sockets their C timeouts back (call it
when unpatching).

With the C accelerator
----------------------
``recv``, ``recv_into`` and ``sendall`` of the class are C methods (see
``_speedups_socket.c``) that do the common case in one call and hand
everything else, unchanged, to the Python methods (:data:`PY_METHODS`).
After a receive had to wait, the next few receives wait first (adaptive
poll-first: request/response traffic waits almost every time), each wait and
its receive one C call that releases the GIL once.  The receive after a
streak of ``_POLL_FIRST`` tries first again, so streaming traffic whose data
is already there goes back to a single syscall; if it has to wait
(request/response traffic), the next streak is twice as long (at most 256).
Only the thread that waited arms its streak, never the hub thread.
"""

from __future__ import annotations

import _socket
import contextlib
import functools
import os
import socket as _std
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core, _dns
from ._accel import speedups as _speedups
from ._socket_methods import METHODS, POLL_FIRST, accept_raw, c_fileno, sendall_from
from ._socket_timeouts import (
    TIMEOUT_METHODS,
    blocking_flag,
    parse_timeout,
    release_adopted,
    user_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "BLOCKING_METHODS",
    "PY_METHODS",
    "TIMEOUT_METHODS",
    "closes_sockets_on_error",
    "create_connection",
    "create_connection_from",
    "create_server",
    "fromfd",
    "getfqdn",
    "release_adopted",
    "socket",
    "socketpair",
]

T = TypeVar("T")

_c_gettimeout = _socket.socket.gettimeout
_c_settimeout = _socket.socket.settimeout
_POLL_FIRST = POLL_FIRST  # for tests


def accept(self: Any) -> tuple[_std.socket, Any]:
    """Accept a connection: ``(conn, address)``; ``conn`` is of our class for our sockets."""
    fd, addr = accept_raw(self)
    if isinstance(self, socket):  # the class below
        return socket(self.family, self.type, self.proto, fileno=fd), addr
    sock = _std.socket(self.family, self.type, self.proto, fileno=fd)
    # The stdlib's own fix-up, for systems where accept() inherits O_NONBLOCK.
    if _std.getdefaulttimeout() is None and user_timeout(self):
        sock.setblocking(True)
    return sock, addr


accept.__qualname__ = "socket.accept"  # as the stdlib's, in its errors


# -- the class -------------------------------------------------------------------


class socket(_std.socket):
    """A ``socket.socket`` whose blocking methods are cancellation points.

    Same constructor, methods, timeouts and exceptions as the stdlib class.
    The descriptor's mode is the stdlib's (blocking without a timeout,
    ``O_NONBLOCK`` with one), so ``fileno()`` and ``detach()`` users see what
    they would see without threadpatch.

    Cancellation:
        A blocked call raises ``ThreadCancelled`` (or ``DeadlineExpired``)
        and the socket stays usable; data not yet received stays queued.
        ``sendall`` sets ``bytes_sent`` on the exception.
    """

    # No __slots__: a __dict__ keeps the layout compatible with ssl.SSLSocket,
    # so threadpatch's SSLSocket can inherit from both.
    _tp_timeout: float | None

    def __init__(
        self,
        family: int = -1,
        type: int = -1,
        proto: int = -1,
        fileno: int | None = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        timeout = self._tp_timeout = _c_gettimeout(self)
        if timeout or (timeout is None and not self._tp_fd_follows_timeout):
            _c_settimeout(self, 0.0)  # a C timeout above 0 would wait in C

    #: False for a socket whose descriptor must stay non-blocking whatever the
    #: timeout (TLS: OpenSSL must never block); True: the stdlib's mode.
    _tp_fd_follows_timeout = True

    def settimeout(self, value: float | None, /) -> None:
        timeout = parse_timeout(value)
        # EBADF on a closed socket, as the stdlib.
        if timeout is None and self._tp_fd_follows_timeout:
            _c_settimeout(self, None)  # a blocking descriptor, as the stdlib's
        else:
            _c_settimeout(self, 0.0)
        self._tp_timeout = timeout

    def gettimeout(self) -> float | None:
        return self._tp_timeout

    def setblocking(self, flag: bool, /) -> None:
        self.settimeout(None if blocking_flag(flag) else 0.0)

    def getblocking(self) -> bool:
        return self._tp_timeout != 0.0

    @property
    def timeout(self) -> float | None:
        return self._tp_timeout

    def detach(self) -> int:
        if self._tp_timeout is None and not self._tp_fd_follows_timeout:
            with contextlib.suppress(OSError):
                _c_settimeout(self, None)  # hand over a blocking descriptor
        return super().detach()

    # With the accelerator: how many more receives wait before they try, and
    # the thread that armed them (see "With the C accelerator" above).
    _tp_wait = 0
    _tp_wait_ident = 0
    _tp_wait_streak = 0

    recv = METHODS["recv"]
    recv_into = METHODS["recv_into"]
    accept = accept
    connect = METHODS["connect"]
    connect_ex = METHODS["connect_ex"]
    recvfrom = METHODS["recvfrom"]
    recvfrom_into = METHODS["recvfrom_into"]
    recvmsg = METHODS["recvmsg"]
    recvmsg_into = METHODS["recvmsg_into"]
    send = METHODS["send"]
    sendall = METHODS["sendall"]
    sendto = METHODS["sendto"]
    sendmsg = METHODS["sendmsg"]
    sendfile = METHODS["sendfile"]


socket.__module__ = "threadpatch.socket"
SocketType = socket

BLOCKING_METHODS: dict[str, Callable[..., Any]] = {**METHODS, "accept": accept}

# The Python methods the C ones (if built) stand in for, and fall back to.
PY_METHODS: dict[str, Callable[..., Any]] = {
    name: METHODS[name] for name in ("recv", "recv_into", "sendall")
}
if _speedups is not None and hasattr(_speedups, "socket_methods"):
    for _name, _method in zip(
        PY_METHODS,
        _speedups.socket_methods(
            socket,
            c_fileno,
            _core.ThreadState,
            _core.thread_local,
            *PY_METHODS.values(),
            sendall_from,
        ),
        strict=True,
    ):
        setattr(socket, _name, _method)


# -- module helpers ----------------------------------------------------------------


def socketpair(
    family: int | None = None, type: int = _socket.SOCK_STREAM, proto: int = 0
) -> tuple[socket, socket]:
    """``socket.socketpair`` returning two of our sockets."""
    if family is None:
        family = _socket.AF_UNIX
    a, b = _socket.socketpair(family, type, proto)
    return (
        socket(family, type, proto, a.detach()),
        socket(family, type, proto, b.detach()),
    )


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    """``socket.fromfd``: a socket of our class on a duplicate of ``fd``."""
    nfd = os.dup(fd)
    return socket(family, type, proto, nfd)


_STD_SOCKET_CLASS = _std.socket
_STD_GETADDRINFO = _std.getaddrinfo


def create_connection_from(names: Mapping[str, Any]) -> Callable[..., _std.socket]:
    """``socket.create_connection`` looking ``socket`` and ``getaddrinfo`` up in ``names``.

    As the stdlib function looks them up in its module's globals at each
    call, a replaced ``socket.socket`` or ``socket.getaddrinfo`` (a mock, a
    subclass) is used.  The stdlib's own class and lookup stand for ours:
    threadpatch's socket class and the cancellable resolver.
    """

    def create_connection(
        address: tuple[str | None, int],
        timeout: float | None = _std._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
        source_address: tuple[Any, int] | None = None,
        *,
        all_errors: bool = False,
    ) -> _std.socket:
        """``socket.create_connection`` with a cancellable lookup and connect loop.

        Cancellation:
            The socket being connected is closed; the exception propagates.
        """
        cls = names["socket"]
        if cls is _STD_SOCKET_CLASS:
            cls = socket
        getaddrinfo = names["getaddrinfo"]
        if getaddrinfo is _STD_GETADDRINFO:
            getaddrinfo = _dns.getaddrinfo
        host, port = address
        exceptions: list[Exception] = []
        for res in getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
            af, socktype, proto, _canonname, sa = res
            sock = None
            try:
                sock = cls(af, socktype, proto)
                if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                    sock.settimeout(timeout)
                if source_address:
                    sock.bind(source_address)
                sock.connect(sa)
                exceptions.clear()  # break reference cycles
                return sock  # type: ignore[no-any-return]
            except OSError as exc:
                if not all_errors:
                    exceptions.clear()
                exceptions.append(exc)
                if sock is not None:
                    sock.close()
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
        if exceptions:
            try:
                if not all_errors:
                    raise exceptions[0]
                raise ExceptionGroup("create_connection failed", exceptions)
            finally:
                exceptions.clear()
        raise OSError("getaddrinfo returns an empty list")

    create_connection.__qualname__ = "create_connection"
    return create_connection


#: For the stdlib module (the patch layer): honours a replaced ``socket.socket``
#: or ``socket.getaddrinfo`` of the stdlib module.
create_connection = create_connection_from(vars(_std))


_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08  # inspect's constants, without importing inspect


def closes_sockets_on_error(connect: Callable[..., T]) -> Callable[..., T]:
    """Wrap a third-party connect helper so that nothing escaping it leaves a socket open.

    Helpers written like ``urllib3.util.connection.create_connection`` close
    the socket they are connecting only on ``OSError``: a cancellation, a
    deadline or Ctrl-C arriving in ``connect()`` leaves it to the garbage
    collector (open until then, and a ``ResourceWarning``).  When anything
    escapes ``connect``, the wrapper closes every socket still open among the
    local variables of its frames (not its arguments: those are the caller's):
    a helper that raised handed none of them out.
    """
    code = connect.__code__
    n_args = code.co_argcount + code.co_kwonlyargcount
    n_args += bool(code.co_flags & _CO_VARARGS) + bool(code.co_flags & _CO_VARKEYWORDS)
    arguments = frozenset(code.co_varnames[:n_args])

    @functools.wraps(connect)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return connect(*args, **kwargs)
        except BaseException as exc:
            tb = exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code is code:
                    for name, value in list(tb.tb_frame.f_locals.items()):
                        if name not in arguments and isinstance(value, _std.socket):
                            value.close()  # a no-op on a closed or detached socket
                tb = tb.tb_next
            raise

    return wrapper


def create_server(
    address: tuple[str | None, int],
    *,
    family: int = _socket.AF_INET,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> socket:
    """``socket.create_server`` returning our class (binding never waits)."""
    sock = _std.create_server(
        address,
        family=family,
        backlog=backlog,
        reuse_port=reuse_port,
        dualstack_ipv6=dualstack_ipv6,
    )
    family, type_, proto = sock.family, sock.type, sock.proto
    return socket(family, type_, proto, sock.detach())


def getfqdn(name: str = "") -> str:
    """``socket.getfqdn`` using the cancellable resolver."""
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _socket.gethostname()
    try:
        hostname, aliases, _ipaddrs = _dns.gethostbyaddr(name)
    except OSError:
        return name
    candidates: Iterable[str] = [hostname, *aliases]
    for candidate in candidates:
        if "." in candidate:
            return candidate
    return hostname
