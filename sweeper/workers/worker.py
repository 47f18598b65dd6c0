"""Runs trials, one at a time, inside a worker process.

    inbox (this worker's own Manager queue) --RunTrial--> objective(trial) --TrialFinished--> outbox

The loop never raises: whatever the objective does (raise, return garbage, call sys.exit), the
coordinator gets exactly one ``TrialFinished`` of plain data. Never imports optuna or mlflow
(the coordinator is the one writer); keeps start-up cheap under ``spawn``.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import importlib
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._procs import pid_alive
from .shared import materialize
from .. import _compat
from .messages import RunTrial, Shutdown, TrialEnv, TrialEnvRequest, TrialFinished, WorkerReady
from ..errors import TrialPruned
from .trial import Trial

#: How often a worker checks that its coordinator is still alive.
WATCHDOG_INTERVAL_S = 0.5
#: Captured output sent back per trial: the head and the tail around a truncation marker.
OUTPUT_HEAD_BYTES, OUTPUT_TAIL_BYTES = 64 * 1024, 448 * 1024


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Plain-data settings a worker process starts with."""

    coordinator_pid: int
    max_trials: int | None = None  # exit after this many trials (the coordinator restarts us)
    max_rss_mb: int | None = None  # exit after a trial that left us bigger than this


def worker_main(worker_id: int, inbox: Any, outbox: Any, options: WorkerOptions,
                output_path: str | None = None) -> None:
    """Entry point of a worker process: loop until ``Shutdown`` or the coordinator is gone.
    ``output_path``: where captured trial output goes (the backend reads it if we die)."""
    detach_from_terminal_signals()
    faulthandler.enable()  # a segfault's stack lands in the trial's captured output
    start_orphan_watchdog(options.coordinator_pid)
    output = _OutputFile(output_path)
    try:
        outbox.put(WorkerReady(worker_id, socket.gethostname(), os.getpid()))
        done = 0
        while True:
            message = inbox.get()
            if isinstance(message, Shutdown):
                return
            if isinstance(message, RunTrial):
                with output.capturing(message.capture_output):
                    outcome = run_trial(worker_id, message, inbox, outbox)
                if message.capture_output:
                    outcome = dataclasses.replace(outcome, output=output.take())
                done += 1
                # Recycled after N trials or when a leaky objective grew us: say so with the
                # result, so the coordinator sends the next trial to a fresh worker instead.
                leaving = (options.max_trials is not None and done >= options.max_trials) or (
                    options.max_rss_mb is not None and _rss_mb() > options.max_rss_mb
                )
                outbox.put(dataclasses.replace(outcome, worker_exits=leaving))
                if leaving:
                    return
            # Stale answers (a Suggestion for a trial that already ended) are dropped.
    except (EOFError, OSError):
        return  # the Manager is gone: the coordinator is shutting down or died
    finally:
        output.close()


def run_trial(worker_id: int, message: RunTrial, inbox: Any, outbox: Any) -> TrialFinished:
    """Run one objective call and describe its outcome as plain data."""
    number = message.trial_number
    trial = Trial(number, message.params, worker_id=worker_id, inbox=inbox, outbox=outbox, study=message.study)
    started = time.perf_counter()

    def finished(state: str, **fields: Any) -> TrialFinished:
        return TrialFinished(
            worker_id, number, state, duration_s=time.perf_counter() - started, **fields  # type: ignore[arg-type]
        )

    try:
        objective = load_callable(message.objective)
        kwargs = materialize(message.objective_kwargs)  # shared-memory arrays -> read-only views
        with _mlflow_run_of(trial, outbox, worker_id):
            result = objective(trial, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from an objective is a failure too
        if _is_pruned(exc):
            return finished("pruned", reason="pruned")
        return finished(
            "fail",
            error=_describe(exc),
            traceback=traceback.format_exc(),
            reason="exception",
        )
    try:
        values = coerce_values(result)
    except ValueError as exc:
        return finished("fail", error=str(exc), reason="bad_value")
    return finished("complete", values=values)


def coerce_values(result: Any) -> tuple[float, ...]:
    """Turn an objective's return value into floats here, so no user type crosses the queue."""
    items = result if isinstance(result, (list, tuple)) else [result]
    values = []
    for item in items:
        if isinstance(item, (str, bytes)) or item is None:
            raise ValueError(
                f"objective must return a float or a sequence of floats, got {type(item).__name__} {item!r:.80}"
            )
        try:
            value = float(item)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"objective must return a float or a sequence of floats, got {type(item).__name__}"
            ) from None
        if math.isnan(value):
            raise ValueError("objective returned nan, which is not an acceptable value")
        values.append(value)
    if not values:
        raise ValueError("objective returned an empty sequence")
    return tuple(values)


_CALLABLES: dict[str, Callable[..., Any]] = {}


def load_callable(path: str) -> Callable[..., Any]:
    """Import ``"pkg.module:qualname"`` once per worker and keep it."""
    if path not in _CALLABLES:
        module_name, _, qualname = path.partition(":")
        if module_name == "__main__" and "__mp_main__" in sys.modules:
            module: Any = sys.modules["__mp_main__"]
        else:
            module = importlib.import_module(module_name)
        target = module
        for part in qualname.split("."):
            target = getattr(target, part)
        _CALLABLES[path] = target
    return _CALLABLES[path]


def detach_from_terminal_signals() -> None:
    """Ctrl-C and group-wide SIGTERM are the coordinator's to handle (first: let trials finish;
    second: kill them). A new session keeps group signals away; SIGINT is ignored as well for
    platforms without setsid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setsid()
    except (AttributeError, OSError):
        pass


def start_orphan_watchdog(coordinator_pid: int) -> threading.Thread:
    """Exit when the coordinator dies, even mid-trial: a SIGKILLed coordinator leaves no orphans.

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
                os._exit(70)

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


def _is_pruned(exc: BaseException) -> bool:
    if isinstance(exc, TrialPruned):
        return True
    optuna_exceptions = sys.modules.get("optuna.exceptions")  # never import optuna for this
    return optuna_exceptions is not None and isinstance(exc, optuna_exceptions.TrialPruned)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: objective called sys.exit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _mlflow_run_of:
    """Point plain ``mlflow.log_*`` calls in the objective at this trial's own record.

    Only when the objective's process loaded mlflow: other workers never pay for it. The
    coordinator answers with environment variables (the run to resume, the store), which hold
    for the objective's call; afterwards the run is let go without ending it, so the
    coordinator still sets its final status.
    """

    def __init__(self, trial: Trial, outbox: Any, worker_id: int) -> None:
        self._trial, self._outbox, self._worker_id = trial, outbox, worker_id
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        if "mlflow" not in sys.modules:
            return
        self._outbox.put(TrialEnvRequest(self._worker_id, self._trial.number))
        reply: TrialEnv = self._trial._await(TrialEnv)
        for key, value in reply.env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        if not self._saved:
            return
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _compat.forget_active_mlflow_run()
