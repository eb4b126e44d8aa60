"""A worker pool on a Queue: task_done/join, and workers cancelled on exit.

Workers loop forever on ``queue.get()``.  The main thread puts jobs and waits
with ``join()`` until each one is marked ``task_done()``.  The workers run in
``ThreadGroup(wait=None)``: leaving the block cancels them where they block,
in ``get()``, so no sentinel values and no daemon threads are needed.
"""

import threadpatch

jobs: threadpatch.Queue[int] = threadpatch.Queue(maxsize=4)
results: threadpatch.Queue[tuple[str, int, int]] = threadpatch.Queue()
say = threadpatch.Lock()  # one line of output at a time


def worker() -> None:
    name = threadpatch.current().name
    try:
        while True:
            n = jobs.get()  # a cancellation point
            results.put((name, n, n * n))
            jobs.task_done()
    except threadpatch.ThreadCancelled:
        with say:
            print(f"  {name}: cancelled while waiting for work, exiting")
        raise


with threadpatch.ThreadGroup(wait=None) as pool:
    for _ in range(3):
        pool.spawn(worker)
    print("putting 10 jobs (the queue holds 4 at a time) ...")
    for n in range(10):
        jobs.put(n)
    jobs.join()
    print("join() returned: every job is done")
print("left the group: every worker has been cancelled")

done = sorted((results.get_nowait() for _ in range(results.qsize())), key=lambda r: r[1])
for name, n, square in done:
    print(f"  {name} computed {n}^2 = {square}")
assert [n for _, n, _ in done] == list(range(10))
