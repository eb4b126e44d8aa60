"""Run the 1 KiB echo on gevent's monkey-patched sockets; print seconds per round trip.

Run in a subprocess by bench_socket.py, so gevent's patching never touches the
benchmark process: ``python benchmarks/_gevent_echo.py N ROUNDS``.
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._echo import echo_setup, round_trips  # noqa: E402


def main() -> None:
    n, rounds = int(sys.argv[1]), int(sys.argv[2])
    (client,), close = echo_setup(socket)
    round_trips(client, n // 10)
    best = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        round_trips(client, n)
        best.append((time.perf_counter() - t0) / n)
    close()
    best.sort()
    print(best[len(best) // 2])


if __name__ == "__main__":
    main()
