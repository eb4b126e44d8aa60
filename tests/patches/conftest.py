"""Fixtures for the patch-layer tests: every test leaves the stdlib unpatched."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import threadpatch
from threadpatch import _patching

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _unpatched_after() -> Iterator[None]:
    assert not threadpatch.is_patched(), "a previous test left patches applied"
    yield
    threadpatch.unpatch_all()
    leftover = [s for s in _patching._sets.values() if s.depth]
    for patch_set in leftover:  # a failing test may have left a patched() block open
        while patch_set.depth:
            _patching._release(patch_set.flag)
    assert not leftover, f"patch sets still held: {leftover}"
    assert not _patching._active_records()
