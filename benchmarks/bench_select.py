"""select/poll/selectors: cancellable waits against the stdlib in the same run.

Two workloads per API:

* ready: the descriptor is already readable, so the call answers at once (the
  hot path: one native call with a zero timeout plus argument checks);
* becomes ready: a peer thread answers a one-byte ping, so every wait really
  blocks and is woken (a socketpair round trip).
"""

from __future__ import annotations

import select
import selectors
import socket
import threading
from collections.abc import Callable

from benchmarks._harness import Table, one_cpu, ratio_row
from threadpatch import select as tp_select
from threadpatch import selectors as tp_selectors

Waiter = Callable[[], object]


def _waiters(sock: socket.socket) -> dict[str, tuple[Waiter, Waiter]]:
    """name -> (ours, stdlib): each waits until ``sock`` is readable."""
    fd = sock.fileno()
    ours_poll, std_poll = tp_select.poll(), select.poll()
    ours_poll.register(fd, select.POLLIN)
    std_poll.register(fd, select.POLLIN)
    ours_sel, std_sel = tp_selectors.DefaultSelector(), selectors.DefaultSelector()
    ours_sel.register(fd, selectors.EVENT_READ)
    std_sel.register(fd, selectors.EVENT_READ)
    return {
        "select.select": (
            lambda: tp_select.select([fd], [], [], 5),
            lambda: select.select([fd], [], [], 5),
        ),
        "poll.poll": (lambda: ours_poll.poll(5000), lambda: std_poll.poll(5000)),
        f"{type(std_sel).__name__}.select": (lambda: ours_sel.select(5), lambda: std_sel.select(5)),
    }


def _ready(wait: Waiter) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            wait()

    return run


def _round_trip(wait: Waiter, a: socket.socket) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            a.send(b"x")
            wait()  # blocks until the peer's answer arrives
            a.recv(1)

    return run


def _peer(b: socket.socket) -> None:
    while True:
        data = b.recv(1)
        if not data or data == b"q":
            return
        b.send(data)


def run() -> Table:
    table = Table("select/poll/selectors (ratio to the stdlib)")
    a, b = socket.socketpair()
    with a, b:
        b.send(b"r")  # a stays readable for the "ready" rows
        for name, (ours, native) in _waiters(a).items():
            ratio_row(table, f"{name}, fd ready", _ready(ours), _ready(native), 20_000, 2.0)
        a.recv(1)
        with one_cpu():  # a ping-pong between two threads: see one_cpu()
            peer = threading.Thread(target=_peer, args=(b,), daemon=True)
            peer.start()
            for name, (ours, native) in _waiters(a).items():
                ratio_row(
                    table,
                    f"{name}, fd becomes ready (round trip, one CPU)",
                    _round_trip(ours, a),
                    _round_trip(native, a),
                    2_000,
                    1.3,
                )
            a.send(b"q")
            peer.join(5)
    return table


if __name__ == "__main__":
    run()
