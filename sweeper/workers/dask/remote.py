"""What runs on the cluster: the serve task of a slot, its two channels, and what nannies run.

    Dask worker (one thread), task serve_slot(slot, token, ...):
      claim: the first item of its inbox must be [CLAIM, token]   (else: a re-run -> "rerun" notice)
      check: same Python/dask/distributed/sweeper, the objective's modules import -> "checked" notice
      serve(slot, Inbox, Outbox, lifeline)   the same loop as a local worker, in this task's thread
    nanny of that worker:
      ExitNotes: its worker process's exit code -> an event under the worker's address
      end_worker(pid, grace_s): SIGTERM the worker process (and what its trial started), SIGKILL
                                after grace_s; the nanny starts a fresh worker process

Messages to the coordinator are plain lists ``[token, to_wire(message)]`` (msgpack through the
scheduler: nothing here is unpickled by the coordinator); a notice is ``[token, [NOTICE, kind,
detail]]``. ``token`` names the slot's incarnation, so the coordinator drops what a stale one
says. Messages from the coordinator are ``to_wire`` lists too; a ``RunTrial``'s
``objective_kwargs`` travel as cloudpickle bytes (the coordinator's objects, unpickled here), in
which large arrays are ``SharedRef`` placeholders for arrays this task received once, as its
own arguments (``DaskBackend.share``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import distributed as _distributed

from ... import _compat
from ..descendants import end_descendants
from ..messages import RunTrial, Shutdown, TrialFinished, from_wire, to_wire
from ..nested import apply_worker_environment, worker_environment
from ..process import ORPHANED_EXIT, WATCHDOG_INTERVAL_S, _AroundTrial, _OutputFile
from ..serve import serve

distributed: Any = _distributed  # untyped at these edges (its calls are not annotated)

#: First item of a backend notice on the outbox (never the name of a message class).
NOTICE = "sweeper-dask"
#: First item of the claim a serve task must find first in its inbox.
CLAIM = "sweeper-claim"
#: How long a serve task looks for its claim (the coordinator puts it there before submitting).
CLAIM_TIMEOUT_S = 5.0
#: The event action a nanny's ``ExitNotes`` logs under its worker's address.
EXIT_NOTE = "sweeper-worker-exit"


@dataclasses.dataclass(frozen=True, slots=True)
class SharedRef:
    """Stands for a shared array in ``objective_kwargs``: its name in the task's ``shared``."""

    name: str


def inbox_name(prefix: str, token: str) -> str:
    return f"{prefix}-in-{token}"


def outbox_name(prefix: str) -> str:
    return f"{prefix}-out"


def plain(data: Any) -> Any:
    """Wire data as it was sent: msgpack hands lists back as tuples."""
    if isinstance(data, (list, tuple)):
        return [plain(item) for item in data]
    if isinstance(data, dict):
        return {key: plain(value) for key, value in data.items()}
    return data


def versions() -> dict[str, str]:
    """What must be the same on the coordinator, the scheduler and every worker."""
    from importlib import metadata

    found = {"python": "%d.%d" % sys.version_info[:2]}
    for package in ("dask", "distributed", "sweeper"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# --- the channels ----------------------------------------------------------------------------------


class Inbox:
    """A slot's inbox: a Dask queue of the coordinator's messages, as ``serve`` reads a channel."""

    def __init__(self, channel: Any, shared: Mapping[str, Any]) -> None:
        self._queue, self._shared = channel, shared

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            data = self._queue.get(timeout=timeout)
        except TimeoutError:
            raise queue.Empty from None
        except Exception as exc:  # noqa: BLE001 - the scheduler is gone or refused: the channel is lost
            raise EOFError(f"the inbox is lost: {exc!r}") from exc
        message = from_wire(plain(data))
        if isinstance(message, RunTrial) and isinstance(message.objective_kwargs, bytes):
            kwargs = resolve(pickle.loads(message.objective_kwargs), self._shared)
            message = dataclasses.replace(message, objective_kwargs=kwargs)
        return message

    def put(self, item: Any) -> None:  # pragma: no cover - a worker never writes its own inbox
        raise NotImplementedError

    def wake(self) -> None:
        """End an idle ``serve``: a ``Shutdown`` as if from the coordinator."""
        self._queue.put(to_wire(Shutdown()))


class Outbox:
    """The shared outbox: every message as ``[token, wire]``; a put returns once the scheduler
    holds it, so what a worker said before it died is never lost."""

    def __init__(self, channel: Any, token: str) -> None:
        self._queue, self._token = channel, token

    def put(self, item: Any) -> None:
        self._queue.put([self._token, to_wire(item)])

    def notice(self, kind: str, detail: Any) -> None:
        self._queue.put([self._token, [NOTICE, kind, detail]])

    def get(self, block: bool = True, timeout: float | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError


def resolve(kwargs: Any, shared: Mapping[str, Any]) -> Any:
    """``objective_kwargs`` with every ``SharedRef`` replaced by its (read-only) array."""
    if isinstance(kwargs, SharedRef):
        return shared[kwargs.name]
    if isinstance(kwargs, dict):
        return {key: resolve(value, shared) for key, value in kwargs.items()}
    return kwargs


def read_only(arrays: Mapping[str, Any]) -> dict[str, Any]:
    """Views of the task's shared arrays an objective cannot write (as local shared memory)."""
    views = {}
    for name, array in arrays.items():
        view = array.view()
        view.flags.writeable = False
        views[name] = view
    return views


# --- the serve task ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class SlotOptions:
    """Plain data every serve task of one backend gets."""

    prefix: str
    expected: dict[str, str]  # versions(), as the coordinator has them
    modules: tuple[str, ...] = ()  # the objective's modules: each must import here
    host_workers: int = 1  # Dask workers on this worker's host: nested parallelism's share
    max_trials: int | None = None
    max_rss_mb: int | None = None


def serve_slot(slot: int, token: str, options: SlotOptions, objectives: Mapping[str, bytes],
               shared: Mapping[str, Any]) -> str:
    """The long-lived task of one slot's incarnation: claim, check, then ``serve`` until
    ``Shutdown``, the coordinator is gone or the worker recycles. Returns why it ended."""
    worker = distributed.get_worker()
    client = distributed.get_client()
    outbox = Outbox(distributed.Queue(outbox_name(options.prefix), client=client), token)
    inbox_queue = distributed.Queue(inbox_name(options.prefix, token), client=client)
    try:
        first = None
        if inbox_queue.qsize():  # the claim is put before the task is submitted: never empty the first time
            with contextlib.suppress(TimeoutError):
                first = inbox_queue.get(timeout=CLAIM_TIMEOUT_S)
        if plain(first) != [CLAIM, token]:
            # Dask ran this task again after its worker died (allowed-failures): that worker's
            # trial has been reported as a crash; running anything here would run it twice.
            outbox.notice("rerun", worker.address)
            return "rerun"
        differing = {k: v for k, v in versions().items() if options.expected.get(k) != v}
        problems = import_problems(options.modules)
        outbox.notice("checked", {"versions": differing, "imports": problems, "address": worker.address})
        if differing or problems:
            return "refused"
        apply_worker_environment(worker_environment(options.host_workers))
        ended = _serve(slot, worker, Inbox(inbox_queue, read_only(shared)), outbox, options, objectives)
        outbox.notice("ended", ended)
        return ended
    except BaseException:
        with contextlib.suppress(Exception):
            outbox.notice("ended", traceback.format_exc()[-2000:])
        raise
    finally:
        for channel in (inbox_queue, outbox._queue):
            try:
                channel.close()
            except Exception:  # noqa: BLE001 - the scheduler may be gone
                pass


def _serve(slot: int, worker: Any, inbox: Inbox, outbox: Outbox, options: SlotOptions,
           objectives: Mapping[str, bytes]) -> str:
    key = worker.get_current_task()

    def lifeline() -> bool:
        return _compat.dask_task_wanted(worker, key)

    around = _Busy(_AroundTrial(_OutputFile(None), options.max_trials, options.max_rss_mb))
    done = threading.Event()
    watchdog = threading.Thread(target=_orphan_watchdog, args=(lifeline, around, done, inbox),
                                name=f"sweeper-dask-watchdog-{slot}", daemon=True)
    watchdog.start()
    try:
        # No lifeline polling in serve: an inbox read that times out is logged as an error by
        # the scheduler, every time. The watchdog wakes an idle serve instead.
        serve(slot, inbox, outbox, objectives=objectives, around_trial=around)
    finally:
        done.set()
        end_descendants()  # what this slot's trials started ends with it
    return "served"


class _Busy:
    """``around_trial`` that also says whether a trial is running (for the watchdog)."""

    def __init__(self, inner: Callable[[RunTrial, Callable[[], TrialFinished]], TrialFinished]) -> None:
        self._inner = inner
        self.running = threading.Event()

    def __call__(self, message: RunTrial, run: Callable[[], TrialFinished]) -> TrialFinished:
        self.running.set()
        try:
            return self._inner(message, run)
        finally:
            self.running.clear()


def _orphan_watchdog(lifeline: Callable[[], bool], busy: _Busy, done: threading.Event, inbox: Inbox) -> None:
    """The coordinator is gone (its client released this task). Idle: wake ``serve`` with a
    ``Shutdown`` in its own inbox. Mid-trial: end this worker process -- the trial cannot be
    stopped otherwise -- and its nanny starts a fresh one."""
    while not done.wait(WATCHDOG_INTERVAL_S):
        if lifeline():
            continue
        if busy.running.is_set():
            try:
                end_descendants(graceful=False)
            finally:
                os._exit(ORPHANED_EXIT)
        with contextlib.suppress(Exception):
            inbox.wake()
        return


def import_problems(modules: Sequence[str]) -> dict[str, str]:
    """Each module that does not import here, with why (imported for real: the trials need it)."""
    problems = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # noqa: BLE001 - a module may even call sys.exit
            problems[module] = f"{type(exc).__name__}: {exc}"
    return problems


# --- what nannies run -----------------------------------------------------------------------------------


class ExitNotes(_distributed.NannyPlugin):
    """Registered on every nanny: when its worker process dies while the nanny runs, log the exit
    code under the worker's address, where the coordinator listens for that worker's removal."""

    idempotent = True

    def setup(self, nanny: Any) -> None:
        def note(exitcode: int) -> None:
            address = nanny.worker_address
            if address and nanny.status == distributed.Status.running:
                nanny.log_event(address, {"action": EXIT_NOTE, "exitcode": exitcode})

        _compat.on_dask_worker_exit(nanny, note)


async def end_worker(pid: int | None, grace_s: float, dask_worker: Any = None) -> str:
    """Run on a nanny (``Client.run(..., nanny=True)``): end its worker process ``pid`` (None:
    whichever runs now) -- SIGTERM, SIGKILL after ``grace_s`` -- and every process its trials
    started but resource trackers. The nanny then starts a fresh worker process. A coroutine,
    so the client need not wait for (nor unpickle) its result."""
    import psutil

    nanny = dask_worker
    current = nanny.pid
    if current is None or (pid is not None and current != pid):
        return "gone"
    try:
        started = [p for p in psutil.Process(current).children(recursive=True)
                   if "resource_tracker" not in " ".join(_cmdline(p))]
        os.kill(current, signal.SIGTERM)
    except (OSError, psutil.Error):
        return "gone"
    for process in started:
        try:
            process.kill()
        except psutil.Error:
            pass

    def insist() -> None:
        if nanny.pid == current:
            try:
                os.kill(current, signal.SIGKILL)
            except OSError:
                pass

    asyncio.get_running_loop().call_later(grace_s, insist)
    return "signalled"


def _cmdline(process: Any) -> list[str]:
    try:
        return list(process.cmdline())
    except Exception:  # noqa: BLE001 - gone, or not ours to read
        return []
