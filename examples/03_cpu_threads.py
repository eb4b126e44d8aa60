"""CPU-bound threads run at once; they can only be cancelled at a checkpoint().

threadpatch never interrupts code mid-instruction: a thread in a pure CPU loop
keeps running after cancel() until it reaches a blocking operation or calls
checkpoint().  That is what makes `with lock:` clean-up safe.
"""

import threading

import threadpatch

progress = {"a": 0, "b": 0}
both_running = threading.Barrier(2)


def spin(name: str, rounds: int) -> int:
    both_running.wait()
    for _ in range(rounds):
        progress[name] += 1
        sum(range(200))
    return progress[name]


print("two CPU-bound threads, started together:")
a = threadpatch.spawn(spin, "a", 20_000)
b = threadpatch.spawn(spin, "b", 20_000)
snapshots = []
while not (a.done() and b.done()):
    snapshots.append((progress["a"], progress["b"]))
    threadpatch.sleep(0.001)
interleaved = sum(1 for x, y in snapshots if 0 < x < 20_000 and 0 < y < 20_000)
print(
    f"  both finished: {a.join()} and {b.join()} rounds; seen running at once {interleaved} times"
)

print("\ncancel() a thread in a CPU loop without checkpoints:")
started = threading.Event()


def stubborn() -> str:
    started.set()
    for _ in range(300_000):
        sum(range(20))
    return "finished the whole loop"


t = threadpatch.spawn(stubborn)
started.wait()
t.cancel(blocking=False)
print(f"  cancel requested; the loop runs on to the end: join() -> {t.join()!r}")

print("\nthe same loop with a checkpoint() every 1,000 rounds:")
started.clear()


def polite() -> str:
    started.set()
    for i in range(10_000_000):
        if i % 1000 == 0:
            threadpatch.checkpoint()
        sum(range(20))
    return "finished the whole loop"


t = threadpatch.spawn(polite)
started.wait()
t.cancel()
print(f"  cancelled at a checkpoint: t.cancelled={t.cancelled}")
assert t.cancelled
