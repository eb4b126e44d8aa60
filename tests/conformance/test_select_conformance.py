"""CPython's ``test.test_select``, ``test.test_poll`` and ``test.test_epoll`` with
``select`` swapped for :mod:`threadpatch.select`.

The tests look ``select`` up as a module global at call time, so each test
runs with that global pointing at our facade (the stdlib module is untouched).
"""

from __future__ import annotations

import pytest

from threadpatch import select as tp_select

from ._skips import apply_skips

test_select = pytest.importorskip("test.test_select")
test_poll = pytest.importorskip("test.test_poll")
test_epoll = pytest.importorskip("test.test_epoll")

# name -> reason
SKIPS: dict[str, str] = {
    # Our poll objects are a Python class that can be instantiated directly
    # (select.poll is a factory function in both cases, so callers can't tell).
    "test_disallow_instantiation": "our poll type is an ordinary class",
}


@pytest.fixture(autouse=True)
def _swap_select(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (test_select, test_poll, test_epoll):
        monkeypatch.setattr(module, "select", tp_select)


def _apply_skips(cls: type) -> type:
    return apply_skips(cls, SKIPS)


@_apply_skips
class TestSelect(test_select.SelectTestCase):
    pass


@_apply_skips
class TestPoll(test_poll.PollTests):
    pass


@_apply_skips
class TestEpoll(test_epoll.TestEPoll):
    pass
