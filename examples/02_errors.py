"""An exception in a thread comes out of join(), wrapped in ThreadError."""

import threadpatch


def parse(text: str) -> int:
    return int(text)


t = threadpatch.spawn(parse, "forty-two")
try:
    t.join()
except threadpatch.ThreadError as e:
    print(f"join() raised {type(e).__name__}: {e}")
    print(f"  __cause__ is the original exception: {e.__cause__!r}")
    assert isinstance(e.__cause__, ValueError)
print(f"t.exception is {t.exception!r}; t.cancelled is {t.cancelled}")
