"""Run every example of the talk in order, each in its own interpreter.

``make demo`` runs this.  Each example narrates what it does; this script
fails if any example fails or takes longer than its time limit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

LIMIT = 60.0


def main() -> int:
    here = Path(__file__).resolve().parent
    scripts = sorted(p for p in here.glob("[0-9]*.py"))
    failed = []
    for script in scripts:
        print(f"\n{'=' * 72}\n{script.name}\n{'=' * 72}", flush=True)
        t0 = time.monotonic()
        try:
            proc = subprocess.run([sys.executable, str(script)], timeout=LIMIT, check=False)
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
            print(f"!! {script.name} took longer than {LIMIT:g} s")
        print(f"-- {script.name}: {'ok' if ok else 'FAILED'} in {time.monotonic() - t0:.2f} s")
        if not ok:
            failed.append(script.name)
    print(f"\n{len(scripts) - len(failed)}/{len(scripts)} examples ran fine")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
