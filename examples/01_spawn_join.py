"""Spawn a real thread and join it: join() returns the thread's result."""

import threading

import threadpatch


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def fib_when_asked(go: threadpatch.Event, n: int) -> int:
    go.wait()  # stays alive (blocked, cancellable) until the main thread has looked
    return fib(n)


print("spawning a thread to compute fib(20) ...")
go = threadpatch.Event()
t = threadpatch.spawn(fib_when_asked, go, 20, name="fib-worker")
print(f"  it is a real OS thread: name={t.name!r}, native id {t.native_id}")
names = [x.name for x in threading.enumerate()]
print(f"  threading sees it too: {names}")
assert "fib-worker" in names
go.set()
result = t.join()
print(f"join() returned {result}")
assert result == 6765
