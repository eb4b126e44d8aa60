"""The one way a conformance module skips CPython tests: by name, each with its reason."""

from __future__ import annotations

import unittest
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


def apply_skips(cls: type, skips: Mapping[str, str]) -> type:
    """Mark each test of ``cls`` named in ``skips`` as skipped, with its reason."""
    for name, reason in skips.items():
        if hasattr(cls, name):
            setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
    return cls
