"""Patch at interpreter start-up: imported by ``threadpatch-autopatch.pth``.

The ``.pth`` file that ``pip install`` puts into site-packages runs one line at
every interpreter start.  That line reads ``THREADPATCH_AUTOPATCH`` and imports
this module only when the variable is set to something other than ``""``,
``0``, ``false``, ``no`` or ``off``, so an unset variable costs a dictionary
lookup and imports nothing.

``python -S`` and ``python -I`` skip ``.pth`` files (and ``sitecustomize``);
``python -m threadpatch`` is the reliable way to run a program patched.
"""

from __future__ import annotations

from ._patching import patch_all

patch_all()
