"""Patch at interpreter start-up: imported by ``threadpatch-autopatch.pth``.

The ``.pth`` file that ``pip install`` puts into site-packages runs one line at
every interpreter start.  That line reads ``THREADPATCH_AUTOPATCH`` and imports
this module only when the variable is set to something other than ``""``,
``0``, ``false``, ``no`` or ``off``, so an unset variable costs a dictionary
lookup and imports nothing.

The value is ``1`` (or ``true``, ``yes``, ``on``): every set that
``patch_all()`` applies by default; or a comma-separated list of flags on
top of those defaults, as ``python -m threadpatch`` takes them: ``futures``
(or ``+futures``) turns a set on, also one that is off by default, and
``-ssl`` (or ``no-ssl``) leaves one out; ``THREADPATCH_AUTOPATCH=futures,-ssl``.
A flag that does not exist is reported as a ``ThreadpatchWarning`` and the
rest still applies: a typo in an environment variable must not stop every
Python program on the machine from starting.

``python -S`` and ``python -I`` skip ``.pth`` files (and ``sitecustomize``);
``python -m threadpatch`` is the reliable way to run a program patched.
"""

from __future__ import annotations

import os
import warnings

from ._patching import FLAGS, ThreadpatchWarning, patch_all

_DEFAULT = frozenset({"1", "true", "yes", "on"})


def flags_from(value: str) -> dict[str, bool]:
    """The ``patch_all()`` flags that an ``THREADPATCH_AUTOPATCH`` value asks for."""
    flags: dict[str, bool] = {}
    if value.strip().lower() in _DEFAULT:
        return flags
    for item in value.split(","):
        word = item.strip().lower()
        if not word or word in _DEFAULT:
            continue
        on = True
        if word.startswith(("-", "no-")):
            on, word = False, word.removeprefix("-").removeprefix("no-")
        word = word.removeprefix("+")
        if word not in FLAGS:
            warnings.warn(
                f"THREADPATCH_AUTOPATCH: unknown flag {item.strip()!r} (flags: {', '.join(FLAGS)})",
                ThreadpatchWarning,
                stacklevel=1,
            )
            continue
        flags[word] = on
    return flags


patch_all(**flags_from(os.environ.get("THREADPATCH_AUTOPATCH", "1")))
