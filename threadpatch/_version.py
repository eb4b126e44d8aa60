"""The version of threadpatch, in one place.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``) and
``threadpatch.__version__``, ``python -m threadpatch --version`` and the
package metadata all come from it.  Bump it together with ``CHANGELOG.md``.
"""

__version__ = "0.1.0"
