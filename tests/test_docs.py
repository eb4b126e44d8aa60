"""The documentation's code runs: every ```python block of README.md and docs/.

Each block runs as a script in a child interpreter of its own (warnings are
errors there too), bounded in time, with this tree's threadpatch on the path;
the test fails with the block's output if it exits non-zero.  A block that
cannot run on its own (a fragment, an illustration of an API that needs
an outside service) is preceded by a marker with its reason::

    <!-- not-run: a fragment: `sock` comes from the example above -->

so that no block is skipped silently.  ``make docs`` builds the site itself
with warnings as errors.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not-run:(?P<reason>.*?)-->")
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)\s*$")
LIMIT = 60.0


class Block(NamedTuple):
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    not_run: str | None  # the reason, if marked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their not-run markers."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m["lang"]:
            i += 1
            continue
        start, indent = i, len(m["indent"])
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        previous = next((s for s in reversed(lines[:start]) if s.strip()), "")
        marker = NOT_RUN.search(previous)
        reason = marker["reason"].strip() if marker else None
        found.append(Block(path, start + 1, m["lang"], "\n".join(body) + "\n", reason))
        i += 1
    return found


ALL = [b for path in DOCS for b in blocks(path)]
PYTHON = [b for b in ALL if b.lang == "python"]
RUN = [b for b in PYTHON if b.not_run is None]


def test_blocks_are_found() -> None:
    # The parser must see the blocks, or every other test here passes vacuously.
    assert len(PYTHON) >= 25
    assert len(RUN) >= 20
    assert {b.path.name for b in RUN} >= {"README.md", "threads.md", "deadlines.md", "sync.md"}


def test_every_not_run_marker_has_a_reason_and_a_block() -> None:
    for path in DOCS:
        lines = path.read_text().splitlines()
        marked = {b.line for b in blocks(path) if b.not_run is not None}
        for n, line in enumerate(lines, 1):
            m = NOT_RUN.search(line)
            if not m:
                continue
            assert m["reason"].strip(), f"{path.name}:{n}: a not-run marker needs a reason"
            # The next non-blank line: 0-based k is line k + 1.
            following = next((k + 1 for k in range(n, len(lines)) if lines[k].strip()), 0)
            assert following in marked, (
                f"{path.name}:{n}: a not-run marker must stand right before a code block"
            )


@pytest.mark.parametrize("block", RUN, ids=lambda b: b.id)
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    script = tmp_path / f"{block.path.stem}_{block.line}.py"
    script.write_text(block.code)
    # THREADPATCH_PURE_PYTHON stays: the pure-Python leg runs the docs in pure Python too.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("THREADPATCH_") or k == "THREADPATCH_PURE_PYTHON"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        proc = subprocess.run(
            # Warnings are errors, but for the one that says the accelerator is not built.
            [
                sys.executable,
                "-W",
                "error",
                "-W",
                "ignore:threadpatch's C accelerator",
                str(script),
            ],
            capture_output=True,
            text=True,
            timeout=LIMIT,
            cwd=tmp_path,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id} ran longer than {LIMIT:g} s\n{exc.stdout!r}\n{exc.stderr!r}")
    assert proc.returncode == 0, (
        f"{block.id} exited with {proc.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    )
