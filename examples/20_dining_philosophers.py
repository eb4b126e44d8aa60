"""Dining philosophers: they deadlock, find_deadlocks() names the cycle, cancelling one recovers.

Five philosophers each take the fork on their left, then the one on their
right.  Once all of them hold a left fork, nobody can take a right one: a
classic deadlock.  The host asks ``threadpatch.find_deadlocks()``, which
follows "waits for a fork held by" from philosopher to philosopher and
finds the cycle.  It cancels one philosopher of the cycle: cancelled while
waiting for its right fork, that philosopher leaves its ``with left:``
block, which puts the left fork down, and the others can eat.
"""

import threadpatch

N = 5
forks = [threadpatch.Lock() for _ in range(N)]
seated = threadpatch.Barrier(N)
meals: list[int] = []


def philosopher(i: int) -> str:
    left, right = forks[i], forks[(i + 1) % N]
    with left:
        print(f"  philosopher {i} took fork {i}")
        seated.wait()  # everyone holds a left fork: the deadlock is certain
        try:
            with right:
                print(f"  philosopher {i} took fork {(i + 1) % N} and eats")
                meals.append(i)
        except threadpatch.ThreadCancelled:
            print(f"  philosopher {i} was cancelled: puts fork {i} down and leaves")
            raise
    return f"philosopher {i} ate"


print(f"{N} philosophers sit down ...")
diners = [threadpatch.spawn(philosopher, i, name=f"philosopher-{i}") for i in range(N)]

# The host looks at the lock wait-for graph until the cycle shows (2 s at most).
cycles: list[list[threadpatch.DeadlockStep]] = []
with threadpatch.ignore_after(2):
    while not cycles:
        threadpatch.sleep(0.01)
        cycles = threadpatch.find_deadlocks()

victim = diners[0]
if cycles:
    cycle = cycles[0]
    print(f"deadlock: {len(cycle)} philosophers wait for each other:")
    for n, step in enumerate(cycle):
        holder = cycle[(n + 1) % len(cycle)].thread
        fork = forks.index(step.lock)
        print(f"  {step.thread.name} waits for fork {fork}, held by {holder.name}")
    print("threadpatch.dump() says:", cycle[0].thread.header())
    victim = next(d for d in diners if d.name == cycle[0].thread.name)
    assert sorted(step.thread.name for step in cycle) == sorted(d.name for d in diners)
else:  # a Lock that does not record its holder: the graph has no edges
    print("nobody has eaten after 2 s: a deadlock, though no cycle is visible")
print(f"cancelling {victim.name} ...")
victim.cancel()

for d in diners:
    d.wait(timeout=5)
print(f"meals eaten, in order: {meals}")
print(f"{victim.name} cancelled: {victim.cancelled}")
assert victim.cancelled
assert len(meals) == N - 1
assert not any(f.locked() for f in forks)
assert not threadpatch.find_deadlocks()
print("every fork is back on the table")
