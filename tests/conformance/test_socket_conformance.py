"""CPython's own ``test.test_socket`` run against threadpatch's socket module.

Selected test classes are imported from the interpreter's ``test`` package and
subclassed; while each test runs, the name ``socket`` inside
``test.test_socket`` is our facade ``threadpatch.socket`` (which mirrors every
stdlib name), so ``socket.socket(...)``, ``socket.socketpair()`` and
``socket.create_connection`` in the tests build our classes.  Nothing is copied.

Skip list (with reasons) is SKIPS below.
"""

from __future__ import annotations

import unittest
from typing import Any

import pytest

from threadpatch import socket as tp_socket

from ._skips import apply_skips

test_socket = pytest.importorskip("test.test_socket")

SKIPS: dict[str, str] = {
    # The repr names our class: "<threadpatch.socket.socket ...>" (checked in test_socket.py).
    "test_repr": "repr names threadpatch.socket.socket",
}


class _Ours:
    """Run the test with ``test.test_socket.socket`` bound to threadpatch.socket.

    ``threading_helper.wait_threads_exit`` (which counts native threads) stays
    the suite's own: the resolver pool's workers exit once their lookup is done.
    """

    def setUp(self) -> None:
        test_socket.socket = tp_socket
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        try:
            super().tearDown()  # type: ignore[misc]
        finally:
            test_socket.socket = _STD_SOCKET


_STD_SOCKET = test_socket.socket


def _ours(base: type) -> type:
    cls = type(f"TP_{base.__name__}", (_Ours, base), {"__module__": __name__})
    return apply_skips(cls, SKIPS)


_BASES = [
    "BasicTCPTest",
    "BasicTCPTest2",
    "BasicSocketPairTest",
    "NonBlockingTCPTests",
    "FileObjectClassTestCase",
    "UnbufferedFileObjectClassTestCase",
    "LineBufferedFileObjectClassTestCase",
    "SmallBufferedFileObjectClassTestCase",
    "NetworkConnectionNoServer",
    "NetworkConnectionAttributesTest",
    "NetworkConnectionBehaviourTest",
    "TCPTimeoutTest",
    "UDPTimeoutTest",
    "TestSocketSharing",
    "SendfileUsingSendTest",
    "SendfileUsingSendfileTest",
    "ContextManagersTest",
    "InheritanceTest",
    "NonblockConstantTest",
    "CreateServerTest",
    "CreateServerFunctionalTest",
    "RecvmsgUDPTest",
    "SendmsgUDPTest",
    "RecvmsgIntoUDPTest",
    "RecvmsgSCMRightsStreamTest",
    "BasicUDPTest",
    "BasicUDPLITETest",
]

_made: dict[str, Any] = {}
for _name in _BASES:
    _base = getattr(test_socket, _name, None)
    if isinstance(_base, type) and issubclass(_base, unittest.TestCase):
        _made[f"TP_{_name}"] = _ours(_base)
globals().update(_made)
del _made, _name, _base


def test_swap_reaches_the_tests() -> None:
    TP_BasicTCPTest = globals()["TP_BasicTCPTest"]
    case = TP_BasicTCPTest("testRecv")
    case.setUp()
    try:
        assert type(case.serv) is tp_socket.socket
    finally:
        case.tearDown()
