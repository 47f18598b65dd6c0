"""A local worker process: its set-up around the pure loop of ``serve``.

    worker_main: own session (no terminal signals), faulthandler, orphan watchdog,
                 nested parallelism sized to its share of the cores
      serve(worker_id, inbox, outbox, objectives=..., around_trial=...)
        around each trial: fds 1 and 2 captured to a file of its own; recycled after N trials
        or when a trial left it bigger than the limit (the result says so: worker_exits)
      on the way out: every process its trials started is ended

The forkserver preloads this module (and through it ``serve``, ``trial`` and ``shared``), so a
worker starts warm. Never imports optuna or mlflow.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._procs import pid_alive
from .descendants import end_descendants
from .messages import RunTrial, TrialFinished
from .nested import apply_worker_environment
from .serve import Channel, serve

#: How often a worker checks that its coordinator is still alive.
WATCHDOG_INTERVAL_S = 0.5
#: Exit status of a worker whose coordinator died.
ORPHANED_EXIT = 70
#: Captured output sent back per trial: the head and the tail around a truncation marker.
OUTPUT_HEAD_BYTES, OUTPUT_TAIL_BYTES = 64 * 1024, 448 * 1024


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Plain-data settings a worker process starts with."""

    coordinator_pid: int
    max_trials: int | None = None  # exit after this many trials (the backend starts a new one)
    max_rss_mb: int | None = None  # exit after a trial that left us bigger than this
    objectives: dict[str, bytes] = field(default_factory=dict)  # sent by value, unpickled once
    env: dict[str, str] = field(default_factory=dict)  # set at start (nested parallelism's share)


def worker_main(worker_id: int, inbox: Channel, outbox: Channel, options: WorkerOptions,
                output_path: str | None = None) -> None:
    """Entry point of a worker process: serve until ``Shutdown`` or the coordinator is gone.
    ``output_path``: where captured trial output goes (the backend reads it if we die)."""
    detach_from_terminal_signals()
    faulthandler.enable()  # a segfault's stack lands in the trial's captured output
    apply_worker_environment(options.env)
    start_orphan_watchdog(options.coordinator_pid, before_exit=lambda: end_descendants(graceful=False))
    output = _OutputFile(output_path)
    try:
        serve(worker_id, inbox, outbox, objectives=options.objectives,
              around_trial=_AroundTrial(output, options.max_trials, options.max_rss_mb))
    finally:
        output.close()
        end_descendants()


class _AroundTrial:
    """Captures each trial's output and decides, after it, whether this worker is recycled."""

    def __init__(self, output: _OutputFile, max_trials: int | None, max_rss_mb: int | None) -> None:
        self._output, self._max_trials, self._max_rss_mb = output, max_trials, max_rss_mb
        self._done = 0

    def __call__(self, message: RunTrial, run: Callable[[], TrialFinished]) -> TrialFinished:
        with self._output.capturing(message.capture_output):
            outcome = run()
        if message.capture_output:
            outcome = dataclasses.replace(outcome, output=self._output.take())
        self._done += 1
        # Recycled after N trials or when a leaky objective grew us: said with the result, so
        # the coordinator sends the next trial to a fresh worker instead.
        leaving = (self._max_trials is not None and self._done >= self._max_trials) or (
            self._max_rss_mb is not None and _rss_mb() > self._max_rss_mb
        )
        return dataclasses.replace(outcome, worker_exits=leaving) if leaving else outcome


def detach_from_terminal_signals() -> None:
    """Ctrl-C and group-wide SIGTERM are the coordinator's to handle (first: let trials finish;
    second: kill them). A new session keeps group signals away (and makes this process the
    leader of the group its trials' processes inherit); SIGINT is ignored as well for
    platforms without setsid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setsid()
    except (AttributeError, OSError):
        pass


def start_orphan_watchdog(coordinator_pid: int, before_exit: Callable[[], Any] | None = None) -> threading.Thread:
    """Exit when the coordinator dies, even mid-trial: a SIGKILLed coordinator leaves no orphans.
    ``before_exit`` runs first (a worker ends the processes its trials started).

    Under spawn our parent is the coordinator, so reparenting tells at once; under forkserver it
    is the forkserver, which may die alone (a group SIGTERM), so we look at the coordinator's
    own pid and state instead.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_INTERVAL_S)
            orphaned = parent == coordinator_pid and os.getppid() != parent
            if orphaned or not pid_alive(coordinator_pid):
                try:
                    if before_exit is not None:
                        before_exit()
                finally:
                    os._exit(ORPHANED_EXIT)

    thread = threading.Thread(target=watch, name="sweeper-orphan-watchdog", daemon=True)
    thread.start()
    return thread


class _OutputFile:
    """Where a trial's fds 1 and 2 go (print, C extensions, faulthandler): a file of this
    worker's own, read back capped (head and tail) after each trial and sent with its result."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._fd: int | None = None
        self._saved: tuple[int, int] | None = None
        self._enabled = False

    def capturing(self, enabled: bool) -> _OutputFile:
        self._enabled = enabled
        return self

    def __enter__(self) -> None:
        if not self._enabled:
            return
        if self._fd is None:
            if self._path is None:
                handle, path = tempfile.mkstemp(prefix="sweeper-output-")
                os.unlink(path)  # nothing is left behind, whatever kills us
                self._fd = handle
            else:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        _flush_std()
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._fd, 1)
        os.dup2(self._fd, 2)

    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        _flush_std()
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = None

    def take(self) -> str:
        """What the last trial wrote, at most head + tail bytes."""
        return "" if self._fd is None else read_capped_fd(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_capped_fd(fd: int) -> str:
    """A trial's captured output: all of it, or its head and tail around a truncation marker."""
    size = os.fstat(fd).st_size
    if size <= OUTPUT_HEAD_BYTES + OUTPUT_TAIL_BYTES:
        data = os.pread(fd, size, 0)
    else:
        skipped = size - OUTPUT_HEAD_BYTES - OUTPUT_TAIL_BYTES
        data = (os.pread(fd, OUTPUT_HEAD_BYTES, 0)
                + f"\n[... {skipped} bytes truncated ...]\n".encode()
                + os.pread(fd, OUTPUT_TAIL_BYTES, size - OUTPUT_TAIL_BYTES))
    return data.decode("utf-8", errors="replace")


def read_capped(path: str) -> str:
    """``read_capped_fd`` of a file, or "" when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return read_capped_fd(fd)
    finally:
        os.close(fd)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20
