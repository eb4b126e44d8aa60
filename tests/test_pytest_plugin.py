"""The pytest plugin, tested with pytester in child pytest processes."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # each test runs a pytest session in a subprocess

HUNG_AND_FINE = """
import threadpatch

def test_hung():
    threadpatch.sleep(60)

def test_next_one_runs():
    assert True
"""


def test_inactive_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import time, threadpatch
        from threadpatch import _patching

        def test_not_patched():
            assert not threadpatch.is_patched()
            assert time.sleep is threadpatch.original("time", "sleep")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_thread_timeout_cancels_hung_test_and_session_goes_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HUNG_AND_FINE)
    result = pytester.runpytest_subprocess("--thread-timeout=0.3", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "exceeded thread timeout of 0.3 s (--thread-timeout) during the test",
            "  stuck in sleep(60*)",
            "*threadpatch.sleep(60)*",
        ]
    )


def test_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(HUNG_AND_FINE)
    pytester.makeini("[pytest]\nthread_timeout = 0.3\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)


def test_marker_overrides_and_threads_of_the_test_are_cancelled(
    pytester: pytest.Pytester,
) -> None:
    marker_file = pytester.path / "finally.txt"
    pytester.makepyfile(f"""
        import pytest, threadpatch

        def worker(i):
            try:
                threadpatch.sleep(60)
            finally:
                with open({str(marker_file)!r}, "a") as f:
                    f.write(f"worker {{i}}\\n")

        @pytest.mark.thread_timeout(0.3)
        def test_stuck_joining_workers():
            threads = [threadpatch.spawn(worker, i) for i in range(3)]
            for t in threads:
                t.join()

        @pytest.mark.thread_timeout(None)
        def test_no_limit():
            threadpatch.sleep(0.01)
    """)
    result = pytester.runpytest_subprocess("--thread-timeout=100", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "exceeded thread timeout of 0.3 s (@pytest.mark.thread_timeout) during the test",
            "*t.join()*",
            "thread 'threadpatch-*' (started by the test): cancelled at its blocking point",
        ]
    )
    assert sorted(marker_file.read_text().split("\n")[:-1]) == ["worker 0", "worker 1", "worker 2"]


def test_session_patching_makes_stdlib_calls_cancellable(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import time, threadpatch

        def test_patched():
            assert threadpatch.is_patched()

        def test_hung_in_stdlib_sleep():
            time.sleep(60)
    """)
    result = pytester.runpytest_subprocess(
        "--threadpatch", "--thread-timeout=0.3", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["exceeded thread timeout of 0.3 s*", "*time.sleep(60)*"])


def test_marker_and_fixture_patch_one_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest, threadpatch

        @pytest.mark.threadpatch
        def test_marked():
            assert threadpatch.is_patched()

        def test_fixture(patched):
            assert threadpatch.is_patched()

        def test_plain():
            assert not threadpatch.is_patched()
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_leaked_threads_are_reported_and_cancelled(pytester: pytest.Pytester) -> None:
    marker_file = pytester.path / "leak.txt"
    pytester.makepyfile(f"""
        import pytest, threadpatch

        def leaky():
            try:
                threadpatch.sleep(60)
            finally:
                open({str(marker_file)!r}, "w").write("cancelled")

        @pytest.mark.threadpatch
        def test_leaves_a_thread_behind():
            threadpatch.spawn(leaky, name="leaky-thread")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*ThreadLeakWarning*leaky-thread*cancelled*"])
    assert marker_file.read_text() == "cancelled"


def test_bad_timeout_marker_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.thread_timeout(-1)
        def test_x():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # the limit covers setup: a bad one fails it
    result.stdout.fnmatch_lines(["*ValueError*thread_timeout*"])


@pytest.mark.parametrize("how", ["cli", "autopatch"])
def test_patched_pytest_starts_cleanly_with_warnings_as_errors(
    pytester: pytest.Pytester, how: str
) -> None:
    # threadpatch is imported before pytest loads its plugins: pytest must not
    # report it as "already imported so cannot be rewritten" (an error here).
    import os
    import subprocess
    import sys

    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile("""
        import time, threadpatch

        def test_patched():
            assert threadpatch.is_patched()
            assert time.sleep is not threadpatch.original("time", "sleep")
    """)
    # pytest marks for rewriting the files that a plugin's distribution
    # RECORDs: a regular install lists threadpatch/__init__.py, an editable
    # one (this checkout's) does not.  A stand-in distribution whose RECORD
    # names it makes pytest look at threadpatch as a wheel install would.
    site = pytester.mkdir("site")
    info = site / "standin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: standin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nstandin = standin_plugin\n")
    (info / "RECORD").write_text("threadpatch/__init__.py,,\nstandin_plugin.py,,\n")
    (site / "standin_plugin.py").write_text('"""A plugin that does nothing."""\n')
    env = dict(os.environ)
    env.pop("THREADPATCH_AUTOPATCH", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    if how == "cli":
        args = [sys.executable, "-m", "threadpatch", "-m", "pytest"]
    else:
        env["THREADPATCH_AUTOPATCH"] = "1"
        args = [sys.executable, "-m", "pytest"]
    args += ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-W", "error"]
    proc = subprocess.run(
        args, cwd=pytester.path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "PytestAssertRewriteWarning" not in proc.stdout + proc.stderr
