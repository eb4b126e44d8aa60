"""ThreadGroup(wait=any): the first thread to finish wins, the others are cancelled."""

import time

import threadpatch


def mirror(name: str, delay: float) -> str:
    try:
        threadpatch.sleep(delay)  # stands for a download
        return f"data from {name}"
    except threadpatch.ThreadCancelled:
        print(f"  {name}: cancelled after the winner finished")
        raise


t0 = time.monotonic()
with threadpatch.ThreadGroup(wait=any) as g:
    for name, delay in [("slow-mirror", 5.0), ("fast-mirror", 0.1), ("medium-mirror", 2.0)]:
        g.spawn(mirror, name, delay, name=name)
elapsed = time.monotonic() - t0
print(f"winner: {g.completed.name} -> {g.result!r} after {elapsed:.2f} s")
print(f"cancelled: {[t.name for t in g.threads if t.cancelled]}")
assert g.result == "data from fast-mirror" and elapsed < 2.0

print("\nwait=all with a failure: the others are cancelled, the block raises an ExceptionGroup")
try:
    with threadpatch.ThreadGroup() as g:
        g.spawn(threadpatch.sleep, 60)
        g.spawn(lambda: 1 / 0)
except* ZeroDivisionError as eg:
    print(f"  caught {eg!r}")
print(f"  the sleeper was cancelled: {g.threads[0].cancelled}")
