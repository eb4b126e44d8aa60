"""Make ``subprocess`` waits cancellable: ``Popen.wait``, ``communicate()``, ``run()``.

On the class, so ``Popen`` objects made before patching and ``run``,
``call``, ``check_call`` and ``check_output`` (which use ``Popen``) are
covered.  ``_PopenSelector`` is the selector class ``communicate()`` builds
at call time.  See :mod:`threadpatch._subprocess` for what happens to the
child on cancellation.
"""

from .. import _subprocess

TARGET = "subprocess"
REPLACEMENTS = {"_PopenSelector": _subprocess.PopenSelector}
CLASS_REPLACEMENTS = {
    "Popen": {
        "_wait": _subprocess.popen_wait,
        "__exit__": _subprocess.popen_exit,
        "communicate": _subprocess.communicate,
    }
}
