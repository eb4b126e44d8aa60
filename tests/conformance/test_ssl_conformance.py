"""CPython's own ``test.test_ssl`` run against threadpatch's ssl and socket modules.

Selected test classes are imported from the interpreter's ``test`` package and
subclassed; while each test runs, the names ``ssl`` and ``socket`` inside
``test.test_ssl`` are our facades (which mirror every stdlib name), so both
the tests' clients and their background servers use our ``SSLContext``,
``SSLSocket`` and ``socket``.  Nothing is copied.

Skip list (with reasons) is SKIPS below.
"""

from __future__ import annotations

from typing import Any

import pytest

from threadpatch import socket as tp_socket
from threadpatch import ssl as tp_ssl

from ._skips import apply_skips

test_ssl = pytest.importorskip("test.test_ssl")

SKIPS: dict[str, str] = {}

_STD = (test_ssl.ssl, test_ssl.socket)


class _Ours:
    def setUp(self) -> None:
        test_ssl.ssl, test_ssl.socket = tp_ssl, tp_socket
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            test_ssl.ssl, test_ssl.socket = _STD


def _ours(base: type) -> type:
    cls = type(f"TP_{base.__name__}", (_Ours, base), {"__module__": __name__})
    return apply_skips(cls, SKIPS)


_made: dict[str, Any] = {}
for _name in ("SimpleBackgroundTests", "ThreadedTests", "TestPostHandshakeAuth"):
    _made[f"TP_{_name}"] = _ours(getattr(test_ssl, _name))
globals().update(_made)
del _made, _name


def test_swap_reaches_the_tests() -> None:
    case = globals()["TP_SimpleBackgroundTests"]("test_connect")
    case.setUp()
    try:
        assert test_ssl.ssl is tp_ssl
        ctx = test_ssl.ssl.SSLContext(test_ssl.ssl.PROTOCOL_TLS_CLIENT)
        assert type(ctx) is tp_ssl.SSLContext
    finally:
        case.tearDown()
        case.doCleanups()  # stops the background server
    assert test_ssl.ssl is _STD[0]
