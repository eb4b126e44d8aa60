"""Dining philosophers: they deadlock, a deadline notices, cancelling one recovers.

Five philosophers each take the fork on their left, then the one on their
right.  Once all of them hold a left fork, nobody can take a right one: a
classic deadlock.  The host waits with ``timeout_after``; when the deadline
passes it cancels one philosopher.  Cancelled while waiting for its right
fork, that philosopher leaves its ``with left:`` block, which puts the left
fork down, and the others can eat.
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

try:
    with threadpatch.timeout_after(0.5):
        for d in diners:
            d.wait()
except threadpatch.ThreadTimeout:
    print("nobody has eaten after 0.5 s: deadlock detected")
    print("cancelling philosopher 0 ...")
    diners[0].cancel()

for d in diners:
    d.wait(timeout=5)
print(f"meals eaten, in order: {meals}")
print(f"philosopher 0 cancelled: {diners[0].cancelled}")
assert diners[0].cancelled
assert sorted(meals) == [1, 2, 3, 4]
assert not any(f.locked() for f in forks)
print("every fork is back on the table")
