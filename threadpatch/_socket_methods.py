"""The blocking socket methods, built by one factory, and their waits.

Every blocking method is the same shape, so :func:`blocking_method` builds
them from the C method they wrap::

    a C timeout above 0?                adopt it (see _socket_timeouts), or
                                        call the C method as it is (stdlib SSL)
    a blocking socket (C timeout None)? add MSG_DONTWAIT to the call's flags,
                                        or, for a call without flags, make the
                                        descriptor O_NONBLOCK for the call
                                        (call_nonblocking): it never blocks
    try the C method                    data ready: done, no wait, no hub
    BlockingIOError and a user timeout of 0.0, or MSG_DONTWAIT on a
    blocking socket?                    re-raise it, as the stdlib does
    loop: _core.wait_fd(fd of the moment, events, deadline, reason)
          retry the C method            (it reads the descriptor again)
    deadline passed                     TimeoutError("timed out")
    cancelled / expired                 ThreadCancelled / DeadlineExpired

The C method parses the arguments itself, so the signatures, keywords and
error messages are the stdlib's own.  ``sendall``, ``connect``,
``connect_ex``, ``accept`` and ``sendfile`` add their own steps around the
same waits.  Each function accepts *any* ``socket.socket`` as ``self``:
:data:`METHODS` maps the stdlib names to them, for the patch layer
(``threadpatch._socket.BLOCKING_METHODS`` adds ``accept``).

Waiting is ``_core.wait_fd``'s (the cancel check, the hub thread, the
deadline, the reason).  The one local shortcut: with the C accelerator, a
wait for a receive on a socket without a timeout and the receive itself are
one C call (``_speedups.poll_recv``), which waits through the core's
``ThreadState.begin_fd_wait``/``end_fd_wait`` protocol; it declines (None)
whenever the Python path must decide (a hub thread, a wake-up without data,
a descriptor that changed), and the loop goes on with ``wait_fd``.

Each wait is on the socket's descriptor of the moment, and each retry is the
C method, which reads it again, as the native call's loop does: another
thread may close the socket while we wait, and the retry then fails with
``EBADF`` instead of using a number that may name another file by now.

``sendall`` cancelled (or timed out, or failing) part-way sets
``bytes_sent`` on the exception it raises: how many bytes went out before it.
"""

from __future__ import annotations

import _socket
import contextlib
import io
import operator
import os
import select as _std_select
import socket as _std
from typing import TYPE_CHECKING, Any

from . import _core, _dns
from ._accel import speedups as _speedups
from ._socket_timeouts import adopt, call_nonblocking, user_timeout

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeAlias

    _Added: TypeAlias = tuple[tuple[Any, ...], dict[str, Any], Any]
    AddDontWait: TypeAlias = Callable[[tuple[Any, ...], dict[str, Any]], _Added | None]

__all__ = [
    "FAST_WAITS",
    "FAST_WAIT_FD",
    "METHODS",
    "POLLIN",
    "POLLOUT",
    "POLL_FIRST",
    "accept_raw",
    "blocking_method",
    "c_fileno",
    "fast_waiter",
    "sendall_from",
    "wait_socket",
]

_C = _socket.socket
_c_accept = _C._accept  # type: ignore[attr-defined]
_c_connect = _C.connect
_c_connect_ex = _C.connect_ex
_c_recv = _C.recv
_c_recv_into = _C.recv_into
_c_send = _C.send
_c_sendall = _C.sendall
_c_gettimeout = _C.gettimeout
_c_getsockopt = _C.getsockopt
c_fileno = _C.fileno

POLLIN: int = _std_select.POLLIN
POLLOUT: int = _std_select.POLLOUT
_MSG_DONTWAIT: int = getattr(_socket, "MSG_DONTWAIT", 0)
_INET = (_socket.AF_INET, _socket.AF_INET6)
_EAGAIN = 11  # errno.EAGAIN == EWOULDBLOCK on Linux: what connect_ex reports on timeout
_EINPROGRESS = 115
_wait_fd = _core.wait_fd
_deadline_after = _core.deadline_after
_current_waiter = _core.current_waiter
_ThreadState = _core.ThreadState
#: Receives a blocking socket of ours waits before it tries, after one had to
#: wait; up to POLL_FIRST_MAX once the one that tried first had to wait too.
POLL_FIRST = 16
POLL_FIRST_MAX = 256
_timeout_error = _std.timeout

#: The C wait-and-receive of a blocking socket: C method -> its wait-and-call,
#: ``fast(waiter, reason, sock, *args)`` -> the result, or None for "go on in
#: Python".  Empty without the accelerator.
FAST_WAITS: dict[object, Callable[..., Any]] = {}
#: One C wait for a descriptor, ``fast_wait_fd(waiter, reason, fd, events)`` ->
#: its revents, 0 if only woken, None for "wait in Python"; or None.
FAST_WAIT_FD: Callable[[object, object, int, int], int | None] | None = None
if _speedups is not None and hasattr(_speedups, "poll_recv"):
    FAST_WAITS = {_c_recv: _speedups.poll_recv, _c_recv_into: _speedups.poll_recv_into}
    FAST_WAIT_FD = _speedups.poll_fd


def fast_waiter(timeout: float | None) -> object:
    """The waiter for :func:`wait_socket`'s C wait: only without a timeout, with the accelerator."""
    if timeout is None and FAST_WAIT_FD is not None:
        return _current_waiter()  # the C wait declines a hub thread's native waiter
    return None


def wait_socket(sock: Any, events: int, deadline: float, reason: object, waiter: object) -> bool:
    """Wait for ``events`` on the socket's descriptor of the moment; False once ``deadline`` passed.

    With a ``waiter`` from :func:`fast_waiter` the wait is one C call; True
    may then also mean "woken, nothing ready": the caller's retry says EAGAIN
    and it waits again.
    """
    fd = c_fileno(sock)
    if (
        waiter is not None
        and FAST_WAIT_FD is not None
        and FAST_WAIT_FD(waiter, reason, fd, events) is not None
    ):
        return True
    return bool(_wait_fd(fd, events, deadline, reason))


def _retry(
    sock: Any,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    events: int,
    kind: str,
    fast_args: tuple[Any, ...],
) -> Any:
    """Wait for ``events``; retry ``func(sock, *args, **kwargs)`` until it stops saying EAGAIN.

    ``fast_args`` are the caller's own arguments, for the C wait-and-receive
    (which adds ``MSG_DONTWAIT`` itself).
    """
    timeout = user_timeout(sock)
    reason = (kind, sock)
    waiter = fast_waiter(timeout)
    fast = FAST_WAITS.get(func) if waiter is not None and not kwargs else None
    if fast is not None and type(waiter) is _ThreadState and hasattr(sock, "_tp_wait"):
        # One of ours, in a thread that waits cancellably: its next receives
        # in this thread wait first, in C (see _socket.py).  Each time the
        # receive that tried first had to wait again (request/response
        # traffic), the next streak is twice as long.
        ident = waiter.ident
        streak = POLL_FIRST if sock._tp_wait_ident != ident else sock._tp_wait_streak * 2
        sock._tp_wait = sock._tp_wait_streak = min(streak, POLL_FIRST_MAX)
        sock._tp_wait_ident = ident
    deadline = _deadline_after(timeout)
    while True:
        if fast is not None:
            result = fast(waiter, reason, sock, *fast_args)
            if result is not None:
                return result
        if not wait_socket(sock, events, deadline, reason, waiter):
            raise _timeout_error("timed out")
        try:
            return func(sock, *args, **kwargs)
        except BlockingIOError:
            pass


def _must_not_wait(sock: Any, flags: Any) -> bool:
    """After EAGAIN: True if the stdlib would raise it (non-blocking socket, or
    MSG_DONTWAIT on a blocking one; with a timeout the stdlib waits anyway)."""
    timeout = user_timeout(sock)
    return timeout == 0.0 or (timeout is None and bool(operator.index(flags) & _MSG_DONTWAIT))


# A MSG_DONTWAIT adder: ``add(args, kwargs)`` -> ``(args, kwargs, the
# caller's flags)`` with MSG_DONTWAIT added to the flags, or None where the
# call has no valid flags (the C method then raises its own error for them).


def _dontwait_at(index: int, fill: tuple[Any, ...] = (), keyword: bool = False) -> AddDontWait:
    """The MSG_DONTWAIT adder of a method whose flags are positional ``index``.

    ``fill``: the defaults of the optional arguments before the flags (given
    in the call if the caller left them out); ``keyword``: the method takes
    ``flags=`` (and its other arguments) as keywords.
    """

    def add(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Added | None:
        n = len(args)
        if n > index:
            flags = args[index]
            try:
                dontwait = operator.index(flags) | _MSG_DONTWAIT
            except TypeError:
                return None
            return (*args[:index], dontwait, *args[index + 1 :]), kwargs, flags
        if kwargs:
            if not keyword:
                return None
            flags = kwargs.get("flags", 0)
            try:
                dontwait = operator.index(flags) | _MSG_DONTWAIT
            except TypeError:
                return None
            return args, {**kwargs, "flags": dontwait}, flags
        missing = index - n  # optional arguments left out before the flags
        if missing > len(fill):
            return None  # too few arguments
        return (*args, *fill[len(fill) - missing :], _MSG_DONTWAIT), kwargs, 0

    return add


def _sendto_dontwait(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Added | None:
    # sendto(data, address) or sendto(data, flags, address)
    if kwargs:
        return None
    if len(args) == 2:
        return (args[0], _MSG_DONTWAIT, args[1]), kwargs, 0
    if len(args) == 3:
        flags = args[1]
        try:
            dontwait = operator.index(flags) | _MSG_DONTWAIT
        except TypeError:
            return None
        return (args[0], dontwait, args[2]), kwargs, flags
    return None


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


def _first_reusable(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return (_reusable(args[0]), *args[1:]) if args else args


def _two_reusable(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # sendmsg's buffers and ancillary data may both be one-shot iterables.
    return tuple(_reusable(a) if i < 2 else a for i, a in enumerate(args))


def nonblocking_call(c_method: Callable[..., Any]) -> Callable[..., Any]:
    """``c_method(sock, ...)`` run with the descriptor O_NONBLOCK for the call (see
    :func:`~threadpatch._socket_timeouts.call_nonblocking`)."""

    def call(sock: Any, /, *args: Any, **kwargs: Any) -> Any:
        return call_nonblocking(sock, c_method, sock, *args, **kwargs)

    return call


def blocking_method(
    c_method: Callable[..., Any],
    events: int,
    kind: str,
    dontwait: AddDontWait | None = None,
    prepare: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None,
) -> Callable[..., Any]:
    """The cancellable version of the C socket method ``c_method``.

    Args:
        c_method: the ``_socket.socket`` method; it parses the arguments.
        events: what to wait for on EAGAIN (``POLLIN`` or ``POLLOUT``).
        kind: the wait reason's kind (``"recv"``, ``"send"``, ``"accept"``).
        dontwait: adds ``MSG_DONTWAIT`` to the call's flags (see
            :func:`_dontwait_at`); None for a method without flags, which a
            blocking socket runs with the descriptor non-blocking instead.
        prepare: makes the positional arguments reusable by a retry.
    """
    toggled = nonblocking_call(c_method)

    def method(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        c_timeout = _c_gettimeout(self)
        if c_timeout and not adopt(self):
            return c_method(self, *args, **kwargs)
        if prepare is not None:
            args = prepare(args)
        func, call_args, call_kwargs = c_method, args, kwargs
        added = None
        if c_timeout is None:
            # A blocking socket, and its descriptor: the call must not block.
            added = dontwait(args, kwargs) if dontwait is not None else None
            if added is None:
                func = toggled
            else:
                call_args, call_kwargs = added[0], added[1]
        try:
            return func(self, *call_args, **call_kwargs)
        except BlockingIOError:
            if added is None and dontwait is not None:
                added = dontwait(args, kwargs)
            if _must_not_wait(self, 0 if added is None else added[2]):
                raise
        return _retry(self, func, call_args, call_kwargs, events, kind, args)

    name = c_method.__name__
    method.__name__ = name
    method.__qualname__ = f"socket.{name}"
    method.__doc__ = f"{c_method.__doc__}\n\nCancellable: a cancellation point when it waits."
    return method


recv = blocking_method(_c_recv, POLLIN, "recv", _dontwait_at(1))
recv_into = blocking_method(_c_recv_into, POLLIN, "recv", _dontwait_at(2, (0,), keyword=True))
recvfrom = blocking_method(_C.recvfrom, POLLIN, "recv", _dontwait_at(1))
recvfrom_into = blocking_method(
    _C.recvfrom_into, POLLIN, "recv", _dontwait_at(2, (0,), keyword=True)
)
recvmsg = blocking_method(_C.recvmsg, POLLIN, "recv", _dontwait_at(2, (0,)))
recvmsg_into = blocking_method(
    _C.recvmsg_into, POLLIN, "recv", _dontwait_at(2, (0,)), _first_reusable
)
send = blocking_method(_c_send, POLLOUT, "send", _dontwait_at(1))
sendto = blocking_method(_C.sendto, POLLOUT, "send", _sendto_dontwait)
sendmsg = blocking_method(_C.sendmsg, POLLOUT, "send", _dontwait_at(2, ((),)), _two_reusable)
accept_raw = blocking_method(_c_accept, POLLIN, "accept")


def _nbytes(data: Any) -> int:
    if type(data) is bytes or type(data) is bytearray:
        return len(data)
    with memoryview(data) as view:
        return view.nbytes


def sendall(self: Any, /, *args: Any, **kwargs: Any) -> None:
    """Send all of ``data``; on an exception part-way, ``exc.bytes_sent`` says how much went."""
    if kwargs or not 1 <= len(args) <= 2:
        return _c_sendall(self, *args, **kwargs)  # the stdlib's TypeError
    data, flags = args if len(args) == 2 else (args[0], 0)
    c_timeout = _c_gettimeout(self)
    if c_timeout and not adopt(self):
        return _c_sendall(self, data, flags)
    try:
        dontwait = operator.index(flags) | _MSG_DONTWAIT
    except TypeError:
        return _c_sendall(self, data, flags)  # raises the stdlib's error for the flags
    try:
        sent = _c_send(self, data, dontwait)
    except BlockingIOError:
        if user_timeout(self) == 0.0:
            raise
        sent = 0
    if sent == _nbytes(data):
        return None
    return sendall_from(self, data, flags, sent)


def sendall_from(self: Any, data: Any, flags: int, sent: int) -> None:
    """The rest of ``sendall`` once the first ``sent`` bytes went out (or none could)."""
    with memoryview(data) as view, view.cast("B") as rest:
        if _must_not_wait(self, flags):  # the stdlib's own non-waiting behaviour
            return _c_sendall(self, rest[sent:], flags)
        dontwait = operator.index(flags) | _MSG_DONTWAIT
        total = len(rest)
        timeout = user_timeout(self)
        deadline = _deadline_after(timeout)  # for the whole call, as the stdlib
        reason = ("send", self)
        waiter = fast_waiter(timeout)
        try:
            while sent < total:
                if not wait_socket(self, POLLOUT, deadline, reason, waiter):
                    raise _timeout_error("timed out")
                with contextlib.suppress(BlockingIOError):
                    sent += _c_send(self, rest[sent:], dontwait)
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
        and not _dns.is_numeric(address[0])
    ):
        infos = _dns.getaddrinfo(address[0], None, sock.family)
        if infos:
            return (infos[0][4][0], *address[1:])
    return address


def _connect_result(sock: Any, timeout: float | None) -> int:
    """Wait for a non-blocking connect to finish; its SO_ERROR, or -1 on timeout."""
    if not _wait_fd(c_fileno(sock), POLLOUT, _deadline_after(timeout), ("connect", sock)):
        return -1
    return _c_getsockopt(sock, _socket.SOL_SOCKET, _socket.SO_ERROR)


_toggled_connect = nonblocking_call(_c_connect)
_toggled_connect_ex = nonblocking_call(_c_connect_ex)


def connect(self: Any, /, *args: Any, **kwargs: Any) -> None:
    if kwargs or len(args) != 1:
        return _c_connect(self, *args, **kwargs)  # the stdlib's TypeError
    (address,) = args
    c_timeout = _c_gettimeout(self)
    if c_timeout and not adopt(self):
        return _c_connect(self, address)
    address = _resolve(self, address)
    try:
        if c_timeout is None:  # a blocking descriptor: non-blocking for the call
            return _toggled_connect(self, address)  # type: ignore[no-any-return]
        return _c_connect(self, address)
    except BlockingIOError:
        timeout = user_timeout(self)
        if timeout == 0.0:
            raise
    err = _connect_result(self, timeout)
    if err == -1:
        raise _timeout_error("timed out")
    if err:
        raise OSError(err, os.strerror(err))
    return None


def connect_ex(self: Any, /, *args: Any, **kwargs: Any) -> int:
    if kwargs or len(args) != 1:
        return _c_connect_ex(self, *args, **kwargs)  # the stdlib's TypeError
    (address,) = args
    c_timeout = _c_gettimeout(self)
    if c_timeout and not adopt(self):
        return _c_connect_ex(self, address)
    address = _resolve(self, address)
    # A blocking descriptor is non-blocking for the call.
    err = (_toggled_connect_ex if c_timeout is None else _c_connect_ex)(self, address)
    if err != _EINPROGRESS:
        return err
    timeout = user_timeout(self)
    if timeout == 0.0:
        return err
    err = _connect_result(self, timeout)
    return _EAGAIN if err == -1 else err


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
    timeout = user_timeout(self)
    if timeout == 0:
        raise ValueError("non-blocking sockets are not supported")
    reason = ("send", self)
    # A blocking descriptor is non-blocking during each os.sendfile().
    blocking = _c_gettimeout(self) is None
    total_sent = 0
    try:
        while True:
            if count:
                blocksize = count - total_sent
                if blocksize <= 0:
                    break
            try:
                if blocking:
                    sent = call_nonblocking(self, os.sendfile, sockno, fileno, offset, blocksize)
                else:
                    sent = os.sendfile(sockno, fileno, offset, blocksize)
            except BlockingIOError:
                # As the stdlib: the socket timeout applies to each wait, on the
                # descriptor read at entry (os.sendfile is given that number).
                if not _wait_fd(sockno, POLLOUT, _deadline_after(timeout), reason):
                    raise _timeout_error("timed out") from None
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


def sendfile(self: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
    """``socket.sendfile``: ``os.sendfile`` with cancellable waits, else ``send``."""
    if _c_gettimeout(self) and not adopt(self):
        return _std.socket.sendfile(self, file, offset, count)
    try:
        return _sendfile_use_sendfile(self, file, offset, count)
    except _std._GiveupOnSendfile:  # type: ignore[attr-defined]
        return self._sendfile_use_send(file, offset, count)  # type: ignore[no-any-return]


#: The blocking methods but ``accept`` (which makes a socket of the caller's
#: class: see threadpatch._socket), by stdlib name.
METHODS: dict[str, Callable[..., Any]] = {
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
