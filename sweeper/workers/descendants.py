"""Nothing a trial starts outlives its worker: joblib/loky pools, subprocesses, multiprocessing
children.

    worker (leads its own process group: os.setsid at start)
      +-- loky workers, loky's resource tracker, sleep 600, a Pool's processes ...  (same group)

When a worker leaves on its own (shut down, recycled, orphaned by a dead coordinator) it ends
its descendants itself (``end_descendants``); when it is killed (cancelled, crashed) the backend
ends what is left of its group (``end_groups``), which its reparented descendants still carry.
Resource trackers (multiprocessing's, loky's) are spared: each exits by itself once every
process holding its pipe is gone, removing what they left (shared memory, joblib's memmapped
folders). A process that started a session of its own (``start_new_session=True``) leaves the
group; it is ended only while it is still a descendant of a live worker.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Collection
from typing import Any

#: How long ending descendants waits for them to be gone.
END_WAIT_S = 2.0


def end_descendants(*, graceful: bool = True) -> int:
    """In a worker: end every process it started (and theirs), but resource trackers; how many.
    ``graceful``: shut loky's reusable executor down first (no warnings from its threads)."""
    import psutil

    me = psutil.Process()
    found = {p.pid: p for p in _safe(me.children, recursive=True)}
    if os.getpgid(0) == me.pid:  # we lead our group (never end a group we only belong to)
        found.update((p.pid, p) for p in _group_members(me.pid) if p.pid != me.pid)
    if graceful and any(_is_loky_worker(p) for p in found.values()):
        _shut_loky_down()
    return _kill([p for p in found.values() if not _is_resource_tracker(p)])


def end_groups(pgids: Collection[int]) -> int:
    """After the workers leading process groups ``pgids`` died: end what is left of their groups,
    but resource trackers; how many."""
    return _kill([p for p in _group_members(*pgids) if not _is_resource_tracker(p)]) if pgids else 0


def _group_members(*pgids: int) -> list[Any]:
    import psutil

    wanted = set(pgids)
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) in wanted:
                members.append(psutil.Process(pid))
        except (OSError, psutil.Error):
            continue
    return members


def _kill(processes: list[Any]) -> int:
    import psutil

    killed = []
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
            killed.append(process)
        except psutil.Error:
            continue
    psutil.wait_procs(killed, timeout=END_WAIT_S)  # reaps our own children: no zombies left
    return len(killed)


def _cmdline(process: Any) -> str:
    return " ".join(_safe(process.cmdline))


def _is_resource_tracker(process: Any) -> bool:
    return "resource_tracker import main" in _cmdline(process)


def _is_loky_worker(process: Any) -> bool:
    return "loky.backend.popen_loky_posix" in _cmdline(process)


def _shut_loky_down() -> None:
    """loky's public shutdown of its reusable executor (joblib's vendored copy, or loky's own)."""
    for name in ("joblib.externals.loky", "loky"):
        loky = sys.modules.get(name)
        if loky is not None:
            try:
                loky.get_reusable_executor().shutdown(wait=True, kill_workers=True)
            except Exception:  # noqa: BLE001 - whatever is left is killed next
                pass


def _safe(method: Any, **kwargs: Any) -> list[Any]:
    import psutil

    try:
        return list(method(**kwargs))
    except psutil.Error:
        return []
