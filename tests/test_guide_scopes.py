"""Every ``python`` block of docs/guide/scopes-and-executor.md runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide" / "scopes-and-executor.md"
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_has_examples() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_guide_block_runs(index: int) -> None:
    code = compile(BLOCKS[index], f"{GUIDE.name}, python block {index + 1}", "exec")
    exec(code, {"__name__": f"guide_block_{index}"})
