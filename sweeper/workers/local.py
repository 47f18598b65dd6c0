"""Worker processes on this machine, talking through one ``multiprocessing.Manager``.

    coordinator --send(slot, msg)--> inbox[slot] (a Manager queue) --> the slot's worker process
    coordinator <--receive()-------- outbox (one Manager queue, shared) or WorkerLost (its sentinel)

Each worker has its own inbox, so a crash is tied to the one trial that worker held (unlike
``ProcessPoolExecutor``, where one dead worker breaks every pending future), and a replacement
gets a fresh inbox, so answers meant for its dead predecessor cannot confuse it. The kill
protocol (SIGTERM, SIGKILL after a grace period), ending what a dead worker's trials left
running, and the words for exit codes live here.

Workers do not run the user's script again: multiprocessing re-imports ``__main__`` in every
spawn and forkserver child, so that objects defined there can be unpickled, which starts a
second sweep in each worker when a script lacks ``if __name__ == "__main__":``. Objectives from
``__main__`` travel by value instead (``callables``), so processes start with ``__main__`` left
alone, unless ``import_main`` (objective_kwargs hold objects of classes defined there).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.managers
import os
import queue
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._procs import pid_alive
from ..errors import BackendError
from .backend import RESTART_BUDGET
from .messages import FromBackend, Shutdown, ToWorker, WorkerLost, WorkerReady
from .descendants import end_groups
from .nested import worker_environment
from .process import WorkerOptions, detach_from_terminal_signals, read_capped, start_orphan_watchdog, worker_main
from .callables import main_left_alone
from .shared import Publication

#: How long ``close`` waits for workers to leave on their own before killing them.
JOIN_TIMEOUT_S = 5.0


def default_start_method() -> str:
    """forkserver where it exists (warm, ~15 ms a worker, no fork-after-threads hazards), else spawn."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class Outbox(queue.Queue):  # type: ignore[type-arg]
    """The workers' shared outbox: the Manager's own ``Queue`` plus ``get_all``, every message
    waiting, in one round trip (each call on a Manager queue is one, ~0.3 ms). With two workers
    busy, their messages often wait in pairs while the coordinator works."""

    def get_all(self, timeout: float | None = None) -> list[Any]:
        items = [self.get(timeout=timeout)]  # queue.Empty after ``timeout``, as get()
        while True:
            try:
                items.append(self.get_nowait())
            except queue.Empty:
                return items


class SweepManager(multiprocessing.managers.SyncManager):
    """A ``multiprocessing.Manager()`` (SyncManager) that also serves the ``Outbox``."""


SweepManager.register("Outbox", Outbox, exposed=("put", "get", "get_all"))


def _manager_init(coordinator_pid: int) -> None:
    # The terminal's Ctrl-C reaches the whole process group; a Manager killed by it would cut
    # the coordinator off mid-shutdown (python/cpython PR #12483).
    detach_from_terminal_signals()
    start_orphan_watchdog(coordinator_pid)


def describe_exit(exitcode: int | None) -> str:
    """Words for a worker's exit status, naming the likely cause."""
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (possibly out of memory)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}, exit code {exitcode}"
    return f"worker exited (code {exitcode}) before reporting a result"


class LocalBackend:
    """Worker processes on this machine (``Backend``)."""

    name = "local"

    def __init__(
        self,
        start_method: str | None = None,
        *,
        preload: Sequence[str] = (),
        max_trials_per_worker: int | None = None,
        max_worker_memory_mb: int | None = None,
        scratch_dir: str | None = None,
        objectives: Mapping[str, bytes] | None = None,
        import_main: bool = False,
    ) -> None:
        """``objectives``: objectives sent by value, name -> cloudpickle bytes, delivered to each
        worker once, when it starts. ``import_main``: let workers import ``__main__`` as
        multiprocessing does (only for objective_kwargs holding objects defined there)."""
        self.start_method = start_method or default_start_method()
        self._preload = ["sweeper.workers.process", *preload]
        for name, payload in (objectives or {}).items():
            if not isinstance(payload, bytes):
                raise TypeError(f"objective {name!r}: a process backend takes pickled bytes, got {type(payload).__name__}")
        self._options = WorkerOptions(os.getpid(), max_trials_per_worker, max_worker_memory_mb,
                                      dict(objectives or {}))
        self._import_main = import_main
        self._ctx: Any = None
        self._manager: multiprocessing.managers.SyncManager | None = None
        self._outbox: Any = None
        self._received: collections.deque[FromBackend] = collections.deque()  # taken, not handled
        self._inboxes: dict[int, Any] = {}
        self._processes: dict[int, Any] = {}
        self._kill_at: dict[int, float] = {}  # cancelled slots: when SIGTERM becomes SIGKILL
        self._cancelled: set[int] = set()
        self._unready_deaths: dict[int, int] = {}  # slot -> deaths in a row before WorkerReady
        self._publication = Publication()
        self._scratch_given = scratch_dir
        self._scratch: str | None = None  # each slot's captured output, read here if its worker dies

    def prewarm(self) -> None:
        """Start the forkserver now, so it imports the trials' libraries (sklearn: ~3 s) on
        another core while the coordinator opens the study and MLflow."""
        self._context()
        if self.start_method == "forkserver":
            import multiprocessing.forkserver

            multiprocessing.forkserver.ensure_running()

    def _context(self) -> Any:
        if self._ctx is None:
            try:
                self._ctx = multiprocessing.get_context(self.start_method)
            except ValueError as exc:
                raise BackendError(f"start method {self.start_method!r} is not available here") from exc
            if self.start_method == "forkserver":
                self._ctx.set_forkserver_preload(self._preload)
        return self._ctx

    def start(self, n_workers: int) -> None:
        self._context()
        # Each worker's share of the cores, for what its trials start (joblib's n_jobs=-1, BLAS).
        self._options = dataclasses.replace(self._options, env=worker_environment(n_workers))
        try:
            # A fresh random key per sweep: whoever reaches the Manager's socket could make us
            # unpickle; it listens on an AF_UNIX path (Linux) and needs this key.
            self._manager = SweepManager(ctx=self._ctx, authkey=os.urandom(32))
            with self._main_left_alone():
                self._manager.start(_manager_init, (os.getpid(),))
            self._outbox = self._manager.Outbox()  # type: ignore[attr-defined]
            if self._scratch_given is not None:
                os.makedirs(self._scratch_given, exist_ok=True)
                self._scratch = self._scratch_given
            else:
                # inside this process's multiprocessing directory when it has one of sweeper's
                # (``sweeper._tempdirs``): a SIGKILLed sweep's next run removes both
                claimed = os.path.join(tempfile.gettempdir(), f"sweeper-mp-{os.getpid()}")
                self._scratch = tempfile.mkdtemp(prefix="workers-", dir=claimed if os.path.isdir(claimed) else None)
            for worker_id in range(n_workers):
                self._spawn(worker_id)
        except BaseException:
            self.close(kill=True)
            raise

    def _spawn(self, worker_id: int) -> None:
        assert self._manager is not None
        inbox = self._manager.Queue()
        process = self._ctx.Process(
            target=worker_main,
            args=(worker_id, inbox, self._outbox, self._options, self._output_path(worker_id)),
            name=f"sweeper-worker-{worker_id}",
            # Not daemonic: estimators with n_jobs (loky, multiprocessing) must be able to
            # start children of their own. close() and the orphan watchdog reap us instead.
            daemon=False,
        )
        with self._main_left_alone():
            process.start()
        self._inboxes[worker_id] = inbox
        self._processes[worker_id] = process

    def _main_left_alone(self) -> contextlib.AbstractContextManager[None]:
        """``callables.main_left_alone`` while a worker or the Manager starts, unless its
        objective_kwargs hold objects of the script's own classes (workers import it then)."""
        if self._import_main or self.start_method == "fork":
            return contextlib.nullcontext()
        return main_left_alone()

    def _output_path(self, worker_id: int) -> str | None:
        return None if self._scratch is None else os.path.join(self._scratch, f"worker-{worker_id}.out")

    def send(self, worker_id: int, message: ToWorker) -> None:
        inbox = self._inboxes.get(worker_id)
        if inbox is None:
            return  # the slot is gone; its loss is reported by receive()
        try:
            inbox.put(message)
        except (EOFError, OSError) as exc:
            raise BackendError(
                f"lost the channel to the workers (Manager process died?) sending to worker {worker_id}: {exc!r}"
            ) from exc

    def receive(self, timeout_s: float) -> FromBackend | None:
        if not self._received:
            self._reap()
        if not self._received:
            try:
                self._received.extend(self._outbox.get_all(timeout_s))
            except queue.Empty:
                return None
            except (EOFError, OSError) as exc:
                raise BackendError(f"lost the channel to the workers (Manager process died?): {exc!r}") from exc
        message = self._received.popleft()
        if isinstance(message, WorkerReady):
            self._unready_deaths.pop(message.worker_id, None)
        return message

    def _reap(self) -> None:
        """Report dead workers -- after whatever they said before dying -- and replace them;
        cancelled ones past their grace are killed."""
        now = time.monotonic()
        for worker_id, kill_at in list(self._kill_at.items()):
            if now > kill_at:
                self._signal(worker_id, signal.SIGKILL)
                del self._kill_at[worker_id]
        dead: dict[int, int | None] = {}
        for worker_id, process in self._processes.items():
            if process.is_alive():
                continue
            process.join(0)
            code = process.exitcode
            if code == 255 and self.start_method == "forkserver":
                # 255 is also what multiprocessing reports for *every* forkserver child once
                # the forkserver itself dies (e.g. a SIGTERM to our process group): trust the pid.
                if pid_alive(process.pid):
                    continue
                code = None
            dead[worker_id] = code
        if not dead:
            return
        # What the dead workers' trials started (loky pools, subprocesses) goes with them.
        end_groups([self._processes[worker_id].pid for worker_id in dead])
        try:  # a worker may have sent its result and then died (an atexit crash): that first
            self._received.extend(self._outbox.get_all(0))
        except queue.Empty:
            pass
        except (EOFError, OSError) as exc:
            raise BackendError(f"lost the channel to the workers (Manager process died?): {exc!r}") from exc
        for worker_id, code in dead.items():
            del self._processes[worker_id]
            del self._inboxes[worker_id]
            self._kill_at.pop(worker_id, None)
            reason = "cancelled" if worker_id in self._cancelled else describe_exit(code)
            if worker_id not in self._cancelled:
                self._unready_deaths[worker_id] = self._unready_deaths.get(worker_id, 0) + 1
            self._cancelled.discard(worker_id)
            replaced = self._unready_deaths.get(worker_id, 0) < RESTART_BUDGET
            path = self._output_path(worker_id)
            output = read_capped(path) if path is not None else ""
            self._received.append(WorkerLost(worker_id, reason, replaced, output))
            if replaced:
                self._spawn(worker_id)

    def cancel(self, worker_id: int, grace_s: float) -> None:
        if worker_id not in self._processes:
            return
        self._cancelled.add(worker_id)
        self._signal(worker_id, signal.SIGTERM)
        self._kill_at[worker_id] = time.monotonic() + grace_s

    def _signal(self, worker_id: int, signum: int) -> None:
        process = self._processes.get(worker_id)
        if process is None or process.pid is None:
            return
        if process.is_alive():
            (process.kill if signum == signal.SIGKILL else process.terminate)()
        elif pid_alive(process.pid):  # orphaned by a dead forkserver, still running
            os.kill(process.pid, signum)

    def share(self, kwargs: Mapping[str, Any], *, min_bytes: int | None = None) -> dict[str, Any]:
        if min_bytes is None:
            return self._publication.share_large_arrays(kwargs)
        return self._publication.share_large_arrays(kwargs, min_bytes)

    def processes(self) -> dict[str, Any]:
        process = getattr(self._manager, "_process", None)
        return {"backend": self.name, "start_method": self.start_method,
                "manager_pid": None if process is None else process.pid}

    @property
    def manager_address(self) -> Any:
        return None if self._manager is None else self._manager.address

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker and the Manager. Safe to call twice and after a failed start."""
        processes = list(self._processes.values())
        if not kill:
            for worker_id, process in self._processes.items():
                if process.is_alive():
                    try:
                        self._inboxes[worker_id].put(Shutdown())
                    except Exception:  # noqa: BLE001 - the Manager may be gone already
                        process.kill()
            for process in processes:
                process.join(JOIN_TIMEOUT_S)
        for process in processes:
            if process.is_alive():
                process.kill()
            elif process.pid is not None and pid_alive(process.pid):  # forkserver gone
                os.kill(process.pid, signal.SIGKILL)
            process.join(JOIN_TIMEOUT_S)
            if process.is_alive():  # pragma: no cover - a kernel-stuck process
                print(f"sweeper: worker pid {process.pid} did not exit (deadlock?)", file=sys.stderr)
        # A worker that left on its own ended its trials' processes; a killed one could not.
        end_groups([process.pid for process in processes if process.pid is not None])
        self._processes.clear()
        self._inboxes.clear()
        self._received.clear()
        self._outbox = None
        if self._manager is not None:
            try:
                self._manager.shutdown()
            except Exception:  # noqa: BLE001 - already dead is fine
                pass
            self._manager = None
        self._publication.release()
        if self._scratch is not None:
            if self._scratch_given is None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            else:
                for slot_file in os.listdir(self._scratch) if os.path.isdir(self._scratch) else ():
                    if slot_file.startswith("worker-"):
                        os.unlink(os.path.join(self._scratch, slot_file))
            self._scratch = None
