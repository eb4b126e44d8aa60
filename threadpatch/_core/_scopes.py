"""Deadlines and shields: ``timeout_after``, ``ignore_after``, ``shield``, ``sleep``.

A deadline scope registers one timer with the hub when it is entered, at a
deadline on the hub's clock (``_hub.clock``: ``time.monotonic`` unless a test
installed a virtual clock, see :class:`threadpatch.testing.MockClock`).  When
the timer fires, the hub marks the scope ``timed_out`` and wakes the owning
thread; the next blocking operation inside the scope raises
:class:`DeadlineExpired` (a :class:`ThreadCancelled`, so ``except Exception``
cannot swallow it), and keeps raising it until the scope exits.  On exit the
scope that owns the expiry turns it into :class:`ThreadTimeout` (or swallows
it, for ``ignore_after``); an expiry of an outer scope passes through.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, TypeVar, overload

from . import _hub, _natives
from ._exceptions import DeadlineExpired, ThreadTimeout
from ._hub import get_hub, is_hub_thread
from ._registry import current_state
from ._wait import INFINITE, deadline_after, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._hub import TimerHandle
    from ._state import ThreadState

__all__ = [
    "DeadlineScope",
    "Shield",
    "checkpoint",
    "ignore_after",
    "shield",
    "sleep",
    "timeout_after",
]

T = TypeVar("T")
_real_clock = _natives.monotonic


def check_duration(value: float | None, what: str) -> float:
    """Validate a duration in seconds (None means forever) and return it as a float."""
    if value is None:
        return math.inf
    if not isinstance(value, int | float) and not hasattr(type(value), "__float__"):
        # Like time.sleep: numbers (Decimal, Fraction, numpy scalars), not strings.
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    if seconds < 0:
        raise ValueError(f"{what} must be non-negative, got {value!r}")
    return seconds


class DeadlineScope:
    """The context object of :func:`timeout_after` and :func:`ignore_after`.

    Attributes:
        seconds: the duration the scope was given.
        deadline: its deadline on the hub's clock (set on entry):
            ``time.monotonic()``, or a test's :class:`~threadpatch.testing.MockClock`.
        expired: True once the deadline's expiry was raised inside the scope.
    """

    __module__ = "threadpatch"
    __slots__ = (
        "_after_expiry",
        "_state",
        "_swallow",
        "_timer",
        "deadline",
        "delivered",
        "seconds",
        "timed_out",
    )
    shield = False

    def __init__(
        self,
        seconds: float | None,
        *,
        swallow: bool,
        after_expiry: Callable[[], None] | None = None,
    ) -> None:
        self.seconds = check_duration(seconds, "timeout")
        self._swallow = swallow
        self._after_expiry = after_expiry
        self._state: ThreadState | None = None
        self._timer: TimerHandle | None = None
        self.deadline = math.inf
        self.timed_out = False
        self.delivered = False

    def __repr__(self) -> str:
        kind = "ignore_after" if self._swallow else "timeout_after"
        return f"<{kind}({self.seconds:g}) scope>"

    @property
    def expired(self) -> bool:
        return self.delivered

    def __enter__(self) -> DeadlineScope:
        if self._state is not None:
            raise RuntimeError(f"{self!r} has already been entered; make a new one")
        state = self._state = current_state()
        seconds = self.seconds
        self.deadline = _hub.clock() + seconds
        state.scopes.append(self)
        if seconds <= 0:
            self.timed_out = True
            state.interrupt = True
        elif seconds != math.inf:
            try:
                self._timer = get_hub().call_at(self.deadline, self._expire_from_hub)
            except BaseException:
                state.scopes.pop()
                raise
        return self

    def _expire_from_hub(self) -> None:
        state = self._state
        assert state is not None
        self.timed_out = True
        state.interrupt = True
        state.wake()
        if self._after_expiry is not None:
            # Runs after the owner is marked: whatever it does next, the
            # owner's next blocking point sees this expiry first.
            self._after_expiry()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        state = self._state
        assert state is not None
        if self._timer is not None:
            get_hub().cancel_timer(self._timer)
        scopes = state.scopes
        if scopes and scopes[-1] is self:
            scopes.pop()
        else:  # exited out of order: still forget it
            scopes.remove(self)
        state.recompute_interrupt()
        if not self.delivered:
            return False
        if isinstance(exc, DeadlineExpired):
            if exc.scope is not self:
                return False  # an outer scope's expiry: let it reach its owner
            if self._swallow:
                return True
            raise ThreadTimeout(f"timed out after {self.seconds:g} s") from exc
        if exc is not None:
            return False  # a cancellation, or whatever the body raised instead
        if self._swallow:
            return False
        # The body caught our expiry and carried on: still report it.
        raise ThreadTimeout(f"timed out after {self.seconds:g} s")


@overload
def timeout_after(seconds: float | None) -> DeadlineScope: ...
@overload
def timeout_after(seconds: float | None, func: Callable[..., T], *args: object) -> T: ...
def timeout_after(
    seconds: float | None, func: Callable[..., T] | None = None, *args: object
) -> DeadlineScope | T:
    """Put a deadline on every blocking operation inside a block or a call.

    ``with timeout_after(5): ...`` or ``timeout_after(5, func, *args)``.
    When the deadline passes, the blocking operation inside raises
    :class:`DeadlineExpired`; the scope then raises :class:`ThreadTimeout` (a
    ``TimeoutError``) to its caller.  Nested scopes: the earliest deadline wins
    and each scope catches only its own expiry.

    Args:
        seconds: the time allowed; ``None`` means no deadline.
        func: optional function to call inside the scope with ``args``.

    Returns:
        The scope object (context-manager form) or ``func``'s result.

    Raises:
        ThreadTimeout: the deadline passed while the thread was blocked.
        ValueError: ``seconds`` is negative or NaN.
    """
    scope = DeadlineScope(seconds, swallow=False)
    if func is None:
        return scope
    with scope:
        return func(*args)
    raise AssertionError("unreachable: a timeout_after scope never swallows")  # pragma: no cover


@overload
def ignore_after(seconds: float | None) -> DeadlineScope: ...
@overload
def ignore_after(seconds: float | None, func: Callable[..., T], *args: object) -> T | None: ...
def ignore_after(
    seconds: float | None, func: Callable[..., T] | None = None, *args: object
) -> DeadlineScope | T | None:
    """Like :func:`timeout_after`, but the scope swallows its own expiry.

    The context object's ``expired`` is True afterwards if the deadline cut the
    block short; the call form returns ``func``'s result, or None on expiry.
    """
    scope = DeadlineScope(seconds, swallow=True)
    if func is None:
        return scope
    with scope:
        return func(*args)
    return None


class Shield:
    """Context object of :func:`shield`."""

    __slots__ = ("_state",)
    shield = True
    timed_out = False
    delivered = False

    def __enter__(self) -> Shield:
        state = self._state = current_state()
        state.scopes.append(self)
        return self

    def __exit__(self, *exc_info: object) -> Literal[False]:
        scopes = self._state.scopes
        if scopes and scopes[-1] is self:
            scopes.pop()
        else:
            scopes.remove(self)
        # Whatever is pending is raised at the next blocking operation.
        self._state.recompute_interrupt()
        return False


def shield() -> Shield:
    """Suspend delivery of cancellation and outer deadlines inside the block.

    For clean-up that has to block (flush, goodbye message, join).  Deadline
    scopes opened *inside* the shield still apply.  A cancellation or expiry
    that arrives meanwhile is raised at the first blocking operation after the
    block.
    """
    return Shield()


def sleep(seconds: float) -> None:
    """Block for ``seconds`` (a cancellation point).

    Raises:
        ThreadCancelled: the thread was cancelled (or a deadline expired)
            before or during the sleep.
        ValueError: ``seconds`` is negative or NaN.

    Cancellation:
        The sleep ends at once; nothing else is affected.

    A sleep runs on the real clock, except while a test's virtual clock
    (:class:`threadpatch.testing.MockClock`) is installed: then it ends when
    that clock has moved ``seconds`` on, like a deadline.
    """
    seconds = check_duration(seconds, "sleep length")
    if is_hub_thread():
        _natives.sleep(seconds)
        return
    state = current_state()
    if seconds == 0:
        state.check()
        _natives.sleep(0)  # let other threads run, as time.sleep(0) does
        return
    if _hub.clock is not _real_clock:
        _sleep_on_virtual_clock(state, seconds)
        return
    wait_until(_never, deadline_after(seconds), ("sleep", seconds), state)
    state.check()


def _sleep_on_virtual_clock(state: ThreadState, seconds: float) -> None:
    # The hub's timer ends the sleep, as it ends a deadline scope: the expiry
    # marks the thread interrupted, which the clock's autojump can see (a
    # thread that is about to wake is not idle).
    with DeadlineScope(seconds, swallow=True):
        wait_until(_never, INFINITE, ("sleep", seconds), state)
    state.check()  # a cancellation that came as the sleep ended


def _never() -> bool:
    return False


def checkpoint() -> None:
    """A cancellation point for CPU-bound loops: raise if cancelled or past a deadline."""
    state = current_state()
    if state.interrupt:
        state.deliver()
