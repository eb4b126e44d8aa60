"""Run the benchmark modules and print one table: ``python -m benchmarks [name ...]``.

Without names every module runs except those in :data:`ON_REQUEST` (the scale
table starts 10,000-thread child interpreters and takes about a quarter of an
hour): name them to run them, e.g. ``python -m benchmarks scale``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from benchmarks import _harness

ON_REQUEST = {"bench_scale"}


def main(argv: list[str]) -> int:
    import benchmarks

    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    else:
        names = [n for n in names if n not in ON_REQUEST]
    tables = []
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}")
        tables.append(module.run())
    print()
    print(_harness.header())
    misses = 0
    for table in tables:
        print(f"-- {table.title}")
        for row in table.rows:
            print(_harness.format_row(row))
            misses += not row.ok
    print(f"\n{misses} target(s) missed" if misses else "\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
