"""Test support: a virtual clock for threadpatch's deadlines.

A test that waits for a deadline in real time is slow, and flaky when the
machine is loaded: the deadline may pass before the thread even blocks, or
long after.  :class:`MockClock` replaces the clock of deadlines with one that
moves only when the test says so (trio's ``MockClock`` is the model)::

    from threadpatch.testing import MockClock

    def test_request_times_out():
        with MockClock() as clock:
            t = threadpatch.spawn(fetch_with_a_60_s_deadline)
            wait_until_blocked(t)            # an event, a state: no sleep
            clock.jump(60)                   # the deadline fires now
            t.wait(timeout=5)
            assert isinstance(t.exception, threadpatch.ThreadTimeout)

What the clock drives, while it is installed:

* the deadlines of ``timeout_after`` / ``ignore_after`` scopes entered
  meanwhile (their ``.deadline`` is on this clock), including the per-test
  deadline of the pytest plugin (``--thread-timeout``);
* every timer of the hub (``Hub.call_at``), and so when those scopes expire;
* ``threadpatch.sleep`` (and ``time.sleep`` when patched) in every thread:
  a sleep ends when the clock has moved on by its length.

What keeps real time: every wait with a plain timeout argument
(``Event.wait(5)``, ``Lock.acquire(timeout=5)``, ``Queue.get(timeout=5)``,
``join(timeout=5)``, socket timeouts, ``select(..., 5)``), the grace periods
of Ctrl-C and of cancellation, and the hub thread's own waits.  Those are the
bounds a test puts on its waits, and they must stay real.
"""

from __future__ import annotations

import math

from . import _core
from ._core import _natives

__all__ = ["MockClock"]

#: Shortest real interval between two looks of the autojump at the threads.
_AUTOJUMP_POLL = 0.001
#: The clock installed now, if any.
_installed: MockClock | None = None


class MockClock:
    """A virtual clock for threadpatch's deadlines; a context manager installs it.

    Virtual time starts at the real ``time.monotonic()`` of installation (so
    deadlines already pending keep their meaning) and then moves only by
    :meth:`jump`, or by an autojump.

    Args:
        autojump_threshold: if finite, the clock jumps to the next pending
            deadline by itself once every thread threadpatch knows has been
            blocked for this many *real* seconds (nothing else could move the
            test on); ``math.inf`` (the default) never jumps by itself.
            Threads outside threadpatch's knowledge (plain threads that never
            used it, native waits in C code) and I/O in flight are invisible
            to it: a thread counts as blocked while it waits in threadpatch
            for a peer's bytes.  Use it when only a deadline can end the wait,
            or set a threshold longer than anything in flight can take.

    Only one clock is installed at a time; the deadlines of scopes entered
    while it is installed stay on virtual time after it is removed (do not
    let them outlive it).
    """

    __slots__ = ("_autojump_threshold", "_installed", "_lock", "_quiet", "_time")

    def __init__(self, autojump_threshold: float = math.inf) -> None:
        self._lock = _natives.allocate_lock()
        self._time = _natives.monotonic()
        self._installed = False
        self._quiet: tuple[frozenset[tuple[int, float]], float] | None = None
        self._autojump_threshold = math.inf
        self.autojump_threshold = autojump_threshold

    def __repr__(self) -> str:
        return f"<MockClock time={self._time:.6f} autojump_threshold={self._autojump_threshold}>"

    # -- time ------------------------------------------------------------------

    def time(self) -> float:
        """The current virtual time (the clock of deadlines while installed)."""
        return self._time

    def jump(self, seconds: float) -> None:
        """Move virtual time ``seconds`` on and fire every timer that is due then.

        When this returns the hub has run the expiries of every deadline
        scope and sleep that ended: their threads are marked and woken (wait
        for what they do next with an event or a join, not a sleep).

        Raises:
            ValueError: ``seconds`` is negative or NaN.
            HubError: the hub has died.
        """
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"time cannot go backwards: jump({seconds!r})")
        with self._lock:
            self._time += seconds
        if self._installed:
            _core.get_hub().sync()

    @property
    def autojump_threshold(self) -> float:
        """Real seconds every known thread must be blocked before the clock jumps."""
        return self._autojump_threshold

    @autojump_threshold.setter
    def autojump_threshold(self, seconds: float) -> None:
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"autojump_threshold must be >= 0, got {seconds!r}")
        self._autojump_threshold = seconds
        self._quiet = None
        if self._installed:
            _core.get_hub().sync()  # the hub looks again with the new threshold

    # -- installation ----------------------------------------------------------

    def __enter__(self) -> MockClock:
        global _installed
        if _installed is not None:
            raise RuntimeError(f"{_installed!r} is installed already")
        _installed = self
        self._time = _natives.monotonic()
        self._installed = True
        _core.set_clock(self.time, self._idle_from_hub)
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _installed
        self._installed = False
        _installed = None
        _core.set_clock(None)

    # -- autojump (in the hub thread) ------------------------------------------

    def _idle_from_hub(self, deadline: float | None) -> float | None:
        """The hub's question: how long until it looks again (None: until poked)."""
        threshold = self._autojump_threshold
        if deadline is None or threshold == math.inf:
            self._quiet = None
            return None  # nothing to jump to, or never jump: only a poke moves on
        quiet = _all_blocked()
        if quiet is None:
            self._quiet = None
            return max(threshold, _AUTOJUMP_POLL)
        now = _natives.monotonic()
        if self._quiet is None or self._quiet[0] != quiet:
            self._quiet = (quiet, now)  # blocked since now, as far as we know
            return max(threshold, _AUTOJUMP_POLL)
        if now - self._quiet[1] < threshold:
            return max(threshold - (now - self._quiet[1]), _AUTOJUMP_POLL)
        # Every thread stayed in the same wait all along: only time moves on.
        self._quiet = None
        with self._lock:
            self._time = max(self._time, deadline)
        return 0.0  # look at the heap again at once: the timer is due now


def _all_blocked() -> frozenset[tuple[int, float]] | None:
    """Which wait each known thread is in, if every one is blocked; else None.

    A thread counts as blocked while it is parked in threadpatch with nothing
    pending for it (an expiry or a cancellation marks it interrupted before
    it wakes).  The answer names each thread's wait (the thread, and since
    when it waits there): the same answer twice means nobody moved between.
    """
    waits = []
    for state in _core.all_states():
        if state.finished:
            continue
        if not state.parked or state.interrupt:
            return None
        waits.append((id(state), state.blocked_since))
    return frozenset(waits)
