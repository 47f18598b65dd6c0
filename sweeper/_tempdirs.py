"""multiprocessing's sockets in a directory a killed sweep's next run can recognize and remove.

    coordinator (pid P) --claim_multiprocessing_temp_dir--> $TMPDIR/sweeper-mp-P/
        forkserver socket, Manager socket (the Manager inherits the directory)
    removed at a clean exit (as multiprocessing removes its own ``pymp-*``); after a SIGKILL,
    by the next sweeper process to start, once no process P is alive

multiprocessing would make an anonymous ``pymp-*`` directory that nothing can tell apart from
another program's, and leave it forever when the coordinator is SIGKILLed (issue #15 item 10).
The directory stays in the system temp directory (a socket path has at most 107 bytes; a sweep
directory can be deeper than that). Stdlib only.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from . import _compat
from ._procs import pid_alive

PREFIX = "sweeper-mp-"


#: The longest socket path (``sun_path``) less multiprocessing's ``/listener-xxxxxxxx``.
MAX_DIR_LENGTH = 107 - 18


def claim_multiprocessing_temp_dir() -> Path | None:
    """Give this process's multiprocessing a temp directory named after its pid, after removing
    the ones dead sweeper processes left; None (multiprocessing chooses, as it would) when this
    process has one already or the temp directory's path is too long for a socket in it."""
    remove_stale()
    path = os.path.join(tempfile.gettempdir(), f"{PREFIX}{os.getpid()}")
    if len(path) > MAX_DIR_LENGTH:
        return None
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:  # claimed before by this process (and kept), or another user's
        return None
    if not _compat.use_multiprocessing_temp_dir(path):
        os.rmdir(path)
        return None
    from multiprocessing import util

    # As multiprocessing does for its own: removed last at exit, by this process only.
    util.Finalize(None, shutil.rmtree, args=(path, True), exitpriority=-100)
    return Path(path)


def remove_stale(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove ``sweeper-mp-<pid>`` directories of this user whose process is gone; returns them."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid_text = path.name[len(PREFIX):]
        try:
            pid = int(pid_text)
            if path.stat().st_uid != os.getuid() or pid_alive(pid):
                continue
        except (ValueError, OSError):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
