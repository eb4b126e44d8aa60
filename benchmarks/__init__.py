"""threadpatch benchmarks: every timing is a ratio to the native operation, same run."""
