"""wait() only waits (and never raises); join() returns the result or raises."""

import threadpatch


def fail() -> None:
    threadpatch.sleep(0.05)
    raise RuntimeError("disk full")


t = threadpatch.spawn(fail)
print(f"wait(timeout=0.001) -> {t.wait(timeout=0.001)}  (still running)")
print(f"wait() -> {t.wait()}  (ended; no exception, no result)")
try:
    t.join()
except threadpatch.ThreadError as e:
    print(f"join() -> raises ThreadError from {e.__cause__!r}")

ok = threadpatch.spawn(sum, [1, 2, 3])
print(f"join() of a good thread -> {ok.join()}; its .result -> {ok.result}")

sleeper = threadpatch.spawn(threadpatch.sleep, 60)
try:
    sleeper.join(timeout=0.05)
except threadpatch.ThreadTimeout:
    print("join(timeout=0.05) on a long sleeper -> ThreadTimeout")
sleeper.cancel()
print(f"after cancel: wait() -> {sleeper.wait()}, cancelled={sleeper.cancelled}")
