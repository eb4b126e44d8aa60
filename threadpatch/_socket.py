"""Cancellable sockets: every blocking socket call is a cancellation point.

:class:`socket` subclasses the stdlib ``socket.socket`` (``isinstance`` holds).
Its descriptor is always in non-blocking mode at the C level (C timeout 0.0);
the timeout the user set lives in the Python object and ``gettimeout()``,
``getblocking()`` and ``timeout`` report it, so the stdlib semantics hold:
``socket.timeout``/``TimeoutError`` when the socket timeout passes,
``BlockingIOError`` on a non-blocking socket.

How it works (``recv`` shown, every blocking method is the same shape)::

    try the C call                      # data ready: done, no wait, no hub
    BlockingIOError, user timeout 0.0?  # non-blocking socket: re-raise
    loop: wait_fd(fd, POLLIN, remaining) on the thread's own poll + wake-up fd
          retry the C call
    socket timeout passed  -> TimeoutError("timed out")
    cancelled / deadline   -> ThreadCancelled / DeadlineExpired from wait_fd

A socket timeout and a ``timeout_after`` deadline therefore combine: the earlier
wins and each raises its own exception.  In the hub thread waits are native
``poll`` calls (the hub must never park).

Reuse by the patch layer
------------------------
The blocking methods are module-level functions that accept *any*
``socket.socket`` instance as ``self``; :data:`BLOCKING_METHODS` maps method
names to them, :data:`TIMEOUT_METHODS` holds ``settimeout``/``gettimeout``/
``setblocking``/``getblocking``/``timeout`` for plain stdlib sockets.  Install
both tables on ``socket.socket`` together.  A plain socket is *adopted* on its
first blocking call: its timeout moves to a weak side table and its C timeout
becomes 0.0; :func:`release_adopted` moves the timeouts back (call it when
unpatching).  Instances of stdlib ``ssl.SSLSocket`` (anything with an
``_sslobj`` that is not ours) are never adopted: their C-level SSL object reads
the C timeout, so those calls go straight to the native methods.

``sendall`` cancelled (or timed out, or failing) part-way sets ``bytes_sent``
on the exception it raises: how many bytes went out before it.
"""

from __future__ import annotations

import _socket
import contextlib
import functools
import io
import math
import operator
import os
import socket as _std
import sys
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from . import _core, _dns
from ._accel import speedups as _speedups
from ._core import _natives

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "BLOCKING_METHODS",
    "TIMEOUT_METHODS",
    "closes_sockets_on_error",
    "create_connection",
    "create_server",
    "fromfd",
    "getfqdn",
    "release_adopted",
    "socket",
    "socketpair",
]

T = TypeVar("T")

_C = _socket.socket
_c_accept = _C._accept  # type: ignore[attr-defined]
_c_connect = _C.connect
_c_connect_ex = _C.connect_ex
_c_recv = _C.recv
_c_recv_into = _C.recv_into
_c_recvfrom = _C.recvfrom
_c_recvfrom_into = _C.recvfrom_into
_c_recvmsg = _C.recvmsg
_c_recvmsg_into = _C.recvmsg_into
_c_send = _C.send
_c_sendall = _C.sendall
_c_sendto = _C.sendto
_c_sendmsg = _C.sendmsg
_c_gettimeout = _C.gettimeout
_c_settimeout = _C.settimeout
_c_fileno = _C.fileno
_c_getsockopt = _C.getsockopt

POLLIN = _natives.POLLIN
POLLOUT = _natives.POLLOUT
_monotonic = _natives.monotonic
_current_state = _core.current_state
_is_hub_thread = _core.is_hub_thread
_timeout_error = _std.timeout
_INET = (_socket.AF_INET, _socket.AF_INET6)
_POLL_FIRST = 16

# The C wait-and-receive of a blocking socket (see _speedups.c), or None.
_poll_recv: Callable[..., bytes | None] | None = None
_poll_recv_into: Callable[..., int | None] | None = None
if _speedups is not None and hasattr(_speedups, "poll_recv"):
    _speedups.bind_state_type(_core.ThreadState)
    _poll_recv = _speedups.poll_recv
    _poll_recv_into = _speedups.poll_recv_into
# _retry's C shortcut: the C call it retries -> its wait-and-call (same arguments).
_wait_and_call: dict[object, Callable[..., Any]] = {}
if _poll_recv is not None and _poll_recv_into is not None:
    _wait_and_call = {_c_recv: _poll_recv, _c_recv_into: _poll_recv_into}

# Version differences of the C socket, mirrored exactly.
if sys.version_info >= (3, 12):
    _blocking_flag: Callable[[object], bool] = bool  # setblocking() takes any truth value
else:

    def _blocking_flag(flag: object) -> bool:
        return bool(operator.index(flag))  # type: ignore[arg-type]


_PYTIME = "C PyTime_t" if sys.version_info >= (3, 13) else "C _PyTime_t"
_EAGAIN = 11  # errno.EAGAIN == EWOULDBLOCK on Linux: what connect_ex reports on timeout


# -- timeouts --------------------------------------------------------------------


def _parse_timeout(value: object) -> float | None:
    """Validate a socket timeout exactly as the C ``settimeout`` does."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        if value < 0:
            raise ValueError("Timeout value out of range")
        try:
            ns = math.ceil(value * 1e9)
        except OverflowError:
            raise OverflowError("timestamp out of range for platform time_t") from None
        if ns >= 2**63:
            raise OverflowError("timestamp out of range for platform time_t")
    else:
        seconds = operator.index(value)  # type: ignore[arg-type]
        if seconds < 0:
            raise ValueError("Timeout value out of range")
        ns = seconds * 1_000_000_000
        if ns >= 2**63:
            raise OverflowError(f"timestamp too large to convert to {_PYTIME}")
    return float(ns // 1_000_000_000) if ns % 1_000_000_000 == 0 else ns / 1e9


# Timeouts of adopted plain stdlib sockets (their C timeout is 0.0).
_adopted: weakref.WeakKeyDictionary[_std.socket, float | None] = weakref.WeakKeyDictionary()


def _adopt(sock: Any) -> bool:
    """Move a socket's C timeout into our bookkeeping; False if it must stay native."""
    timeout = _c_gettimeout(sock)
    if isinstance(sock, socket):
        sock._tp_timeout = timeout
    elif hasattr(sock, "_sslobj"):
        return False  # a stdlib SSLSocket: its C SSL object reads the C timeout
    else:
        _adopted[sock] = timeout
    _c_settimeout(sock, 0.0)
    return True


def release_adopted() -> None:
    """Give every adopted plain socket its timeout back at the C level (unpatching)."""
    for sock, timeout in list(_adopted.items()):
        with contextlib.suppress(OSError):  # closed
            _c_settimeout(sock, timeout)
    _adopted.clear()


def _user_timeout(sock: Any) -> float | None:
    """The timeout the user set, for our sockets and adopted plain ones alike."""
    try:
        return sock._tp_timeout  # type: ignore[no-any-return]
    except AttributeError:
        return _gettimeout(sock)


def _gettimeout(self: Any) -> float | None:
    """``socket.gettimeout`` for plain stdlib sockets (see the module docstring)."""
    timeout = _c_gettimeout(self)
    if timeout == 0.0:
        return _adopted.get(self, 0.0)
    return timeout


def _settimeout(self: Any, value: object) -> None:
    """``socket.settimeout`` for plain stdlib sockets."""
    if hasattr(self, "_sslobj"):
        _c_settimeout(self, value)  # type: ignore[arg-type]
        return
    timeout = _parse_timeout(value)
    _c_settimeout(self, 0.0)
    _adopted[self] = timeout


def _setblocking(self: Any, flag: object) -> None:
    """``socket.setblocking`` for plain stdlib sockets."""
    self.settimeout(None if _blocking_flag(flag) else 0.0)


def _getblocking(self: Any) -> bool:
    """``socket.getblocking`` for plain stdlib sockets."""
    return _user_timeout(self) != 0.0


# -- waiting ---------------------------------------------------------------------


def _native_wait(fd: int, events: int, timeout: float | None) -> int:
    poller = _natives.poll()
    poller.register(fd, events)
    ms = None if timeout is None else min(math.ceil(timeout * 1000), 2**31 - 1)
    for _, revents in poller.poll(ms):
        return revents
    return 0


def _waiter() -> Callable[[int, int, float | None], int]:
    if _is_hub_thread():
        return _native_wait
    return _current_state().wait_fd


def _retry(sock: Any, func: Callable[..., T], args: tuple[Any, ...], events: int) -> T:
    """Wait for ``events`` and retry ``func(sock, *args)`` until it stops saying EAGAIN.

    Each wait is on the socket's descriptor of the moment, and each retry is
    the C method, which reads it again, as the native call's loop does:
    another thread may close the socket while we wait, and the retry then
    fails with ``EBADF`` (a wait on -1 too) instead of using a number that
    may name another file by now.
    """
    timeout = _user_timeout(sock)
    wait = _waiter()
    if wait is _native_wait and isinstance(sock, socket):
        sock._tp_wait = 0  # never poll-first in the hub thread (see socket.recv)
    if timeout is None:
        fast = None if wait is _native_wait else _wait_and_call.get(func)
        while True:
            if fast is not None:
                result = fast(_current_state(), sock, *args)
                if result is not None:
                    return result  # type: ignore[no-any-return]
            wait(_c_fileno(sock), events, None)
            try:
                return func(sock, *args)
            except BlockingIOError:
                pass
    deadline = _monotonic() + timeout
    while True:
        remaining = deadline - _monotonic()
        if remaining <= 0:
            raise _timeout_error("timed out")
        wait(_c_fileno(sock), events, remaining)
        try:
            return func(sock, *args)
        except BlockingIOError:
            pass


# -- the blocking methods ----------------------------------------------------------
# Each one: adopt a foreign socket if needed, try the C call, and only on EAGAIN
# (and a user timeout other than 0.0) go to the waiting loop.


def recv(self: Any, bufsize: int, flags: int = 0, /) -> bytes:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recv(self, bufsize, flags)
    try:
        return _c_recv(self, bufsize, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recv, (bufsize, flags), POLLIN)


def recv_into(self: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recv_into(self, buffer, nbytes, flags)
    try:
        return _c_recv_into(self, buffer, nbytes, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recv_into, (buffer, nbytes, flags), POLLIN)


def recvfrom(self: Any, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recvfrom(self, bufsize, flags)
    try:
        return _c_recvfrom(self, bufsize, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recvfrom, (bufsize, flags), POLLIN)


def recvfrom_into(self: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recvfrom_into(self, buffer, nbytes, flags)
    try:
        return _c_recvfrom_into(self, buffer, nbytes, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recvfrom_into, (buffer, nbytes, flags), POLLIN)


def recvmsg(self: Any, *args: Any) -> tuple[bytes, list[tuple[int, int, bytes]], int, Any]:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recvmsg(self, *args)
    try:
        return _c_recvmsg(self, *args)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recvmsg, args, POLLIN)


def _reusable(items: Any) -> Any:
    """``items`` in a form a retry can iterate again: a generator is drained once, here.

    A list or tuple is passed as is; anything not iterable is passed as is too,
    so the C method raises its own error for it.
    """
    if type(items) is list or type(items) is tuple:
        return items
    try:
        return list(items)
    except TypeError:
        return items


def recvmsg_into(self: Any, *args: Any) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_recvmsg_into(self, *args)
    if args:
        args = (_reusable(args[0]), *args[1:])
    try:
        return _c_recvmsg_into(self, *args)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_recvmsg_into, args, POLLIN)


def send(self: Any, data: Any, flags: int = 0, /) -> int:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_send(self, data, flags)
    try:
        return _c_send(self, data, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_send, (data, flags), POLLOUT)


def sendto(self: Any, data: Any, flags_or_addr: Any, addr: Any = None, /) -> int:
    args = (data, flags_or_addr) if addr is None else (data, flags_or_addr, addr)
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_sendto(self, *args)
    try:
        return _c_sendto(self, *args)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_sendto, args, POLLOUT)


def sendmsg(self: Any, *args: Any) -> int:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_sendmsg(self, *args)
    # The buffers and the ancillary data may be one-shot iterables.
    args = tuple(_reusable(a) if i < 2 else a for i, a in enumerate(args))
    try:
        return _c_sendmsg(self, *args)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_sendmsg, args, POLLOUT)


def _plain_into(buffer: Any, nbytes: Any) -> bool:
    """True if ``recv_into(buffer, nbytes)`` asks for at least a byte with arguments the
    C call accepts as they are (else it raises, or returns 0 at once)."""
    if type(nbytes) is not int or nbytes < 0:
        return False
    if type(buffer) is bytearray:
        size = len(buffer)
    elif type(buffer) is memoryview and not buffer.readonly:
        size = buffer.nbytes
    else:
        return False
    return nbytes <= size and (nbytes or size) > 0


def _nbytes(data: Any) -> int:
    if type(data) is bytes or type(data) is bytearray:
        return len(data)
    with memoryview(data) as view:
        return view.nbytes


def sendall(self: Any, data: Any, flags: int = 0, /) -> None:
    """Send all of ``data``; on an exception part-way, ``exc.bytes_sent`` says how much went."""
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_sendall(self, data, flags)
    try:
        sent = _c_send(self, data, flags)
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
        sent = 0
    if sent == _nbytes(data):
        return None
    return _sendall_from(self, data, flags, sent)


def _sendall_from(self: Any, data: Any, flags: int, sent: int) -> None:
    """The rest of ``sendall`` once the first ``sent`` bytes went out (or none could)."""
    timeout = _user_timeout(self)
    with memoryview(data) as view, view.cast("B") as rest:
        if timeout == 0.0:  # the stdlib's own non-blocking behaviour
            return _c_sendall(self, rest[sent:], flags)
        total = len(rest)
        wait = _waiter()
        deadline = None if timeout is None else _monotonic() + timeout
        try:
            while sent < total:
                # The descriptor of the moment, as in _retry.
                if deadline is None:
                    wait(_c_fileno(self), POLLOUT, None)
                else:
                    remaining = deadline - _monotonic()
                    if remaining <= 0:
                        raise _timeout_error("timed out")
                    wait(_c_fileno(self), POLLOUT, remaining)
                with contextlib.suppress(BlockingIOError):
                    sent += _c_send(self, rest[sent:], flags)
        except BaseException as exc:
            exc.bytes_sent = sent  # type: ignore[attr-defined]
            raise
    return None


def _resolve(sock: Any, address: Any) -> Any:
    """Resolve a host name in an INET address through the cancellable resolver.

    The C ``connect`` would call ``getaddrinfo`` itself, uncancellably.
    """
    if (
        type(address) is tuple
        and len(address) >= 2
        and type(address[0]) is str
        and address[0] not in ("", "<broadcast>")
        and sock.family in _INET
        and not _dns._is_numeric(address[0])
        and not _is_hub_thread()
    ):
        infos = _dns.getaddrinfo(address[0], None, sock.family)
        if infos:
            return (infos[0][4][0], *address[1:])
    return address


def _connect_result(sock: Any, timeout: float | None) -> int:
    """Wait for a non-blocking connect to finish; its SO_ERROR, or -1 on timeout."""
    wait = _waiter()
    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        # The descriptor of the moment, as in _retry.
        if deadline is None:
            revents = wait(_c_fileno(sock), POLLOUT, None)
        else:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return -1
            revents = wait(_c_fileno(sock), POLLOUT, remaining)
        if revents:
            return _c_getsockopt(sock, _socket.SOL_SOCKET, _socket.SO_ERROR)


def connect(self: Any, address: Any, /) -> None:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_connect(self, address)
    address = _resolve(self, address)
    try:
        return _c_connect(self, address)
    except BlockingIOError:
        timeout = _user_timeout(self)
        if timeout == 0.0:
            raise
    err = _connect_result(self, timeout)
    if err == -1:
        raise _timeout_error("timed out")
    if err:
        raise OSError(err, os.strerror(err))
    return None


def connect_ex(self: Any, address: Any, /) -> int:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_connect_ex(self, address)
    address = _resolve(self, address)
    err = _c_connect_ex(self, address)
    if err != 115:  # EINPROGRESS
        return err
    timeout = _user_timeout(self)
    if timeout == 0.0:
        return err
    err = _connect_result(self, timeout)
    return _EAGAIN if err == -1 else err


def _accept_raw(self: Any) -> tuple[int, Any]:
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _c_accept(self)  # type: ignore[no-any-return]
    try:
        return _c_accept(self)  # type: ignore[no-any-return]
    except BlockingIOError:
        if _user_timeout(self) == 0.0:
            raise
    return _retry(self, _c_accept, (), POLLIN)  # type: ignore[no-any-return]


def accept(self: Any) -> tuple[_std.socket, Any]:
    """Accept a connection: ``(conn, address)``; ``conn`` is of our class for our sockets."""
    fd, addr = _accept_raw(self)
    if isinstance(self, socket):
        return socket(self.family, self.type, self.proto, fileno=fd), addr
    sock = _std.socket(self.family, self.type, self.proto, fileno=fd)
    # The stdlib's own fix-up, for systems where accept() inherits O_NONBLOCK.
    if _std.getdefaulttimeout() is None and _user_timeout(self):
        sock.setblocking(True)
    return sock, addr


def _sendfile_use_sendfile(self: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    self._check_sendfile_params(file, offset, count)
    sockno = self.fileno()
    try:
        fileno = file.fileno()
    except (AttributeError, io.UnsupportedOperation) as err:
        raise _std._GiveupOnSendfile(err) from None  # type: ignore[attr-defined]
    try:
        fsize = os.fstat(fileno).st_size
    except OSError as err:
        raise _std._GiveupOnSendfile(err) from None  # type: ignore[attr-defined]
    if not fsize:
        return 0
    blocksize = min(count or fsize, 2**30)
    timeout = _user_timeout(self)
    if timeout == 0:
        raise ValueError("non-blocking sockets are not supported")
    wait = _waiter()
    total_sent = 0
    try:
        while True:
            if count:
                blocksize = count - total_sent
                if blocksize <= 0:
                    break
            try:
                sent = os.sendfile(sockno, fileno, offset, blocksize)
            except BlockingIOError:
                # As the stdlib: the socket timeout applies to each wait.
                _wait_writable(wait, sockno, timeout)
                continue
            except OSError as err:
                if total_sent == 0:
                    raise _std._GiveupOnSendfile(err) from None  # type: ignore[attr-defined]
                raise err from None
            if sent == 0:
                break
            offset += sent
            total_sent += sent
        return total_sent
    finally:
        if total_sent > 0 and hasattr(file, "seek"):
            file.seek(offset)


def _wait_writable(
    wait: Callable[[int, int, float | None], int], fd: int, timeout: float | None
) -> None:
    if timeout is None:
        while not wait(fd, POLLOUT, None):
            pass
        return
    deadline = _monotonic() + timeout
    while True:
        remaining = deadline - _monotonic()
        if remaining <= 0:
            raise _timeout_error("timed out")
        if wait(fd, POLLOUT, remaining):
            return


def sendfile(self: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """``socket.sendfile``: ``os.sendfile`` with cancellable waits, else ``send``."""
    if _c_gettimeout(self) != 0.0 and not _adopt(self):
        return _std.socket.sendfile(self, file, offset, count)
    try:
        return _sendfile_use_sendfile(self, file, offset, count)
    except _std._GiveupOnSendfile:  # type: ignore[attr-defined]
        return self._sendfile_use_send(file, offset, count)  # type: ignore[no-any-return]


BLOCKING_METHODS: dict[str, Callable[..., Any]] = {
    "accept": accept,
    "connect": connect,
    "connect_ex": connect_ex,
    "recv": recv,
    "recv_into": recv_into,
    "recvfrom": recvfrom,
    "recvfrom_into": recvfrom_into,
    "recvmsg": recvmsg,
    "recvmsg_into": recvmsg_into,
    "send": send,
    "sendall": sendall,
    "sendto": sendto,
    "sendmsg": sendmsg,
    "sendfile": sendfile,
}

TIMEOUT_METHODS: dict[str, Any] = {
    "settimeout": _settimeout,
    "gettimeout": _gettimeout,
    "setblocking": _setblocking,
    "getblocking": _getblocking,
    "timeout": property(_gettimeout, doc="the socket timeout (as gettimeout())"),
}


# -- the class -------------------------------------------------------------------


class socket(_std.socket):
    """A ``socket.socket`` whose blocking methods are cancellation points.

    Same constructor, methods, timeouts and exceptions as the stdlib class.
    The descriptor is non-blocking at the OS level whatever the timeout (as
    the stdlib's own timeout sockets are); ``detach()`` restores blocking mode
    for a socket without a timeout.

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
        self._tp_timeout = _c_gettimeout(self)
        if self._tp_timeout != 0.0:
            _c_settimeout(self, 0.0)

    def settimeout(self, value: float | None, /) -> None:
        timeout = _parse_timeout(value)
        _c_settimeout(self, 0.0)  # EBADF on a closed socket, as the stdlib
        self._tp_timeout = timeout

    def gettimeout(self) -> float | None:
        return self._tp_timeout

    def setblocking(self, flag: bool, /) -> None:
        self.settimeout(None if _blocking_flag(flag) else 0.0)

    def getblocking(self) -> bool:
        return self._tp_timeout != 0.0

    @property
    def timeout(self) -> float | None:
        return self._tp_timeout

    def detach(self) -> int:
        if self._tp_timeout is None:
            with contextlib.suppress(OSError):
                _c_settimeout(self, None)  # hand over a blocking descriptor
        return super().detach()

    # Adaptive poll-first for blocking sockets: after a receive had to wait,
    # the next few receives poll first instead of paying for an EAGAIN try
    # (request/response traffic waits almost every time); every
    # _POLL_FIRST-th receive tries first again, so streaming traffic whose
    # data is already there goes back to a single syscall.  The hub thread
    # never gets here: _retry there resets the counter after recv set it.
    _tp_wait = 0

    # With the C accelerator, the wait and the receive are one call that
    # releases the GIL once; None from it means "go the ordinary way".
    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        if self._tp_wait and self._tp_timeout is None:
            self._tp_wait -= 1
            if _poll_recv is not None:
                data = _poll_recv(_current_state(), self, bufsize, flags)
                if data is not None:
                    return data
            elif type(bufsize) is int and bufsize > 0:  # else the C recv raises or returns
                _current_state().wait_fd(_c_fileno(self), POLLIN, None)
        try:
            return _c_recv(self, bufsize, flags)
        except BlockingIOError:
            if self._tp_timeout == 0.0:
                raise
        self._tp_wait = _POLL_FIRST
        return _retry(self, _c_recv, (bufsize, flags), POLLIN)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:  # keywords too
        if self._tp_wait and self._tp_timeout is None:
            self._tp_wait -= 1
            if _poll_recv_into is not None:
                n = _poll_recv_into(_current_state(), self, buffer, nbytes, flags)
                if n is not None:
                    return n
            elif _plain_into(buffer, nbytes):  # else the C recv_into below raises
                _current_state().wait_fd(_c_fileno(self), POLLIN, None)
        try:
            return _c_recv_into(self, buffer, nbytes, flags)
        except BlockingIOError:
            if self._tp_timeout == 0.0:
                raise
        self._tp_wait = _POLL_FIRST
        return _retry(self, _c_recv_into, (buffer, nbytes, flags), POLLIN)

    accept = accept
    connect = connect
    connect_ex = connect_ex
    recvfrom = recvfrom
    recvfrom_into = recvfrom_into
    recvmsg = recvmsg
    recvmsg_into = recvmsg_into
    send = send
    sendall = sendall
    sendto = sendto
    sendmsg = sendmsg
    sendfile = sendfile


socket.__module__ = "threadpatch.socket"
SocketType = socket

# The Python methods the C ones (if built) stand in for, and fall back to.
PY_METHODS: dict[str, Callable[..., Any]] = {
    "recv": socket.recv,
    "recv_into": socket.recv_into,
    "sendall": sendall,
}
if _speedups is not None and hasattr(_speedups, "socket_methods"):
    for _name, _method in zip(
        PY_METHODS,
        _speedups.socket_methods(
            socket,
            _c_fileno,
            _core.thread_local,
            _current_state,
            *PY_METHODS.values(),
            _sendall_from,
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


def create_connection(
    address: tuple[str | None, int],
    timeout: float | None = _std._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: tuple[Any, int] | None = None,
    *,
    all_errors: bool = False,
) -> socket:
    """``socket.create_connection`` with a cancellable lookup and connect loop.

    Cancellation:
        The socket being connected is closed; the exception propagates.
    """
    host, port = address
    exceptions: list[Exception] = []
    for res in _dns.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        af, socktype, proto, _canonname, sa = res
        sock = None
        try:
            sock = socket(af, socktype, proto)
            if timeout is not _std._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            exceptions.clear()  # break reference cycles
            return sock
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
