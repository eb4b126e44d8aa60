"""Make file objects over pipes, FIFOs, terminals and sockets cancellable.

``io.open`` and ``builtins.open`` (one object) build the stdlib's own file
object for a regular file and one over :class:`threadpatch._fileio.FileIO`
for anything that waits for a peer; ``os.fdopen``, ``subprocess.Popen``'s
pipes and ``pathlib.Path.open`` call ``io.open`` and follow.  The
interpreter's own ``sys.stdin`` over a pipe or terminal is swapped for an
equivalent stack while the set is applied.  File objects made before
patching, and ``io.FileIO(...)`` made directly, keep the C reads.
"""

import builtins

from .. import _fileio

TARGET = "io"
REPLACEMENTS = {"open": _fileio.open}
CLASS_REPLACEMENTS = {(builtins, "open"): _fileio.open}
AFTER_APPLY = _fileio.install_stdin
AFTER_RESTORE = _fileio.restore_stdin
