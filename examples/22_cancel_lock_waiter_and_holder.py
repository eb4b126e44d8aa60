"""Cancel a thread waiting for a lock, then the thread holding it.

The waiter is cancelled inside ``acquire()`` and never gets the lock.  The
holder is cancelled while it blocks with the lock held (here in an Event
wait); its ``with lock:`` block releases the lock on the way out, so the
lock is free again.
"""

import threadpatch

lock = threadpatch.Lock()
never = threadpatch.Event()
holding = threadpatch.Event()


def holder() -> None:
    with lock:
        print("  holder: got the lock, now waiting for an event that never comes")
        holding.set()
        never.wait()


def waiter() -> None:
    print("  waiter: waiting for the lock ...")
    with lock:
        print("  waiter: got the lock (should not happen)")


h = threadpatch.spawn(holder, name="holder")
holding.wait()
w = threadpatch.spawn(waiter, name="waiter")
while lock.statistics().waiting == 0:  # until the waiter is parked on the lock
    threadpatch.sleep(0.001)
print(f"lock: {lock.statistics()}")

print("cancelling the waiter ...")
w.cancel()
print(f"  waiter cancelled={w.cancelled}; lock still held by holder: {lock.locked()}")

print("cancelling the holder ...")
h.cancel()
print(f"  holder cancelled={h.cancelled}; lock held now: {lock.locked()}")
assert w.cancelled and h.cancelled and not lock.locked()
print("the lock is free: with-blocks released it during cancellation")
