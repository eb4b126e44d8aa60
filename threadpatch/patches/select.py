"""Make ``select.select``, ``select.poll`` and ``select.epoll`` cancellable."""

from .. import _select

TARGET = "select"
REPLACEMENTS = {
    "select": _select.select,
    "poll": _select.poll,
    "epoll": _select.epoll,
}
