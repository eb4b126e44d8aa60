"""Make ``os.read`` and ``os.write`` cancellable on pipes, FIFOs, terminals and sockets.

``os.close`` also wakes the threads waiting on the descriptor it closes.

Regular files and block devices keep the plain calls (see
:mod:`threadpatch._os`).  Names bound before patching (``from os import
read``) keep the stdlib's function, as with every module-level replacement.
"""

from .. import _os

TARGET = "os"
REPLACEMENTS = {"read": _os.read, "write": _os.write, "close": _os.close}
