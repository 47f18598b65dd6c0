"""Where trials run: worker processes (``LocalBackend``) or threads of this process (``InlineBackend``).

    coordinator --send(wid, msg)--> inbox[wid] (Manager queue) --> worker wid
    coordinator <--receive()------- outbox (one Manager queue shared by all workers)

A backend only moves messages and keeps workers alive; it decides nothing. Each worker has its
own inbox, so a crash is tied to the one trial that worker held (unlike ``ProcessPoolExecutor``,
where one dead worker breaks every pending future). A restarted worker gets a fresh inbox, so
answers meant for its dead predecessor cannot confuse it.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.managers
import os
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from .messages import FromWorker, Shutdown, ToWorker
from .._procs import pid_alive
from .worker import WorkerOptions, detach_from_terminal_signals, start_orphan_watchdog, worker_main
from ..errors import BackendError

#: How long ``close`` waits for workers to leave on their own before killing them.
JOIN_TIMEOUT_S = 5.0


class Backend(Protocol):
    """The contract the coordinator drives. A distributed engine would be one more class."""

    def start(self, n_workers: int) -> None: ...
    def send(self, worker_id: int, message: ToWorker) -> None: ...
    def receive(self, timeout_s: float) -> FromWorker | None: ...
    def dead_workers(self) -> dict[int, int | None]: ...
    def restart(self, worker_id: int) -> None: ...
    def terminate(self, worker_id: int) -> None: ...
    def kill(self, worker_id: int) -> None: ...
    def pids(self) -> dict[int, int | None]: ...
    def close(self, *, kill: bool = False) -> None: ...


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


class LocalBackend:
    """Worker processes on this machine, talking through one ``multiprocessing.Manager``."""

    def __init__(
        self,
        start_method: str | None = None,
        *,
        preload: Sequence[str] = (),
        max_trials_per_worker: int | None = None,
        max_worker_memory_mb: int | None = None,
    ) -> None:
        self.start_method = start_method or default_start_method()
        self._preload = ["sweeper.workers.worker", *preload]
        self._options = WorkerOptions(os.getpid(), max_trials_per_worker, max_worker_memory_mb)
        self._ctx: Any = None
        self._manager: multiprocessing.managers.SyncManager | None = None
        self._outbox: Any = None
        self._received: collections.deque[FromWorker] = collections.deque()  # taken, not handled
        self._inboxes: dict[int, Any] = {}
        self._processes: dict[int, Any] = {}
        self._reported_dead: set[int] = set()

    def prewarm(self) -> None:
        """Start the forkserver now, so it imports the trials' libraries (sklearn: ~3 s) on
        another core while the coordinator validates the config and opens MLflow."""
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
        try:
            # A fresh random key per sweep: whoever reaches the Manager's socket could make us
            # unpickle; it listens on an AF_UNIX path (Linux) and needs this key.
            self._manager = SweepManager(ctx=self._ctx, authkey=os.urandom(32))
            self._manager.start(_manager_init, (os.getpid(),))
            self._outbox = self._manager.Outbox()  # type: ignore[attr-defined]
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
            args=(worker_id, inbox, self._outbox, self._options),
            name=f"sweeper-worker-{worker_id}",
            # Not daemonic: estimators with n_jobs (loky, multiprocessing) must be able to
            # start children of their own. close() and the orphan watchdog reap us instead.
            daemon=False,
        )
        process.start()
        self._inboxes[worker_id] = inbox
        self._processes[worker_id] = process
        self._reported_dead.discard(worker_id)

    def send(self, worker_id: int, message: ToWorker) -> None:
        try:
            self._inboxes[worker_id].put(message)
        except (EOFError, OSError) as exc:
            raise BackendError(
                f"lost the channel to the workers (Manager process died?) sending to worker {worker_id}: {exc!r}"
            ) from exc

    def receive(self, timeout_s: float) -> FromWorker | None:
        if not self._received:
            try:
                self._received.extend(self._outbox.get_all(timeout_s))
            except queue.Empty:
                return None
            except (EOFError, OSError) as exc:
                raise BackendError(f"lost the channel to the workers (Manager process died?): {exc!r}") from exc
        return self._received.popleft()

    def dead_workers(self) -> dict[int, int | None]:
        dead = {}
        for worker_id, process in self._processes.items():
            if worker_id in self._reported_dead or process.is_alive():
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
            self._reported_dead.add(worker_id)
        return dead

    def restart(self, worker_id: int) -> None:
        self.kill(worker_id)
        self._processes[worker_id].join(JOIN_TIMEOUT_S)
        self._spawn(worker_id)

    def terminate(self, worker_id: int) -> None:
        self._signal(worker_id, "terminate")

    def kill(self, worker_id: int) -> None:
        self._signal(worker_id, "kill")

    def _signal(self, worker_id: int, how: str) -> None:
        process = self._processes.get(worker_id)
        if process is None or process.pid is None:
            return
        if process.is_alive():
            getattr(process, how)()
        elif pid_alive(process.pid):  # orphaned by a dead forkserver, still running
            os.kill(process.pid, signal.SIGKILL if how == "kill" else signal.SIGTERM)

    def pids(self) -> dict[int, int | None]:
        return {wid: p.pid for wid, p in self._processes.items()}

    def manager_pid(self) -> int | None:
        process = getattr(self._manager, "_process", None)
        return None if process is None else process.pid

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


class InlineBackend:
    """Runs trials in threads of this process: for debuggers (``breakpoint()``) and quick tests.

    Same messages, same worker loop, plain ``queue.Queue`` channels. A timed-out trial cannot be
    killed here; it is failed and its thread abandoned (its later messages are dropped).
    """

    start_method = "inline"
    can_kill = False  # threads cannot be killed: a timed-out trial's thread is abandoned

    def __init__(self) -> None:
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._inboxes: dict[int, queue.Queue[Any]] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._options = WorkerOptions(os.getpid())

    def start(self, n_workers: int) -> None:
        for worker_id in range(n_workers):
            self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> None:
        inbox: queue.Queue[Any] = queue.Queue()
        thread = threading.Thread(
            target=_inline_worker, args=(worker_id, inbox, self._outbox),
            name=f"sweeper-inline-{worker_id}", daemon=True,
        )
        self._inboxes[worker_id] = inbox
        self._threads[worker_id] = thread
        thread.start()

    def send(self, worker_id: int, message: ToWorker) -> None:
        self._inboxes[worker_id].put(message)

    def receive(self, timeout_s: float) -> FromWorker | None:
        try:
            message: FromWorker = self._outbox.get(timeout=timeout_s)
        except queue.Empty:
            return None
        return message

    def dead_workers(self) -> dict[int, int | None]:
        return {}

    def restart(self, worker_id: int) -> None:
        self._inboxes[worker_id].put(Shutdown())  # an abandoned thread leaves when it can
        self._spawn(worker_id)

    def terminate(self, worker_id: int) -> None:
        pass

    def kill(self, worker_id: int) -> None:
        pass

    def pids(self) -> dict[int, int | None]:
        return {wid: os.getpid() for wid in self._threads}

    def close(self, *, kill: bool = False) -> None:
        for inbox in self._inboxes.values():
            inbox.put(Shutdown())
        if not kill:
            for thread in self._threads.values():
                thread.join(JOIN_TIMEOUT_S)
        self._threads.clear()


def _inline_worker(worker_id: int, inbox: Any, outbox: Any) -> None:
    from .messages import RunTrial, WorkerReady
    from .worker import run_trial

    outbox.put(WorkerReady(worker_id, os.getpid()))
    while True:
        message = inbox.get()
        if isinstance(message, Shutdown):
            return
        if isinstance(message, RunTrial):
            outbox.put(run_trial(worker_id, message, inbox, outbox))
