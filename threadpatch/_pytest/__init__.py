"""The pytest plugin's machinery (the hooks are in :mod:`threadpatch.pytest_plugin`).

* ``_settings``: which thread timeout applies to a test, and where it came from.
* ``_watch``: a test's watchdog: the deadline of its phases, the cancellation of
  the test and of the threads it started, the fall-back for what cannot be
  cancelled, and the report.
"""
