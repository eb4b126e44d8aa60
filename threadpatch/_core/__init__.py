"""The core of threadpatch: the one door into layers 1 and 2.

Upper layers (sync, io, patches) import from here only.
"""

from ._ctrl_c import cancel_everything, cancel_states, run, watch_exit
from ._exceptions import (
    DeadlineExpired,
    HubError,
    ScopeCancelled,
    ThreadCancelled,
    ThreadError,
    ThreadpatchError,
    ThreadTimeout,
)
from ._group import ThreadGroup
from ._hub import get_hub, is_hub_thread, set_clock
from ._registry import all_states, current_state, state_for_thread, thread_local
from ._scopes import (
    CancelScope,
    DeadlineScope,
    check_duration,
    checkpoint,
    current_time,
    ignore_after,
    shield,
    sleep,
    timeout_after,
)
from ._state import ThreadState
from ._thread import Thread, cancel, current, in_ctrl_c_cleanup, spawn
from ._wait import (
    INFINITE,
    NativeWaiter,
    Parker,
    ParkingLot,
    WaitQueue,
    current_waiter,
    deadline_after,
    seconds_left,
    wait_fd,
    wait_fds,
    wait_until,
)

__all__ = [
    "INFINITE",
    "CancelScope",
    "DeadlineExpired",
    "DeadlineScope",
    "HubError",
    "NativeWaiter",
    "Parker",
    "ParkingLot",
    "ScopeCancelled",
    "Thread",
    "ThreadCancelled",
    "ThreadError",
    "ThreadGroup",
    "ThreadState",
    "ThreadTimeout",
    "ThreadpatchError",
    "WaitQueue",
    "all_states",
    "cancel",
    "cancel_everything",
    "cancel_states",
    "check_duration",
    "checkpoint",
    "current",
    "current_state",
    "current_time",
    "current_waiter",
    "deadline_after",
    "get_hub",
    "ignore_after",
    "in_ctrl_c_cleanup",
    "is_hub_thread",
    "run",
    "seconds_left",
    "set_clock",
    "shield",
    "sleep",
    "spawn",
    "state_for_thread",
    "thread_local",
    "timeout_after",
    "wait_fd",
    "wait_fds",
    "wait_until",
    "watch_exit",
]
