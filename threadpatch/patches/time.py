"""Make ``time.sleep`` a cancellation point (keeping the builtin's contract)."""

from .. import _time

TARGET = "time"
REPLACEMENTS = {"sleep": _time.sleep}
