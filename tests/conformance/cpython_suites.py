"""CPython's own regression suites, run as a user would: ``python -m threadpatch -m test MODULE``.

Each module of the interpreter's ``test`` package runs in a child interpreter
under ``patch_all()`` (``python -m threadpatch -m test``, in-process, so the
tests run patched), with a per-module time limit and only the resources that
stay on this machine.  Results come from regrtest's JUnit XML.

    python -m tests.conformance.cpython_suites run [--baseline] [--fast] [-j N] [MODULE ...]
    python -m tests.conformance.cpython_suites check [--fast] [-j N]  # CI: vs known failures
    python -m tests.conformance.cpython_suites table      # docs/conformance.md from results

``run`` writes ``<results>/<python>/<module>.<mode>.json`` (mode ``patched`` or
``baseline``, the unpatched interpreter); ``check`` runs the patched suites
and fails on a failure that is not in ``known_failures.txt`` and on a known
failure that now passes (the list stays honest); ``table`` turns the stored
results into ``docs/conformance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
KNOWN_FAILURES = HERE / "known_failures.txt"
RESULTS = ROOT / "docs" / "conformance-results"
TABLE = ROOT / "docs" / "conformance.md"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Suite:
    """One module of the ``test`` package and how to run it."""

    name: str
    timeout: float = 300.0  # the whole module, seconds
    #: regrtest resources to grant: only those that stay on this machine.
    resources: tuple[str, ...] = ()
    #: regrtest ``-m`` patterns (a bounded subset of a very large module).
    match: tuple[str, ...] = ()
    #: regrtest ``-i`` patterns: tests this machine cannot run, patched or not.
    ignore: tuple[str, ...] = ()
    note: str = ""
    #: In the fast set (``--fast``, ``make conformance-fast``): a quicker check.
    fast: bool = False
    #: Why patched runs of it take longer than the target, if they do.
    slow_reason: str = ""


#: Loopback only: test.support's HOST is "localhost" and the servers listen there.
LOOPBACK_NETWORK = ("network",)

SUITES: tuple[Suite, ...] = (
    Suite("test_threading", 300, fast=True),
    Suite("test_thread", 120, fast=True),
    Suite("test_threading_local", 120, fast=True),
    Suite("test_queue", 180, fast=True),
    Suite("test_sched", 120, fast=True),
    Suite(
        "test_socket",
        600,
        ignore=("*ThreadedVSOCKSocketStreamTest*",),
        note="VSOCK: the kernel has the family but no peer, accept() hangs here unpatched too",
        fast=True,
    ),
    Suite("test_ssl", 300, fast=True),
    Suite("test_select", 120, fast=True),
    Suite("test_poll", 120, fast=True),
    Suite("test_epoll", 120, fast=True),
    Suite("test_selectors", 180, fast=True),
    Suite(
        "test_socketserver",
        300,
        LOOPBACK_NETWORK,
        note="`-u network` granted: its servers and clients are all on localhost",
        fast=True,
    ),
    Suite(
        "test_timeout",
        120,
        LOOPBACK_NETWORK,
        match=("CreationTestCase", "UDPTimeoutTestCase"),
        note="`-u network` with the loopback classes only: TCPTimeoutTestCase's setUp "
        "resolves www.python.org (each of its tests leaves the machine)",
        fast=True,
    ),
    Suite(
        "test_httplib",
        180,
        note="`-u network` not granted: its networked tests reach pythontest.net (they skip)",
        fast=True,
    ),
    Suite("test_httpservers", 300),
    Suite("test_urllib2", 180, fast=True),
    Suite("test_urllib2_localnet", 180, fast=True),
    Suite("test_smtplib", 180, fast=True),
    Suite("test_ftplib", 180, fast=True),
    Suite("test_imaplib", 180, fast=True),
    Suite("test_poplib", 180, fast=True),
    Suite("test_xmlrpc", 300),
    Suite("test_wsgiref", 180, fast=True),
    Suite("test_concurrent_futures", 600),
    Suite("test_logging", 400),
    Suite("test_subprocess", 600),
    # The io set: open()/io.open and the file objects (regular files keep the C stack).
    Suite("test_fileio", 120, fast=True),
    Suite("test_file", 120, fast=True),
    Suite("test_univnewlines", 120, fast=True),
    Suite("test_io", 300),
    Suite("test_signal", 300),
    # os.read/os.write/os.close and the pty module's reads of terminals (the os set).
    Suite("test_os", 300, fast=True),
    Suite("test_pty", 120, fast=True),
    Suite("test_asyncio", 900),
    Suite(
        "test_multiprocessing_spawn",
        600,
        match=("*.WithThreadsTest*", "*.WithManagerTest*", "*._TestQueue*"),
        note="a bounded subset: threads, managers and queues (the whole module takes "
        "about 10 minutes unpatched here: every test spawns interpreters)",
    ),
)


@dataclass
class Outcome:
    """What one module run gave."""

    module: str
    mode: str
    python: str
    status: str  # "ran", "skipped" (the whole module), "timeout", "missing", "crashed"
    seconds: float
    tests: dict[str, str] = field(default_factory=dict)  # test id -> passed/failed/skipped

    def count(self, result: str) -> int:
        return sum(1 for r in self.tests.values() if r == result)


def _test_dir() -> Path:
    import test

    return Path(test.__file__).resolve().parent


def _parse_junit(path: Path) -> dict[str, str]:
    results: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            results[name] = "failed"
        elif "skipped" in kinds or case.get("status") == "skipped":
            results[name] = "skipped"
        else:
            results[name] = "passed"
    return results


def run_suite(suite: Suite, *, patched: bool) -> Outcome:
    """Run one module in a child interpreter and collect its per-test results."""
    mode = "patched" if patched else "baseline"
    test_dir = _test_dir()
    if not (test_dir / f"{suite.name}.py").exists() and not (test_dir / suite.name).is_dir():
        return Outcome(suite.name, mode, PY, "missing", 0.0)
    with tempfile.TemporaryDirectory(prefix="tp-conformance-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable]
        if patched:
            cmd += ["-m", "threadpatch"]
        cmd += ["-m", "test", suite.name, "--junit-xml", str(xml), "-q"]
        cmd += ["--timeout", str(int(suite.timeout))]
        if suite.resources:
            cmd += ["-u", ",".join(suite.resources)]
        for pattern in suite.match:
            cmd += ["-m", pattern]
        for pattern in suite.ignore:
            cmd += ["-i", pattern]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        env.pop("THREADPATCH_AUTOPATCH", None)
        start = time.monotonic()
        returncode = None
        try:
            returncode = subprocess.run(
                cmd,
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=suite.timeout + 60,
                check=False,
            ).returncode
            status = "ran"
        except subprocess.TimeoutExpired:
            status = "timeout"
        seconds = time.monotonic() - start
        tests = _parse_junit(xml) if xml.exists() else {}
        if status == "ran" and not tests:
            # No test ran: the module skipped itself (a resource not granted),
            # or the run died before writing its results.
            status = "skipped" if returncode == 0 and xml.exists() else "crashed"
        return Outcome(suite.name, mode, PY, status, seconds, tests)


def _store(outcome: Outcome, results: Path) -> None:
    target = results / outcome.python
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{outcome.module}.{outcome.mode}.json"
    path.write_text(json.dumps(outcome.__dict__, indent=1, sort_keys=True) + "\n")


def _load(results: Path) -> list[Outcome]:
    return [Outcome(**json.loads(p.read_text())) for p in sorted(results.glob("*/*.json"))]


def known_failures(python: str = PY) -> dict[str, str]:
    """``{test id: reason}`` for this Python, from known_failures.txt.

    Each line: ``<test id> <pythons or *> <reason>``, e.g.
    ``test.test_threading.MiscTestCase.test__all__ * __module__ of replacements is threadpatch``.
    """
    found: dict[str, str] = {}
    for line in KNOWN_FAILURES.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test_id, pythons, reason = line.split(None, 2)
        if pythons == "*" or python in pythons.split(","):
            found[test_id] = reason
    return found


def check(outcomes: list[Outcome]) -> list[str]:
    """The problems of a patched run against the known failures (empty: all good)."""
    known = known_failures()
    problems = []
    for outcome in outcomes:
        if outcome.status in ("timeout", "crashed"):
            problems.append(f"{outcome.module}: {outcome.status} after {outcome.seconds:.0f} s")
        for test_id, result in sorted(outcome.tests.items()):
            if result == "failed" and test_id not in known:
                problems.append(f"unexpected failure: {test_id}")
            elif result == "passed" and test_id in known:
                problems.append(f"known failure now passes (remove it): {test_id}")
    return problems


#: The targets of docs/conformance.md, per module and Python.
TARGET_RATE = 99.5  # percent of the baseline-passing tests that pass patched
TARGET_TIME = 1.5  # patched wall time over unpatched
#: Modules done sooner than this unpatched are not held to TARGET_TIME: their
#: time is mostly start-up (``python -m threadpatch`` imports threadpatch and
#: what patch_all() patches: about a second on a loaded 2-core machine).
TIME_FLOOR = 10.0


def table(outcomes: list[Outcome]) -> str:
    """docs/conformance.md: per module and Python, patched against the unpatched baseline."""
    by_key = {(o.python, o.module, o.mode): o for o in outcomes}
    pythons = sorted({o.python for o in outcomes})
    lines = [
        "# CPython's regression suites under `patch_all()`",
        "",
        "Generated by `python -m tests.conformance.cpython_suites table` from the runs in",
        "`docs/conformance-results/` (`run --baseline` on each Python: each module patched, as",
        "`python -m threadpatch -m test MODULE`, then unpatched). *Pass rate* is the share of",
        "the tests that pass unpatched which also pass patched; *time* is patched wall time",
        "over unpatched (one run each on a shared 2-core machine: a few tenths either way are",
        "noise). Targets: pass rate at least "
        f"{TARGET_RATE} %, time at most {TARGET_TIME}x (for modules that take at least",
        f"{TIME_FLOOR:g} s unpatched: a shorter run is mostly the start-up of",
        "`python -m threadpatch`, about a second here); a row that misses one is marked",
        "**bold** and explained under *Below target*. Known failures, each with its reason, are",
        "in `tests/conformance/known_failures.txt`. CI (`make test`) runs every patched suite",
        "against that list on every Python (`check -j 2`: 3.5 min on 3.12, 4.6 min on 3.13",
        "here); `make conformance` runs them on one, `check --fast` only the fast set.",
        "",
        "| module | Python | run | passed | skipped | failed | known | pass rate | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    below: list[str] = []
    totals: dict[str, list[float]] = {}
    for suite in SUITES:
        for python in pythons:
            patched = by_key.get((python, suite.name, "patched"))
            base = by_key.get((python, suite.name, "baseline"))
            if patched is None:
                continue
            if patched.status == "missing":
                missing = "not in this interpreter's `test` package"
                lines.append(f"| {suite.name} | {python} | {missing} |||||||")
                continue
            known = known_failures(python)
            failed = [t for t, r in patched.tests.items() if r == "failed"]
            rate = ratio = "-"
            if base is not None and base.status != "missing":
                total = totals.setdefault(python, [0.0, 0.0])
                total[0] += patched.seconds
                total[1] += base.seconds
                good = [t for t, r in base.tests.items() if r == "passed"]
                if good:
                    lost = [t for t in good if patched.tests.get(t) != "passed"]
                    value = 100 * (len(good) - len(lost)) / len(good)
                    rate = f"{value:.1f} %"
                    if value < TARGET_RATE:
                        rate = f"**{rate}**"
                        why = "; ".join(
                            f"`{t.rsplit('.', 2)[-2]}.{t.rsplit('.', 1)[-1]}`: "
                            + known.get(t, "not a known failure")
                            for t in sorted(lost)
                        )
                        below.append(f"- {suite.name} on {python}: {value:.1f} %: {why}")
                if base.seconds > 0:
                    value = patched.seconds / base.seconds
                    ratio = f"{value:.2f}x"
                    if value > TARGET_TIME and base.seconds >= TIME_FLOOR:
                        ratio = f"**{ratio}**"
                        below.append(
                            f"- {suite.name} on {python}: {value:.2f}x the unpatched time "
                            f"({patched.seconds:.0f} s against {base.seconds:.0f} s)"
                            + (f": {suite.slow_reason}" if suite.slow_reason else "")
                        )
            status = "" if patched.status == "ran" else f" ({patched.status})"
            lines.append(
                f"| {suite.name}{status} | {python} | {len(patched.tests)} "
                f"| {patched.count('passed')} | {patched.count('skipped')} | {len(failed)} "
                f"| {sum(1 for t in failed if t in known)} | {rate} | {ratio} |"
            )
    lines += ["", "Wall time of all the modules, patched and unpatched:", ""]
    for python, (ours, theirs) in sorted(totals.items()):
        lines.append(f"- {python}: {ours / 60:.1f} min patched, {theirs / 60:.1f} min unpatched")
    lines += ["", "## Below target", ""]
    lines += below or ["None."]
    notes = [f"- {s.name}: {s.note}" for s in SUITES if s.note]
    fast = ", ".join(s.name for s in SUITES if s.fast)
    lines += ["", "## Notes", "", f"- The fast set (`check --fast`): {fast}.", *notes]
    return "\n".join(lines) + "\n"


def _run_all(chosen: list[Suite], modes: list[bool], jobs: int) -> list[Outcome]:
    """Run each suite in each mode, ``jobs`` child interpreters at a time; print each result."""
    outcomes: list[Outcome] = []

    def one(suite: Suite, patched: bool) -> Outcome:
        outcome = run_suite(suite, patched=patched)
        print(
            f"{PY} {suite.name:28} {outcome.mode:8} {outcome.status:8} "
            f"{outcome.seconds:6.1f} s  passed {outcome.count('passed')} "
            f"failed {outcome.count('failed')} skipped {outcome.count('skipped')}",
            flush=True,
        )
        return outcome

    work = [(suite, patched) for suite in chosen for patched in modes]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for outcome in pool.map(lambda item: one(*item), work):
            outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.cpython_suites")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run suites patched (and unpatched with --baseline)")
    run.add_argument("modules", nargs="*")
    run.add_argument("--baseline", action="store_true")
    chk = sub.add_parser("check", help="run patched and compare with the known failures")
    chk.add_argument("modules", nargs="*")
    for command in (run, chk):
        command.add_argument(
            "--fast", action="store_true", help="only the fast set (make conformance-fast)"
        )
        command.add_argument(
            "-j", "--jobs", type=int, default=1, help="modules run at a time (default 1)"
        )
    sub.add_parser("table", help="write docs/conformance.md from the stored results")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    # Started in the background by a shell, the runner inherits SIGINT ignored,
    # and so would every interpreter the tests start: Python then installs no
    # KeyboardInterrupt handler and the tests of _thread.interrupt_main() hang.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    if args.command == "table":
        TABLE.write_text(table(_load(args.results)))
        print(f"wrote {TABLE}")
        return 0
    chosen = [
        s
        for s in SUITES
        if (not args.modules or s.name in args.modules) and (s.fast or not args.fast)
    ]
    unknown = set(args.modules) - {s.name for s in SUITES}
    if unknown:
        parser.error(f"not a suite of the runner: {', '.join(sorted(unknown))}")
    modes = [True, False] if args.command == "run" and args.baseline else [True]
    start = time.monotonic()
    outcomes = _run_all(chosen, modes, args.jobs)
    print(f"{PY}: {len(outcomes)} runs in {time.monotonic() - start:.0f} s", flush=True)
    if args.command == "run":
        for outcome in outcomes:
            _store(outcome, args.results)
        return 0
    problems = check(outcomes)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{PY}: no unexpected failure, every known failure still fails")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
