"""Which thread timeout applies to a test, and where it came from.

The precedence is pytest-timeout's, as pytest-timeout implements it (its
``get_env_settings`` and ``_get_item_settings``) and documents it ("from low
to high priority: the configuration file, the ``PYTEST_TIMEOUT`` environment
variable, the ``--timeout`` command line option, the marker"):

    @pytest.mark.thread_timeout > --thread-timeout > PYTEST_THREAD_TIMEOUT > ini thread_timeout

The most specific setting wins: a marker on a test, then what this run was
asked for, then the environment, then the project's file.  The other settings
(``method``, ``func_only``, ``grace``) follow the same order, without an
environment variable (as pytest-timeout's ``method``).

A limit of 0 (or ``None`` in a marker) means no limit, as in pytest-timeout.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_METHOD",
    "ENV_VAR",
    "METHODS",
    "Limit",
    "SessionSettings",
    "add_options",
    "item_limit",
    "session_settings",
]

ENV_VAR: Final = "PYTEST_THREAD_TIMEOUT"
#: What to do when a thread of an overrunning test cannot be cancelled.
METHODS: Final = ("fail-at-end", "signal", "exit")
DEFAULT_METHOD: Final = "fail-at-end"
#: Seconds the cancelled threads get to end before the method applies.
DEFAULT_GRACE: Final = 1.0

MARKER_HELP: Final = (
    "thread_timeout(seconds, *, method=None, func_only=None, grace=None): the thread timeout "
    "of this test (None or 0: no limit); overrides --thread-timeout, PYTEST_THREAD_TIMEOUT "
    "and the ini option"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Limit:
    """The thread timeout of one test.

    Attributes:
        seconds: the limit (positive, finite).
        source: where it came from, as the report names it
            (``--thread-timeout``, ``@pytest.mark.thread_timeout``, ...).
        method: ``fail-at-end``, ``signal`` or ``exit``.
        func_only: the limit covers the test function only, not its fixtures.
        grace: seconds the cancelled threads get before ``method`` applies.
    """

    seconds: float
    source: str
    method: str = DEFAULT_METHOD
    func_only: bool = False
    grace: float = DEFAULT_GRACE

    def describe(self) -> str:
        """``2 s (--thread-timeout)``."""
        return f"{self.seconds:g} s ({self.source})"


@dataclasses.dataclass(frozen=True, slots=True)
class SessionSettings:
    """The session's defaults, read once at configuration.

    Attributes:
        limit: the default limit (None: no limit unless a marker sets one).
        method, func_only, grace: defaults for every test's limit.
        patch: patch the standard library around each test that has a limit
            (unless the session is patched anyway).
        session_patched: ``--threadpatch`` patches the whole session.
    """

    limit: Limit | None
    method: str
    func_only: bool
    grace: float
    patch: bool
    session_patched: bool

    def header(self) -> list[str]:
        """The lines of pytest's report header."""
        patching = (
            "the session is patched (--threadpatch)"
            if self.session_patched
            else "each test with a limit is patched"
            if self.patch
            else "tests are not patched (--thread-timeout-no-patch)"
        )
        if self.limit is None:
            if not self.session_patched:
                return []
            return [f"threadpatch: {patching}; no thread timeout"]
        scope = "the test function only" if self.func_only else "setup, call and teardown"
        return [
            f"threadpatch: thread timeout {self.limit.describe()} over {scope}, "
            f"then {self.method} after a {self.grace:g} s grace; {patching}"
        ]


def add_options(parser: pytest.Parser) -> None:
    """The command-line and ini options of the thread timeout."""
    group = parser.getgroup("threadpatch", "cancellable threads (threadpatch)")
    group.addoption(
        "--threadpatch",
        action="store_true",
        default=False,
        help="patch the standard library's blocking operations for the whole session",
    )
    group.addoption(
        "--thread-timeout",
        default=None,
        metavar="SECONDS",
        help="fail a test that runs longer than SECONDS: cancel it, and the threads it started, "
        f"at their blocking points (0: no limit; overrides {ENV_VAR} and the thread_timeout "
        "ini option; a thread_timeout marker overrides it)",
    )
    group.addoption(
        "--thread-timeout-method",
        default=None,
        choices=METHODS,
        help="what to do when an overrunning test cannot be cancelled within the grace: "
        "fail-at-end (the default: it fails when it returns), signal (SIGALRM in the main "
        "thread) or exit (report and end the process; pytest-xdist replaces the worker)",
    )
    group.addoption(
        "--thread-timeout-grace",
        default=None,
        metavar="SECONDS",
        help=f"seconds cancelled threads get to end before the method applies "
        f"(default {DEFAULT_GRACE:g})",
    )
    group.addoption(
        "--thread-timeout-func-only",
        action="store_const",
        const=True,
        default=None,
        help="the thread timeout covers the test function only, not fixture setup and teardown",
    )
    group.addoption(
        "--thread-timeout-no-patch",
        action="store_true",
        default=False,
        help="do not patch the standard library around tests that have a thread timeout "
        "(then only threadpatch's own calls, and whatever --threadpatch patches, are cancellable)",
    )
    parser.addini("thread_timeout", "default thread timeout in seconds (0: no limit)")
    parser.addini("thread_timeout_method", f"default --thread-timeout-method ({DEFAULT_METHOD})")
    parser.addini("thread_timeout_grace", f"default --thread-timeout-grace ({DEFAULT_GRACE:g})")
    parser.addini(
        "thread_timeout_func_only",
        "the thread timeout covers the test function only",
        type="bool",
        default=False,
    )
    parser.addini(
        "thread_timeout_patch",
        "patch the standard library around tests that have a thread timeout",
        type="bool",
        default=True,
    )


def _seconds(value: object, where: str, *, zero_is_none: bool) -> float | None:
    """A duration from ``where``; None for no limit.  Raises ValueError/TypeError."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or (
        not isinstance(value, str | int | float) and not hasattr(type(value), "__float__")
    ):
        raise TypeError(f"{where} must be a number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"{where} must be a number of seconds, not {value!r}") from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{where} must be a non-negative number of seconds, not {value!r}")
    if seconds == 0 and zero_is_none:
        return None
    if seconds == math.inf:
        return None
    return seconds


def _method(value: object, where: str) -> str | None:
    if value is None or value == "":
        return None
    if value not in METHODS:
        raise ValueError(f"{where} must be one of {', '.join(METHODS)}, not {value!r}")
    return str(value)


def _ini_name(config: pytest.Config) -> str:
    path = config.inipath
    return f"{path.name} thread_timeout" if path is not None else "ini thread_timeout"


def session_settings(
    config: pytest.Config, environ: Mapping[str, str] = os.environ
) -> SessionSettings:
    """Read the session's settings.

    Raises:
        pytest.UsageError: a bad value on the command line, in the environment
            or in the ini file.
    """
    try:
        return _session_settings(config, environ)
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"threadpatch: {exc}") from None


def _session_settings(config: pytest.Config, environ: Mapping[str, str]) -> SessionSettings:
    seconds: float | None = None
    source = ""
    for value, where in (
        (config.getoption("thread_timeout"), "--thread-timeout"),
        (environ.get(ENV_VAR), ENV_VAR),
        (config.getini("thread_timeout"), _ini_name(config)),
    ):
        if value is not None and value != "":
            seconds = _seconds(value, where, zero_is_none=True)
            source = where
            break
    method = _method(config.getoption("thread_timeout_method"), "--thread-timeout-method")
    if method is None:
        method = _method(config.getini("thread_timeout_method"), "thread_timeout_method")
    grace = _seconds(
        config.getoption("thread_timeout_grace"), "--thread-timeout-grace", zero_is_none=False
    )
    if grace is None:
        grace = _seconds(
            config.getini("thread_timeout_grace"), "thread_timeout_grace", zero_is_none=False
        )
    func_only = config.getoption("thread_timeout_func_only")
    if func_only is None:
        func_only = bool(config.getini("thread_timeout_func_only"))
    method = method or DEFAULT_METHOD
    grace = DEFAULT_GRACE if grace is None else grace
    limit = None
    if seconds is not None:
        limit = Limit(seconds, source, method, bool(func_only), grace)
    patch = not config.getoption("thread_timeout_no_patch") and bool(
        config.getini("thread_timeout_patch")
    )
    return SessionSettings(
        limit=limit,
        method=method,
        func_only=bool(func_only),
        grace=grace,
        patch=patch,
        session_patched=bool(config.getoption("threadpatch")),
    )


_NOT_SET: Final = object()


def item_limit(item: pytest.Item, session: SessionSettings) -> Limit | None:
    """The limit of ``item``: its marker's, else the session's (None: no limit).

    Raises:
        TypeError, ValueError: the marker is malformed.
    """
    marker = item.get_closest_marker("thread_timeout")
    if marker is None:
        return session.limit
    args, kwargs = marker.args, dict(marker.kwargs)
    if len(args) > 1:
        raise TypeError("thread_timeout marker takes one positional argument (seconds)")
    unknown = set(kwargs) - {"seconds", "method", "func_only", "grace"}
    if unknown:
        raise TypeError(f"thread_timeout marker got unknown keywords: {', '.join(sorted(unknown))}")
    if args and "seconds" in kwargs:
        raise TypeError("thread_timeout marker got seconds twice")
    value = args[0] if args else kwargs.pop("seconds", _NOT_SET)
    kwargs.pop("seconds", None)
    where = "@pytest.mark.thread_timeout"
    method = _method(kwargs.get("method"), f"{where}(method=...)") or session.method
    grace = _seconds(kwargs.get("grace"), f"{where}(grace=...)", zero_is_none=False)
    func_only = kwargs.get("func_only")
    if func_only is not None and not isinstance(func_only, bool):
        raise TypeError(f"{where}(func_only=...) must be True or False, not {func_only!r}")
    if value is _NOT_SET:  # only the other settings: the session's limit
        if session.limit is None:
            return None
        seconds: float | None = session.limit.seconds
        source = session.limit.source
    else:
        seconds = _seconds(value, "thread_timeout marker", zero_is_none=True)
        source = where
    if seconds is None:
        return None
    return Limit(
        seconds,
        source,
        method,
        session.func_only if func_only is None else func_only,
        session.grace if grace is None else grace,
    )
