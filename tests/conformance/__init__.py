"""CPython's own test suites, run against threadpatch's classes."""
