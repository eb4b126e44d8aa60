"""CPython's own ``test.test_selectors`` run against threadpatch's selectors.

The test classes are imported from the interpreter's ``test`` package and
subclassed with ``SELECTOR`` set to our classes; nothing is copied.

Skip list (with reasons): none needed so far.  Notes:

* ``test_modify_unregister`` mocks ``selectors.<Class>._selector_cls`` on the
  stdlib class; our subclasses inherit that attribute, so the mock reaches
  them and the test runs as is.
* ``test_timeout``, ``test_select_interrupt_*`` take about a second of wall
  clock each (they measure real timeouts and SIGALRM delivery).
"""

from __future__ import annotations

import unittest

import pytest

from threadpatch import selectors as tp_selectors

from ._skips import apply_skips

test_selectors = pytest.importorskip("test.test_selectors")

SKIPS: dict[str, str] = {}


def _apply_skips(cls: type) -> type:
    return apply_skips(cls, SKIPS)


@_apply_skips
class TestDefaultSelector(test_selectors.BaseSelectorTestCase, unittest.TestCase):
    SELECTOR = tp_selectors.DefaultSelector


@_apply_skips
class TestSelectSelector(test_selectors.BaseSelectorTestCase, unittest.TestCase):
    SELECTOR = tp_selectors.SelectSelector


@_apply_skips
class TestPollSelector(
    test_selectors.BaseSelectorTestCase, test_selectors.ScalableSelectorMixIn, unittest.TestCase
):
    SELECTOR = tp_selectors.PollSelector


@_apply_skips
class TestEpollSelector(test_selectors.EpollSelectorTestCase):
    SELECTOR = tp_selectors.EpollSelector


def test_classes_are_ours() -> None:
    for cls in (TestDefaultSelector, TestSelectSelector, TestPollSelector, TestEpollSelector):
        assert cls.SELECTOR.__module__ == "threadpatch.selectors"
