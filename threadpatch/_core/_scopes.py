"""Cancel scopes: ``CancelScope``, ``timeout_after``, ``ignore_after``, ``shield``, ``sleep``.

A :class:`CancelScope` is a unit of cancellation smaller than a thread: the
thread that enters it registers it on its :class:`~._state.ThreadState`
(``state.scopes``, innermost last); ``scope.cancel()`` (from any thread) or
the scope's deadline marks it, and the next blocking operation inside raises
:class:`ScopeCancelled` (a :class:`ThreadCancelled`, so ``except Exception``
cannot swallow it), and keeps raising it until the scope exits, where the
scope catches its own.  Deadline scopes (``timeout_after``/``ignore_after``)
are CancelScopes whose expiry raises :class:`DeadlineExpired` and which turn
it into :class:`ThreadTimeout` (or swallow it) when they exit.

How it works::

    scope.cancel()  (any thread)           hub timer at scope.deadline
          |                                     |
          +--> cancel_called = True  <----------+
                then, if the scope is entered:  state.interrupt = True; state.wake()
                                                      |
    owner thread:  next blocking point: park/poll --> state.deliver()
                   raises the outermost cancelled scope's error that no
                   shield hides --> ... --> that scope's __exit__ catches it

Deadlines are absolute, on the hub's clock (:func:`current_time`:
``time.monotonic`` unless a test installed a virtual clock, see
:class:`threadpatch.testing.MockClock`).  One hub timer per scope with a
finite deadline; moving ``deadline`` re-arms it.

Races, all without a lock on the enter/exit path (CPython's GIL orders the
stores): a canceller stores ``cancel_called`` before it reads ``_active``,
the owner stores ``_active`` before it reads ``cancel_called`` (enter) or
``_timer`` (exit), so one of the two always sees the other; a canceller
that finds the scope gone right after flagging the owner recomputes the
flag, and :meth:`~._state.ThreadState.recompute_interrupt` itself never
loses a flag set while it runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ParamSpec, TypeVar, overload

from . import _hub, _natives
from ._exceptions import DeadlineExpired, ScopeCancelled, ThreadCancelled, ThreadTimeout
from ._hub import get_hub, is_hub_thread
from ._registry import current_state
from ._wait import INFINITE, deadline_after, wait_until

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._hub import TimerHandle
    from ._state import ThreadState

__all__ = [
    "CancelScope",
    "DeadlineScope",
    "check_duration",
    "checkpoint",
    "current_time",
    "ignore_after",
    "shield",
    "sleep",
    "timeout_after",
]

T = TypeVar("T")
P = ParamSpec("P")
_real_clock = _natives.monotonic

# Why a scope was cancelled: its first cause wins.
_NOT_CANCELLED = 0
_CANCEL = 1
_DEADLINE = 2

# Serialises marking a scope (cancel() against its own deadline) and moving
# its deadline; never taken on the enter/exit path.
_mark_lock = _natives.allocate_lock()


def current_time() -> float:
    """The clock of threadpatch deadlines, in seconds (absolute, like ``time.monotonic()``).

    ``CancelScope.deadline`` is on this clock.  It is ``time.monotonic()``,
    except while a test's :class:`~threadpatch.testing.MockClock` is installed.
    """
    return _hub.clock()


def _as_seconds(value: float | None, what: str) -> float:
    """``value`` as a float number of seconds, None as infinity; not NaN, not a string."""
    if value is None:
        return math.inf
    if not isinstance(value, int | float) and not hasattr(type(value), "__float__"):
        # Like time.sleep: numbers (Decimal, Fraction, numpy scalars), not strings.
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, not NaN")
    return seconds


def check_duration(value: float | None, what: str) -> float:
    """Validate a duration in seconds (None means forever) and return it as a float."""
    seconds = _as_seconds(value, what)
    if seconds < 0:
        raise ValueError(f"{what} must be non-negative, got {value!r}")
    return seconds


def _check_deadline(value: float | None) -> float:
    return _as_seconds(value, "deadline")  # an absolute time: a past one is allowed


class CancelScope:
    """A block of code that can be cancelled without cancelling the thread.

    ``with CancelScope() as scope: ...``; ``scope.cancel()`` may be called
    from any thread, before, during or after the block.  The blocking
    operation running inside then raises :class:`ScopeCancelled` (as does
    every later one inside the block), ``finally`` and ``with`` clean-up runs,
    and the scope swallows its own cancellation when the block exits: the
    thread carries on after the ``with``.

    Args:
        deadline: when to cancel the scope by itself, an absolute time on
            :func:`current_time`'s clock; ``None`` (the default) for never.
        shield: suspend delivery of cancellations from outside the scope
            (the thread's, outer scopes') while inside it.

    Attributes:
        cancel_called: True once the scope was cancelled (``cancel()`` or
            the deadline).
        cancelled_caught: True if the scope caught its own cancellation on
            exit (the block was cut short).
        deadline: readable and settable at any time (``math.inf``: none);
            setting one that has passed cancels the scope.
        shield: readable and settable.

    Nesting: each scope catches only its own cancellation; when several
    enclosing scopes are cancelled, the outermost one's is raised (so it
    passes through the inner ones to its owner).  A thread cancel
    (:meth:`Thread.cancel`) passes through every scope.  A scope is entered
    once, by one thread.
    """

    __module__ = "threadpatch"
    __slots__ = (
        "_active",
        "_deadline",
        "_reason",
        "_shield",
        "_state",
        "_timer",
        "cancel_called",
        "cancelled_caught",
        "delivered",
    )

    def __init__(self, deadline: float | None = None, *, shield: bool = False) -> None:
        self._deadline = math.inf if deadline is None else _check_deadline(deadline)
        self._shield = shield is True or bool(shield)
        self._state: ThreadState | None = None
        self._timer: TimerHandle | None = None
        self._active = False
        self._reason = _NOT_CANCELLED
        self.cancel_called = False
        self.cancelled_caught = False
        self.delivered = False

    def __repr__(self) -> str:
        parts = []
        if self._deadline != math.inf:
            parts.append(f"deadline={self._deadline:g}")
        if self._shield:
            parts.append("shield=True")
        state = "active" if self._active else "exited" if self._state is not None else "new"
        if self.cancel_called:
            state += ", cancelled"
        return f"<CancelScope({', '.join(parts)}) {state}>"

    # -- what any thread may do ----------------------------------------------------

    def cancel(self) -> None:
        """Cancel the scope (any thread; idempotent; a no-op once the block has exited)."""
        if not self.cancel_called:
            with _mark_lock:
                self._mark(_CANCEL)

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        deadline = _check_deadline(value)
        with _mark_lock:
            self._deadline = deadline
            if not self._active or self.cancel_called:
                return
            timer, self._timer = self._timer, None
            if timer is not None:
                get_hub().cancel_timer(timer)
            if deadline != math.inf:
                self._arm_locked(deadline)
            if not self._active and self._timer is not None:
                get_hub().cancel_timer(self._timer)  # the block exited meanwhile

    @property
    def shield(self) -> bool:
        return self._shield

    @shield.setter
    def shield(self, value: bool) -> None:
        self._shield = bool(value)
        state = self._state
        if state is not None and self._active:
            state.wake()  # a parked owner looks again at what is deliverable

    # -- marking -------------------------------------------------------------------

    def _mark(self, reason: int) -> bool:
        """Record the cancellation (under ``_mark_lock``) and flag the owner; False if done."""
        if self.cancel_called:
            return False
        self._reason = reason
        self.cancel_called = True  # before reading _active: see the module docstring
        state = self._state
        if state is not None and self._active:
            state.interrupt = True
            state.wake()
            if not self._active:  # the block exited meanwhile: no stale flag
                state.recompute_interrupt()
        return True

    def _arm_locked(self, deadline: float) -> None:
        if deadline <= _hub.clock():
            self._mark(_DEADLINE)
        else:
            self._timer = get_hub().call_at(deadline, self._expire_from_hub)

    def _expire_from_hub(self) -> None:
        with _mark_lock:
            # A timer of a deadline moved later may still fire once: ignore it.
            if _hub.clock() < self._deadline or not self._mark(_DEADLINE):
                return
        self._after_expiry()

    def _after_expiry(self) -> None:
        """Runs in the hub after the deadline marked the scope (a subclass hook)."""

    def _error(self) -> ThreadCancelled:
        return ScopeCancelled(self)

    # -- the owner -----------------------------------------------------------------

    def __enter__(self) -> CancelScope:
        if self._state is not None:
            raise RuntimeError(f"{self!r} has already been entered; make a new one")
        state = self._state = current_state()
        state.scopes.append(self)
        self._active = True  # before reading cancel_called: see the module docstring
        if self.cancel_called:
            state.interrupt = True
        elif self._deadline != math.inf:
            self._arm_on_entry(state)
        return self

    def _arm_on_entry(self, state: ThreadState) -> None:
        try:
            with _mark_lock:
                self._arm_locked(self._deadline)
        except BaseException:
            self._active = False
            state.scopes.remove(self)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        state = self._state
        if state is None or not self._active:
            raise RuntimeError(f"{self!r} exited without being entered")
        self._active = False  # before reading _timer: see the deadline setter
        if self._timer is not None:
            get_hub().cancel_timer(self._timer)
        scopes = state.scopes
        if scopes[-1] is self:
            scopes.pop()
        else:  # exited out of order: still forget it
            scopes.remove(self)
        if state.interrupt:
            state.recompute_interrupt()
        if self.cancel_called:
            return self._close(exc)
        return False

    def _close(self, exc: BaseException | None) -> bool:
        """Exit of a cancelled scope: whether to swallow ``exc``."""
        if isinstance(exc, ScopeCancelled) and exc.scope is self:
            self.cancelled_caught = True
            return True
        return False


class DeadlineScope(CancelScope):
    """The context object of :func:`timeout_after` and :func:`ignore_after`.

    A :class:`CancelScope` whose deadline is ``seconds`` after it is entered.
    Its expiry raises :class:`DeadlineExpired` inside; on exit the scope
    raises :class:`ThreadTimeout` (``timeout_after``) or swallows it
    (``ignore_after``).  ``cancel()`` cuts the block short as for any
    CancelScope, and is swallowed (no ``ThreadTimeout``: it did not time out).

    Attributes:
        seconds: the duration the scope was given.
        deadline: its deadline on the hub's clock (set on entry, movable).
        expired: True once the deadline's expiry was raised inside the scope.
    """

    __module__ = "threadpatch"
    __slots__ = ("_after_expiry_callback", "_swallow", "seconds")

    def __init__(
        self,
        seconds: float | None,
        *,
        swallow: bool,
        after_expiry: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.seconds = check_duration(seconds, "timeout")
        self._swallow = swallow
        self._after_expiry_callback = after_expiry

    def __repr__(self) -> str:
        kind = "ignore_after" if self._swallow else "timeout_after"
        return f"<{kind}({self.seconds:g}) scope>"

    @property
    def expired(self) -> bool:
        return self.delivered and self._reason == _DEADLINE

    @property
    def timed_out(self) -> bool:
        """True once the deadline has passed (whether or not it was raised)."""
        return self._reason == _DEADLINE

    def __enter__(self) -> DeadlineScope:
        if self._state is None:
            self._deadline = _hub.clock() + self.seconds
        CancelScope.__enter__(self)
        return self

    def _after_expiry(self) -> None:
        if self._after_expiry_callback is not None:
            # Runs after the owner is marked: whatever it does next, the
            # owner's next blocking point sees this expiry first.
            self._after_expiry_callback()

    def _error(self) -> ThreadCancelled:
        if self._reason == _DEADLINE:
            return DeadlineExpired(self)
        return ScopeCancelled(self)

    def _close(self, exc: BaseException | None) -> bool:
        if not self.delivered:
            return False
        if isinstance(exc, ScopeCancelled):
            if exc.scope is not self:
                return False  # an outer scope's cancellation: let it reach its owner
            self.cancelled_caught = True
            if self._swallow or self._reason != _DEADLINE:
                return True
            raise ThreadTimeout(f"timed out after {self.seconds:g} s") from exc
        if exc is not None or self._swallow or self._reason != _DEADLINE:
            return False  # a thread cancel, or whatever the body raised instead
        # The body caught our expiry and carried on: still report it.
        raise ThreadTimeout(f"timed out after {self.seconds:g} s")


@overload
def timeout_after(seconds: float | None, /) -> DeadlineScope: ...
@overload
def timeout_after(
    seconds: float | None, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T: ...
def timeout_after(
    seconds: float | None,
    func: Callable[..., T] | None = None,
    /,
    *args: object,
    **kwargs: object,
) -> DeadlineScope | T:
    """Put a deadline on every blocking operation inside a block or a call.

    ``with timeout_after(5): ...`` or ``timeout_after(5, func, *args, **kwargs)``.
    When the deadline passes, the blocking operation inside raises
    :class:`DeadlineExpired`; the scope then raises :class:`ThreadTimeout` (a
    ``TimeoutError``) to its caller.  Nested scopes: the earliest deadline wins
    and each scope catches only its own expiry.

    Args:
        seconds: the time allowed; ``None`` means no deadline (positional).
        func: optional function to call inside the scope with ``args`` and
            ``kwargs`` (positional, so every keyword goes to ``func``).

    Returns:
        The scope object (context-manager form) or ``func``'s result.

    Raises:
        ThreadTimeout: the deadline passed while the thread was blocked.
        ValueError: ``seconds`` is negative or NaN.
    """
    scope = DeadlineScope(seconds, swallow=False)
    if func is None:
        if args or kwargs:
            raise TypeError("timeout_after() got arguments for a function but no function")
        return scope
    with scope:
        return func(*args, **kwargs)
    raise AssertionError("unreachable: a timeout_after scope never swallows")  # pragma: no cover


@overload
def ignore_after(seconds: float | None, /) -> DeadlineScope: ...
@overload
def ignore_after(
    seconds: float | None, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T | None: ...
def ignore_after(
    seconds: float | None,
    func: Callable[..., T] | None = None,
    /,
    *args: object,
    **kwargs: object,
) -> DeadlineScope | T | None:
    """Like :func:`timeout_after`, but the scope swallows its own expiry.

    The context object's ``expired`` is True afterwards if the deadline cut the
    block short; the call form returns ``func``'s result, or None on expiry.
    """
    scope = DeadlineScope(seconds, swallow=True)
    if func is None:
        if args or kwargs:
            raise TypeError("ignore_after() got arguments for a function but no function")
        return scope
    with scope:
        return func(*args, **kwargs)
    return None


def shield() -> CancelScope:
    """Suspend delivery of cancellation and outer deadlines inside the block.

    ``CancelScope(shield=True)``.  For clean-up that has to block (flush,
    goodbye message, join).  Deadline scopes opened *inside* the shield
    still apply.  A cancellation or expiry that arrives meanwhile is raised
    at the first blocking operation after the block.
    """
    return CancelScope(shield=True)


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
