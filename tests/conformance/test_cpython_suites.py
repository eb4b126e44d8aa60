"""The conformance runner's bookkeeping: the known-failures list, ``check`` and the table."""

from __future__ import annotations

import re

import pytest

from . import cpython_suites as runner

KNOWN = "test.test_threading.MiscTestCase.test__all__"


def _outcome(mode: str, tests: dict[str, str], seconds: float = 10.0) -> runner.Outcome:
    return runner.Outcome("test_threading", mode, runner.PY, "ran", seconds, tests)


def test_known_failures_have_one_test_id_and_a_reason_each() -> None:
    lines = [
        line
        for line in runner.KNOWN_FAILURES.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(lines) <= 10  # short: fix the library rather than grow the list
    for line in lines:
        test_id, pythons, reason = line.split(None, 2)
        assert re.fullmatch(r"test\.[\w.]+\.\w+\.\w+", test_id), test_id  # a test, no module
        assert pythons == "*" or all(re.fullmatch(r"3\.\d+", p) for p in pythons.split(","))
        assert len(reason) > 20
    assert KNOWN in runner.known_failures()


def test_check_fails_on_unexpected_failures_and_on_known_failures_that_pass() -> None:
    clean = _outcome("patched", {KNOWN: "failed", "test.m.C.test_ok": "passed"})
    assert runner.check([clean]) == []
    surprise = _outcome("patched", {KNOWN: "failed", "test.m.C.test_new": "failed"})
    assert runner.check([surprise]) == ["unexpected failure: test.m.C.test_new"]
    fixed = _outcome("patched", {KNOWN: "passed"})
    assert runner.check([fixed]) == [f"known failure now passes (remove it): {KNOWN}"]
    hung = runner.Outcome("test_threading", "patched", runner.PY, "timeout", 360.0, {})
    assert runner.check([hung]) == ["test_threading: timeout after 360 s"]


def test_every_suite_has_a_time_limit_and_only_loopback_resources() -> None:
    for suite in runner.SUITES:
        assert 0 < suite.timeout <= 900, suite.name
        assert set(suite.resources) <= {"network"}, suite.name
        if suite.resources:
            assert "loopback" in suite.note or "localhost" in suite.note, suite.name
    names = [s.name for s in runner.SUITES]
    assert len(names) == len(set(names))


def test_table_marks_what_misses_the_targets() -> None:
    base = {f"test.test_threading.C.test_{i}": "passed" for i in range(100)}
    ours = {**base, KNOWN: "failed", "test.test_threading.C.test_0": "failed"}
    base[KNOWN] = "passed"
    text = runner.table([_outcome("patched", ours, 20.0), _outcome("baseline", base, 10.0)])
    row = next(line for line in text.splitlines() if line.startswith("| test_threading |"))
    assert "**98.0 %**" in row
    assert "**2.00x**" in row
    below = text.split("## Below target", 1)[1]
    assert "`MiscTestCase.test__all__`: check__all__" in below
    assert "`C.test_0`: not a known failure" in below
    assert "2.00x the unpatched time" in below


@pytest.mark.parametrize("argv", [["check", "no_such_suite"], ["run", "test_nothing_here"]])
def test_unknown_modules_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        runner.main(argv)
