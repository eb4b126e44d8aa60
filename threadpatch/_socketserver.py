"""Threading socket servers whose ``shutdown()`` cancels the handler threads.

The stdlib's :class:`socketserver.ThreadingMixIn` starts a plain thread per
request, and ``shutdown()`` only stops ``serve_forever``: a handler blocked
reading from a client that never speaks keeps the server (and, at exit, the
interpreter) waiting.  :class:`ThreadingMixIn` here keeps the stdlib's
behaviour and hooks, and adds:

* handler threads are threadpatch threads (:func:`threadpatch.spawn`);
  accepted sockets are threadpatch sockets when :mod:`threadpatch._socket`
  is available, so a handler's reads and writes are cancellation points;
* ``serve_forever`` waits in a cancellable selector and ``shutdown()`` wakes
  it at once through a pipe (no ``poll_interval`` delay);
* ``shutdown()`` and ``server_close()`` cancel every running handler; a
  handler that is still blocked after :attr:`ThreadingMixIn.cancel_grace`
  seconds (e.g. in an unpatched native call) gets its connection shut down,
  which ends any native read or write on it.  ``server_close()`` then joins
  the handlers (if ``block_on_close``), bounded by
  :attr:`ThreadingMixIn.cancel_timeout`.

A handler sees :class:`ThreadCancelled` at its blocking point, so its
``finally`` blocks and ``finish()`` run; the stdlib's
``process_request_thread`` then closes the request in its own ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import selectors as _std_selectors
import socket as _std_socket
import socketserver as _std
import sys
import threading
from typing import Any

from . import _core
from ._core import _natives
from ._selectors import PollSelector, SelectSelector

try:
    from ._socket import socket as _tp_socket
except ImportError:  # pragma: no cover - built without the socket module
    _tp_socket = None  # type: ignore[assignment, misc]

__all__ = [
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "ThreadingUnixDatagramServer",
    "ThreadingUnixStreamServer",
]

_ServerSelector: type[_std_selectors.BaseSelector] = (
    PollSelector if hasattr(_std_selectors, "PollSelector") else SelectSelector
)


class _Flag:
    """A cancellable stand-in for the stdlib server's ``threading.Event``."""

    __slots__ = ("_lot", "_set")

    def __init__(self) -> None:
        self._set = False
        self._lot = _core.ParkingLot()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        self._lot.unpark_all()

    def clear(self) -> None:
        self._set = False

    def wait(self, timeout: float | None = None) -> bool:
        deadline = _core.deadline_after(timeout)
        return self._lot.park_until(lambda: self._set, deadline, ("event", self))


def _as_cancellable(request: Any) -> Any:
    """An accepted stdlib socket turned into a threadpatch socket (same descriptor)."""
    if (
        _tp_socket is None
        or type(request) is not _std_socket.socket  # already ours, ssl, or a UDP tuple
    ):
        return request
    timeout = request.gettimeout()
    sock = _tp_socket(request.family, request.type, request.proto, fileno=request.detach())
    sock.settimeout(timeout)
    return sock


class _HandlerList(list[_core.Thread[None]]):
    """What the stdlib mixin's ``server_close`` expects of ``_threads``.

    Its ``join()`` is a no-op: our ``server_close`` cancels and joins the
    handlers itself, after the stdlib's.
    """

    def join(self) -> None:
        pass

    def reap(self) -> None:
        pass


class ThreadingMixIn(_std.ThreadingMixIn):
    """Mix-in for a threading server whose ``shutdown()`` cancels its handlers.

    Use it like :class:`socketserver.ThreadingMixIn`
    (``class Server(ThreadingMixIn, socketserver.TCPServer)``).

    Attributes:
        daemon_threads: as in the stdlib (handler threads are daemons).
        block_on_close: ``server_close()`` waits for the handler threads.
        cancel_grace: seconds a cancelled handler gets before its connection
            is shut down under it.
        cancel_timeout: at most this many seconds ``server_close()`` waits
            for the cancelled handlers to end.
    """

    cancel_grace: float = 1.0
    cancel_timeout: float = 5.0
    # The stdlib BaseServer's private state, which serve_forever() shares with
    # shutdown() and the stdlib's own handle_request()/serve_forever().
    _BaseServer__shutdown_request: bool
    _BaseServer__is_shut_down: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handlers: dict[_core.Thread[None], Any] = {}
        self._handlers_lock = _natives.allocate_lock()
        self._wake_lock = _natives.allocate_lock()
        self._wake_w = -1
        super().__init__(*args, **kwargs)
        # serve_forever() sets it when it ends; shutdown() waits for it.
        self._BaseServer__is_shut_down = _Flag()

    # -- handler threads -----------------------------------------------------------

    @property
    def handler_threads(self) -> list[_core.Thread[None]]:
        """The handler threads still running."""
        with self._handlers_lock:
            return list(self._handlers)

    def get_request(self) -> Any:
        request, client_address = super().get_request()  # type: ignore[misc]
        return _as_cancellable(request), client_address

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a threadpatch thread that runs ``process_request_thread``."""
        with self._handlers_lock:
            handle = _core.spawn(
                self._run_handler,
                request,
                client_address,
                daemon=bool(self.daemon_threads),
                name=f"{type(self).__name__}-handler",
            )
            self._handlers[handle] = request

    @property
    def _threads(self) -> _HandlerList:
        # The stdlib mixin's list of handler threads (code and CPython's tests
        # read it): here, the ones still running.
        return _HandlerList(self.handler_threads)

    def _run_handler(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        except _core.ThreadCancelled:
            raise  # the server cancelled it: the thread ends cancelled, quietly
        except BaseException:
            # What escapes a stdlib handler thread (process_request_thread
            # handles Exception; SystemExit and the like get out) goes to
            # threading.excepthook: so it does here, as that thread's.
            exc_type, exc, tb = sys.exc_info()
            hook_args = (exc_type, exc, tb, threading.current_thread())
            threading.excepthook(threading.ExceptHookArgs(hook_args))
            del exc, tb, hook_args
        finally:
            with self._handlers_lock:
                self._handlers.pop(_core.current(), None)

    def cancel_handlers(self, wait: bool = True) -> list[_core.Thread[None]]:
        """Cancel every running handler thread; with ``wait``, wait for them.

        Returns:
            The handler threads that were cancelled.

        Cancellation:
            If the caller is cancelled while waiting, the handlers stay
            cancelled and the wait ends.
        """
        with self._handlers_lock:
            handlers = list(self._handlers.items())
        for thread, _ in handlers:
            thread.cancel(blocking=False)
        if wait and handlers:
            deadline = _core.deadline_after(self.cancel_grace)
            for thread, request in handlers:
                if not thread.wait(max(0.0, _core.seconds_left(deadline))):
                    _force_shutdown(request)
            deadline = _core.deadline_after(self.cancel_timeout)
            for thread, _ in handlers:
                thread.wait(max(0.0, _core.seconds_left(deadline)))
        return [thread for thread, _ in handlers]

    # -- serving -----------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until ``shutdown()``; the wait is cancellable.

        ``shutdown()`` wakes the loop at once; ``poll_interval`` only paces
        ``service_actions()``.
        """
        self._BaseServer__is_shut_down.clear()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with self._wake_lock:
            self._wake_w = wake_w
        try:
            with _ServerSelector() as selector:
                selector.register(self, _std_selectors.EVENT_READ)  # type: ignore[arg-type]
                selector.register(wake_r, _std_selectors.EVENT_READ)
                while not self._BaseServer__shutdown_request:
                    ready = selector.select(poll_interval)
                    if self._BaseServer__shutdown_request:
                        break
                    for key, _ in ready:
                        fileobj: object = key.fileobj
                        if fileobj is self:
                            self._handle_request_noblock()  # type: ignore[attr-defined]
                        else:
                            _drain(wake_r)
                    self.service_actions()  # type: ignore[attr-defined]
        finally:
            with self._wake_lock:
                self._wake_w = -1
            os.close(wake_w)
            os.close(wake_r)
            self._BaseServer__shutdown_request = False
            self._BaseServer__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever``, wait until it has, and cancel the handlers.

        Like the stdlib, it must be called while ``serve_forever`` runs in
        another thread (or is about to).

        Cancellation:
            The wait for ``serve_forever`` is a cancellation point.
        """
        self._BaseServer__shutdown_request = True
        with self._wake_lock:
            if self._wake_w >= 0:
                # A full pipe means the loop is awake anyway.
                with contextlib.suppress(BlockingIOError):
                    _natives.write(self._wake_w, b"\0")
        self._BaseServer__is_shut_down.wait()
        self.cancel_handlers(wait=True)

    def server_close(self) -> None:
        """Close the server socket, cancel the handlers, join them if ``block_on_close``."""
        super().server_close()
        self.cancel_handlers(wait=bool(self.block_on_close))

    def handle_request(self) -> None:
        """Handle one request, waiting at most ``self.timeout`` (cancellable)."""
        timeout = self.socket.gettimeout()  # type: ignore[attr-defined]
        if timeout is None:
            timeout = self.timeout  # type: ignore[attr-defined]
        elif self.timeout is not None:  # type: ignore[attr-defined]
            timeout = min(timeout, self.timeout)  # type: ignore[attr-defined]
        deadline = _core.deadline_after(timeout)
        with _ServerSelector() as selector:
            selector.register(self, _std_selectors.EVENT_READ)  # type: ignore[arg-type]
            while True:
                if selector.select(timeout):
                    return self._handle_request_noblock()  # type: ignore[attr-defined, no-any-return]
                if deadline != _core.INFINITE:
                    timeout = _core.seconds_left(deadline)
                    if timeout < 0:
                        return self.handle_timeout()  # type: ignore[attr-defined, no-any-return]


def _drain(fd: int) -> None:
    try:
        while _natives.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _force_shutdown(request: Any) -> None:
    """End native reads and writes on a connection whose handler ignores cancellation."""
    if isinstance(request, _std_socket.socket):
        with contextlib.suppress(OSError):  # already closed or not connected
            request.shutdown(_std_socket.SHUT_RDWR)


class ThreadingTCPServer(ThreadingMixIn, _std.TCPServer):
    """A TCP server with a thread per request; ``shutdown()`` cancels them."""


class ThreadingUDPServer(ThreadingMixIn, _std.UDPServer):
    """A UDP server with a thread per request; ``shutdown()`` cancels them."""


if hasattr(_std, "UnixStreamServer"):

    class ThreadingUnixStreamServer(ThreadingMixIn, _std.UnixStreamServer):
        """A Unix stream server with a thread per request."""

    class ThreadingUnixDatagramServer(ThreadingMixIn, _std.UnixDatagramServer):
        """A Unix datagram server with a thread per request."""


for _cls in (
    ThreadingMixIn,
    ThreadingTCPServer,
    ThreadingUDPServer,
    ThreadingUnixStreamServer,
    ThreadingUnixDatagramServer,
):
    _cls.__module__ = "threadpatch.socketserver"
