"""The stdlib queue classes while patched: clean-up puts and gets in cancelled threads."""

from __future__ import annotations

import queue
import sys
import time

import pytest

import threadpatch
from threadpatch import _sync


@pytest.mark.xfail(
    strict=True,
    reason="known bug: a stdlib Queue made while patched has a threadpatch Lock as its "
    "mutex, whose contended acquire is a cancellation point, so put_nowait() in a "
    "cancelled thread fails while another thread is inside put/get",
)
def test_cancelled_thread_puts_without_waiting_while_another_thread_is_inside() -> None:
    # urllib3 returns a connection to its pool (a LifoQueue) this way in the
    # finally of a cancelled request: the put must not fail just because
    # another thread held the queue's mutex for a few statements.
    with threadpatch.patched():
        q: queue.Queue[int] = queue.Queue()
    outcome: list[BaseException | None] = []

    def body() -> None:
        threadpatch.current().cancel()  # recorded: raised at the next blocking point
        try:
            q.put_nowait(1)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with q.mutex:  # another thread is inside put() or get()
        t = threadpatch.spawn(body)
        deadline = time.monotonic() + 10
        while not t.done():  # until it has failed, or waits for the mutex we hold
            frame = sys._current_frames().get(t.ident or 0)
            if frame is not None and frame.f_code is _sync.Condition.__enter__.__code__:
                break
            assert time.monotonic() < deadline, "the thread neither ended nor waited"
            time.sleep(0.0005)  # polling the thread's frame, not synchronising on time
    t.join(timeout=10)
    assert outcome == [None]
    assert q.get_nowait() == 1
