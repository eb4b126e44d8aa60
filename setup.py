"""Ship ``threadpatch-autopatch.pth`` into site-packages (metadata is in pyproject.toml).

setuptools has no declarative way to put a file at the top of site-packages,
so ``build_py`` copies it next to the package in the build directory: a
normal wheel then installs it into site-packages.  For ``pip install -e .``,
setuptools assembles the editable wheel in the install directory instead, so
``build_py`` copies it there as well.

``threadpatch._speedups`` (C fast paths of Lock/RLock and socket waits) is optional: if it
cannot be built, the install goes on and threadpatch uses its pure-Python
implementation (see threadpatch/_sync.py).
"""

from __future__ import annotations

import os

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

PTH = "threadpatch-autopatch.pth"


class build_py_with_pth(build_py):
    def run(self) -> None:
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        self.copy_file(os.path.join(here, PTH), os.path.join(self.build_lib, PTH), preserve_mode=0)
        if getattr(self, "editable_mode", False):
            # An editable wheel is assembled in install's install_lib (build_lib
            # is thrown away): put the .pth there too.
            target = self.get_finalized_command("install").install_lib
            self.copy_file(os.path.join(here, PTH), os.path.join(target, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


SPEEDUPS = Extension(
    "threadpatch._speedups",
    [
        "threadpatch/_speedups.c",  # the module
        "threadpatch/_speedups_locks.c",  # Lock and RLock cores
        "threadpatch/_speedups_socket.c",  # socket waits
        "threadpatch/_speedups_builtin.c",  # patched builtins that act as builtins
        "threadpatch/_speedups_fdio.c",  # patched os.read / os.write, first try
    ],
    depends=["threadpatch/_speedups.h"],
    optional=True,
)

setup(cmdclass={"build_py": build_py_with_pth}, ext_modules=[SPEEDUPS])
