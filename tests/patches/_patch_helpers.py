"""Helpers shared by the patch-layer tests."""

from __future__ import annotations

from threadpatch.patches import TARGETS


def only(*flags: str) -> dict[str, bool]:
    """patch_all()/patched() flags that turn on just ``flags``."""
    unknown = set(flags) - set(TARGETS)
    assert not unknown, unknown
    return {flag: flag in flags for flag in TARGETS}
