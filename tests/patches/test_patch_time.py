"""time.sleep under the patch: the builtin's contract, and a cancellation point."""

from __future__ import annotations

import decimal
import fractions
import time

import pytest
from _patch_helpers import only

import threadpatch
from threadpatch import _time

NATIVE_SLEEP = time.sleep


class Seconds(float):
    pass


class Index:
    def __index__(self) -> int:
        return 0


BAD_VALUES = [
    -1,
    -1e-12,
    float("nan"),
    float("inf"),
    -float("inf"),
    10**20,
    9.3e9,
    2**63,
    -(2**70),
    "x",
    None,
    1j,
    decimal.Decimal(0),
    fractions.Fraction(0),
    [],
]


def _outcome(func: object, value: object) -> tuple[type[BaseException], str] | None:
    try:
        func(value)  # type: ignore[operator]
    except Exception as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_errors_are_the_builtins(value: object) -> None:
    expected = _outcome(NATIVE_SLEEP, value)
    assert expected is not None
    assert _outcome(_time.sleep, value) == expected


@pytest.mark.parametrize("value", [0, 0.0, -0.0, True, Seconds(0.001), Index(), 0.0001])
def test_valid_values_sleep(value: object) -> None:
    assert _time.sleep(value) is None  # type: ignore[arg-type]


def test_time_sleep_is_patched_and_restored() -> None:
    with threadpatch.patched(**only("time")):
        assert time.sleep.__wrapped__ is _time.sleep  # type: ignore[attr-defined]
        assert time.sleep.__name__ == "sleep"
    assert time.sleep is NATIVE_SLEEP


def _patched_time() -> threadpatch.patched:
    return threadpatch.patched(**only("time"))


def test_unmodified_time_sleep_is_cancellable(wait_all_threads_blocked: object) -> None:
    with _patched_time():
        t = threadpatch.spawn(time.sleep, 60)
        wait_all_threads_blocked()  # type: ignore[operator]
        assert t.cancel(timeout=5)
    assert t.cancelled


def test_unmodified_time_sleep_times_out() -> None:
    with _patched_time(), pytest.raises(threadpatch.ThreadTimeout):
        threadpatch.timeout_after(0.01, time.sleep, 60)


def test_sleep_in_a_plain_thread_is_cancellable(wait_all_threads_blocked: object) -> None:
    import threading

    outcome: list[BaseException] = []

    def body() -> None:
        try:
            time.sleep(60)
        except BaseException as exc:
            outcome.append(exc)

    with _patched_time():
        t = threading.Thread(target=body)
        t.start()
        threadpatch.current()  # the caller is adopted too
        wait_all_threads_blocked(expected=1)  # type: ignore[operator]
        assert threadpatch.cancel(t, timeout=5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], threadpatch.ThreadCancelled)
