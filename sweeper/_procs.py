"""Facts about other processes, from the standard library only."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (dead, not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def flock_within(fd: int, wait_s: float, *, give_up: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic, poll_s: float = 0.01) -> bool:
    """Take an exclusive ``flock`` on ``fd``, waiting up to ``wait_s`` (or until ``give_up()``
    says waiting is pointless); True once held. The kernel frees it when its holder dies."""
    import fcntl

    deadline = clock() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if give_up() or clock() > deadline:
                return False
            time.sleep(poll_s)
