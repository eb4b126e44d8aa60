"""Spawn a real thread and join it: join() returns the thread's result."""

import threading

import threadpatch


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


print("spawning a thread to compute fib(20) ...")
t = threadpatch.spawn(fib, 20)
print(f"  it is a real OS thread: name={t.name!r}, native id {t.native_id}")
print(f"  threading sees it too: {[x.name for x in threading.enumerate()]}")
result = t.join()
print(f"join() returned {result}")
assert result == 6765
