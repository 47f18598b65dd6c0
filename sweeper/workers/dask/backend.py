"""The coordinator's side of the Dask backend: one asyncio thread owns every remote call.

    coordinator thread                       IO thread (asyncio, an asynchronous dask Client)
      send(slot, m) --call_soon_threadsafe-->  sender[slot] --put--> Queue "<prefix>-in-<token>"
      cancel(slot)  --call_soon_threadsafe-->  nanny of the slot's worker: end_worker(pid, grace)
      receive() <--queue.Queue (local)------  pump <--get-- Queue "<prefix>-out" <-- every serve task
                                              events under each used worker's address:
                                                remove-worker, the nanny's exit note -> "lost" mark

The coordinator's thread never waits on the network: ``send`` and ``cancel`` hand over and
return, ``receive`` reads a local queue. A slot's loss is decided on the IO thread (the
scheduler removed its worker, the nanny reported its exit code, the task ended or was found
re-run) and is itself put on the shared outbox as a mark: the pump reaches it after everything
the lost worker put there before it died (a put returns only once the scheduler holds it),
reports ``WorkerLost`` and places a new incarnation of the slot (a fresh token and inbox) on a
free worker. What a stale incarnation still says is dropped by its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import distributed as _distributed
from distributed.comm.core import CommClosedError

from ...errors import BackendError, SweeperError
from ..backend import RESTART_BUDGET
from ..local import describe_exit
from ..messages import FromBackend, RunTrial, ToWorker, TrialFinished, WorkerLost, WorkerReady, from_wire, to_wire
from ..shared import _is_large_array
from . import remote
from .cluster import local_cluster, refusal, versions_of, warn_if_exposed
from .remote import CLAIM, EXIT_NOTE, NOTICE, SharedRef, SlotOptions


distributed: Any = _distributed  # untyped at these edges (its calls are not annotated)
logger = logging.getLogger("sweeper")

#: How long ``start`` waits for the scheduler to answer, for a worker to join, for the checks.
CONNECT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 180.0
#: How long one call to the scheduler may take before it counts as gone; how often the
#: client's connection is looked at.
RPC_GRACE_S = 15.0
WATCH_S = 0.25
#: A lost worker's exit code comes from its nanny a few ms after the scheduler removed it.
EXIT_NOTE_WAIT_S = 1.0
#: A cancelled slot whose worker is not gone this long after its grace is given up on there.
CANCEL_FALLBACK_S = 10.0
#: How often a slot waiting for a free worker looks again; when it says so; when it gives up.
PLACE_POLL_S = 0.25
PLACE_WARN_S = 30.0
PLACE_GIVE_UP_S = 600.0
#: How long ``close`` lets slots leave on their own.
CLOSE_WAIT_S = 5.0
#: Arrays at least this big go through ``share`` (scattered to each worker once).
MIN_SHARED_BYTES = 1 << 16


@dataclasses.dataclass
class _Slot:
    """A slot and its current incarnation (IO thread only)."""

    slot: int
    token: str | None = None
    address: str | None = None
    key: str | None = None
    inbox: Any = None
    future: Any = None
    shared: list[Any] = dataclasses.field(default_factory=list)
    pid: int | None = None
    ready: bool = False
    busy: bool = False  # a RunTrial went out and its TrialFinished did not come back yet
    leaving: bool = False  # its last result said worker_exits (recycled)
    cancelled: bool = False
    losing: bool = False  # a "lost" mark is on its way through the outbox
    checked: asyncio.Future[dict[str, Any]] | None = None
    unready_deaths: int = 0
    placing: bool = False


class DaskBackend:
    """Worker slots on a Dask cluster (``Backend``): one long-lived serve task per slot, each
    on a Dask worker of its own (``dask worker --nthreads 1``), talking over Dask queues."""

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        local_workers: int | None = None,
        security: Any = None,
        objectives: Mapping[str, bytes] | None = None,
        modules: Sequence[str] = (),
        max_trials_per_worker: int | None = None,
        max_worker_memory_mb: int | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        """``address``: a scheduler (``tcp://host:8786``, ``tls://...``); or ``local_workers``:
        a ``LocalCluster`` of that many one-thread worker processes, made by ``start`` and
        closed by ``close``. ``objectives``: sent by value (name -> cloudpickle bytes).
        ``modules``: what the objective needs; ``start`` fails naming any a worker cannot
        import. ``security``: a ``distributed.Security`` (default: dask's TLS config)."""
        if (address is None) == (local_workers is None):
            raise ValueError("give a scheduler address or local_workers, not both")
        for name, payload in (objectives or {}).items():
            if not isinstance(payload, bytes):
                raise TypeError(f"objective {name!r}: the Dask backend takes pickled bytes, got {type(payload).__name__}")
        self.address = address
        self._local_workers = local_workers
        self._security = security
        self._objectives = dict(objectives or {})
        self._modules = tuple(dict.fromkeys(modules))
        self._max_trials, self._max_rss_mb = max_trials_per_worker, max_worker_memory_mb
        self._connect_timeout_s, self._start_timeout_s = connect_timeout_s, start_timeout_s
        self._prefix = f"sweeper-{uuid.uuid4().hex[:12]}"
        self._cluster: Any = None
        self._opening = threading.Lock()
        self._open_error: Exception | None = None
        self._prewarm: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._outbox: Any = None
        self._received: queue.Queue[Any] = queue.Queue()
        self._fatal: BackendError | None = None
        self._closed = False
        self._started = False
        self._shared_arrays: dict[str, Any] = {}
        # IO thread only, from here on
        self._slots: dict[int, _Slot] = {}
        self._sends: dict[int, asyncio.Queue[tuple[str, list[Any], bool]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tokens = itertools.count()
        self._subscribed: set[str] = set()
        self._exit_codes: dict[str, int] = {}
        self._exit_seen: dict[str, asyncio.Event] = {}
        self._refused: set[str] = set()  # workers never used again (wrong versions, missing modules)
        self._few_workers_warned = False
        self._threads_warned: set[str] = set()
        self._ended: dict[str, asyncio.Event] = {}  # token -> set when its serve task ended

    # --- the Backend protocol (coordinator thread) ------------------------------------------------

    def start(self, n_workers: int) -> None:
        if self._started:
            raise RuntimeError("a DaskBackend starts once")
        self._started = True
        try:
            self._open()
            assert self._loop is not None
            future = asyncio.run_coroutine_threadsafe(self._start(n_workers), self._loop)
            try:
                future.result(timeout=self._start_timeout_s)
            except TimeoutError:
                future.cancel()
                raise BackendError(
                    f"the Dask cluster at {self.address} did not get {n_workers} worker slot(s) started and "
                    f"checked within {self._start_timeout_s:.0f}s"
                ) from None
        except BaseException:
            self.close(kill=True)
            raise

    def send(self, worker_id: int, message: ToWorker) -> None:
        if self._fatal is not None:
            raise self._fatal
        wire = to_wire(message)
        if isinstance(message, RunTrial):  # the coordinator's objects, unpickled by the worker
            import cloudpickle

            wire[4] = cloudpickle.dumps(message.objective_kwargs)
        if self._loop is not None and not self._closed:
            self._loop.call_soon_threadsafe(self._enqueue, worker_id, wire, isinstance(message, RunTrial))

    def receive(self, timeout_s: float) -> FromBackend | None:
        try:
            item = self._received.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, BackendError):
            self._received.put(item)  # every later call says it again
            raise item
        message: FromBackend = item
        return message

    def cancel(self, worker_id: int, grace_s: float) -> None:
        if self._loop is not None and not self._closed:
            self._loop.call_soon_threadsafe(self._cancel, worker_id, grace_s)

    def share(self, kwargs: Mapping[str, Any], *, min_bytes: int | None = None) -> dict[str, Any]:
        """Large arrays become ``SharedRef``s; each is scattered to a slot's worker when the slot
        starts there and reaches its serve task as an argument: once per worker, never per
        trial. Call before ``start``."""
        if self._started:
            raise RuntimeError("DaskBackend.share must be called before start")
        threshold = MIN_SHARED_BYTES if min_bytes is None else min_bytes
        shared: dict[str, Any] = {}
        for key, value in kwargs.items():
            if _is_large_array(value, threshold):
                name = f"a{len(self._shared_arrays)}"
                self._shared_arrays[name] = value
                shared[key] = SharedRef(name)
            elif isinstance(value, Mapping):
                shared[key] = self.share(value, min_bytes=threshold)
            else:
                shared[key] = value
        return shared

    def processes(self) -> dict[str, Any]:
        return {"backend": self.name, "scheduler": self.address,
                "cluster": f"local:{self._local_workers}" if self._local_workers else self.address}

    def close(self, *, kill: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self._prewarm is not None:
            self._prewarm.join(self._connect_timeout_s + 2 * RPC_GRACE_S)
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._close(kill), loop)
            try:
                future.result(timeout=CLOSE_WAIT_S + 2 * RPC_GRACE_S)
            except Exception as exc:  # noqa: BLE001 - closing what may be gone already
                logger.debug("closing the Dask backend: %r", exc)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(RPC_GRACE_S)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=RPC_GRACE_S)
            self._cluster = None
        self._shared_arrays.clear()

    # --- outside the protocol -----------------------------------------------------------------------

    def cluster_size(self) -> int:
        """How many Dask workers the cluster has now (``local:N``: N): a default for the number
        of slots. Connects (bounded by the connect timeout); ``start`` reuses the connection."""
        if self._local_workers is not None:
            return self._local_workers
        self._open()
        assert self._loop is not None
        info = asyncio.run_coroutine_threadsafe(self._client.scheduler.identity(n_workers=-1), self._loop)
        try:
            return len(info.result(timeout=self._connect_timeout_s)["workers"])
        except Exception as exc:  # noqa: BLE001 - TimeoutError, a lost connection
            info.cancel()
            raise BackendError(f"the Dask scheduler at {self.address} did not say how many workers it has: "
                               f"{exc!r}") from exc

    # --- connecting ---------------------------------------------------------------------------------

    def prewarm(self) -> None:
        """Start the local cluster and connect now, on a thread of their own, so that overlaps
        the sweep's own set-up (the study, MLflow); ``start`` waits for it."""
        if self._prewarm is None and self._loop is None:
            self._prewarm = threading.Thread(target=self._open, kwargs={"quiet": True},
                                             name="sweeper-dask-prewarm", daemon=True)
            self._prewarm.start()

    def _open(self, quiet: bool = False) -> None:
        """The IO thread and the client (and the owned LocalCluster), once; a failure is raised
        here, or kept for the next call when ``quiet`` (``prewarm``)."""
        with self._opening:
            if self._open_error is not None:
                raise self._open_error
            if self._loop is not None:
                return
            try:
                if self._local_workers is not None and self._cluster is None:
                    self._cluster = local_cluster(self._local_workers)
                    self.address = self._cluster.scheduler_address
                assert self.address is not None
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="sweeper-dask-io", daemon=True)
                self._thread.start()
                self._loop = loop
                connected = asyncio.run_coroutine_threadsafe(self._connect(), loop)
                connected.result(timeout=self._connect_timeout_s + RPC_GRACE_S)
            except BaseException as exc:
                self._open_error = exc if isinstance(exc, Exception) else BackendError(repr(exc))
                if not quiet:
                    raise
                logger.debug("Dask backend: prewarm failed: %r", exc)

    async def _connect(self) -> None:
        address = self.address
        assert address is not None
        security = self._security if self._security is not None else distributed.Security()
        warn_if_exposed(address, security)
        try:
            self._client = await distributed.Client(
                address, asynchronous=True, security=security, timeout=self._connect_timeout_s,
                set_as_default=False, name=self._prefix,
            )
        except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, a TLS error, ...
            raise BackendError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc

    async def _start(self, n_workers: int) -> None:
        client = self._client
        try:
            await client.wait_for_workers(1, timeout=self._connect_timeout_s)
        except Exception as exc:  # noqa: BLE001 - TimeoutError
            raise BackendError(f"no Dask worker joined the scheduler at {self.address} within "
                               f"{self._connect_timeout_s:.0f}s (start one: dask worker {self.address} "
                               "--nthreads 1)") from exc
        await self._check_versions()
        try:
            await client.register_plugin(remote.ExitNotes(), name="sweeper-exit-notes")
        except Exception as exc:  # noqa: BLE001 - a nanny that cannot import sweeper, an old one
            logger.warning("the Dask nannies at %s did not take sweeper's exit-code plugin (%s): a lost worker "
                           "is reported without its exit code", self.address, exc)
        self._outbox = await distributed.Queue(remote.outbox_name(self._prefix), client=client)
        self._spawn(self._pump())
        self._spawn(self._watch_client())
        checks = []
        for slot in range(n_workers):
            state = self._slots[slot] = _Slot(slot)
            self._sends[slot] = asyncio.Queue()
            self._spawn(self._sender(slot))
            if await self._place(state, wait=False):
                assert state.checked is not None
                checks.append(state.checked)
            else:
                self._spawn(self._place(state))
        if len(checks) < n_workers and not self._few_workers_warned:
            self._few_workers_warned = True
            logger.warning("%d worker slot(s) but %d free Dask worker(s) at %s: the others start as workers join",
                           n_workers, len(checks), self.address)
        reports = await asyncio.gather(*checks)
        problems = [report for report in reports if report.get("versions") or report.get("imports")]
        if problems:
            raise SweeperError(refusal(problems, self._expected()))

    async def _check_versions(self) -> None:
        """The client, the scheduler and every worker run the same Python (X.Y), dask,
        distributed and sweeper: anything else is one error naming each difference."""
        found = await self._client.get_versions(packages=["sweeper"])
        mine = self._expected()
        differences = []
        places = [("the scheduler", found["scheduler"])] + [
            (f"worker {address}", info) for address, info in sorted(found["workers"].items())]
        for where, info in places:
            theirs = versions_of(info)
            for name, version in mine.items():
                if theirs.get(name) != version:
                    differences.append(f"{name} {version} here, {theirs.get(name) or 'not installed'} on {where}")
        if differences:
            raise SweeperError(
                f"the Dask cluster at {self.address} runs other versions than this machine (every host needs "
                f"the same Python, dask, distributed and sweeper): " + "; ".join(differences))

    @staticmethod
    def _expected() -> dict[str, str]:
        return remote.versions()

    # --- slots ------------------------------------------------------------------------------------------

    async def _place(self, state: _Slot, *, wait: bool = True) -> bool:
        """Start a new incarnation of ``state`` on a free worker (``wait``: until there is one)."""
        if state.placing:
            return False
        state.placing = True
        waited_since, warned = time.monotonic(), False
        try:
            while True:
                if self._closed or self._fatal is not None:
                    return False
                found = await self._free_worker()
                if found is not None:
                    break
                if not wait:
                    return False
                waited = time.monotonic() - waited_since
                if waited > PLACE_WARN_S and not warned:
                    warned = True
                    logger.warning("worker slot %d has waited %.0fs for a free Dask worker at %s (each slot needs a "
                                   "worker process of its own: start more, or give fewer n_jobs)",
                                   state.slot, waited, self.address)
                if waited > PLACE_GIVE_UP_S:  # never a sweep that waits forever for a cluster that shrank
                    self._received.put(WorkerLost(state.slot, f"no Dask worker was free at {self.address} for "
                                                              f"{PLACE_GIVE_UP_S:.0f}s", replaced=False))
                    return False
                await asyncio.sleep(PLACE_POLL_S)
            address, host_workers = found
            await self._submit(state, address, host_workers)
            return True
        finally:
            state.placing = False

    async def _free_worker(self) -> tuple[str, int] | None:
        """A running worker with a nanny that hosts no slot, and how many workers its host has."""
        info = await self._rpc(self._client.scheduler.identity(n_workers=-1))
        workers: dict[str, Any] = info["workers"]
        used = {s.address for s in self._slots.values() if s.token is not None}
        per_host: dict[str, int] = {}
        for details in workers.values():
            per_host[details["host"]] = per_host.get(details["host"], 0) + 1
        for address, details in sorted(workers.items()):
            if address in used or address in self._refused or details.get("status") != "running":
                continue
            if not details.get("nanny"):
                self._refused.add(address)
                logger.warning("Dask worker %s has no nanny: sweeper does not use it (a hung trial could "
                               "not be stopped there); start workers with a nanny (the default)", address)
                continue
            if int(details.get("nthreads") or 1) > 1 and address not in self._threads_warned:
                self._threads_warned.add(address)
                logger.warning("Dask worker %s has %s threads: sweeper runs one trial per worker process (ending a "
                               "hung trial ends its process); start workers with --nthreads 1 (and --nworkers N)",
                               address, details.get("nthreads"))
            return address, per_host[details["host"]]
        return None

    async def _submit(self, state: _Slot, address: str, host_workers: int) -> None:
        client = self._client
        token = f"{state.slot}-{next(self._tokens)}"
        inbox = await distributed.Queue(remote.inbox_name(self._prefix, token), client=client)
        await self._rpc(inbox.put([CLAIM, token]))  # before the task exists: a re-run finds none
        names = list(self._shared_arrays)
        scattered = await client.scatter([self._shared_arrays[n] for n in names], workers=[address],
                                         hash=False) if names else []
        options = SlotOptions(self._prefix, self._expected(), self._modules, host_workers,
                              self._max_trials, self._max_rss_mb)
        self._exit_codes.pop(address, None)  # an address may come back (a worker with a fixed port)
        self._exit_seen.pop(address, None)
        state.checked = asyncio.get_running_loop().create_future()
        state.token, state.address, state.inbox, state.shared = token, address, inbox, scattered
        state.key = f"{self._prefix}-serve-{token}"
        state.pid, state.ready, state.busy, state.leaving, state.cancelled, state.losing = (
            None, False, False, False, False, False)
        self._subscribe(address)
        state.future = client.submit(
            remote.serve_slot, state.slot, token, options, self._objectives, dict(zip(names, scattered)),
            key=state.key, workers=[address], allow_other_workers=False, pure=False, retries=0,
        )
        loop = asyncio.get_running_loop()
        state.future.add_done_callback(
            lambda future, token=token: loop.call_soon_threadsafe(self._task_done, token, future.status))

    def _subscribe(self, address: str) -> None:
        """Removal events (and the nanny's exit note) of one worker: never the "all" topic."""
        if address not in self._subscribed:
            self._subscribed.add(address)
            self._client.subscribe_topic(address, lambda event, address=address: self._worker_event(address, event))

    def _unsubscribe_unused(self) -> None:
        used = {s.address for s in self._slots.values() if s.token is not None}
        for address in self._subscribed - used:
            self._subscribed.discard(address)
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(address)

    def _worker_event(self, address: str, event: Any) -> None:
        _, message = event
        if not isinstance(message, dict):
            return
        action = message.get("action")
        if action == EXIT_NOTE:
            self._exit_codes[address] = int(message.get("exitcode", 0))
            self._exit_seen.setdefault(address, asyncio.Event()).set()
        if action not in (EXIT_NOTE, "remove-worker"):
            return
        for state in self._slots.values():
            if state.address != address or state.token is None or state.losing:
                continue
            if action == "remove-worker" and state.key not in (message.get("processing-tasks") or ()):
                continue  # not this incarnation's worker (an address used again)
            self._lose(state, None)

    def _task_done(self, token: str, status: str) -> None:
        self._ended.setdefault(token, asyncio.Event()).set()
        state = self._current(token)
        if state is not None and not state.losing and status != "finished" and not self._closed:
            self._lose(state, f"the serve task on Dask worker {state.address} ended ({status})")

    def _current(self, token: str) -> _Slot | None:
        slot = _slot_of(token)
        state = self._slots.get(slot) if slot is not None else None
        return state if state is not None and state.token == token else None

    def _lose(self, state: _Slot, reason: str | None) -> None:
        """Decide ``state``'s incarnation is gone: find why, then mark it on the outbox, after
        whatever its worker put there first."""
        state.losing = True
        token, address = state.token, state.address
        assert token is not None and address is not None

        async def mark() -> None:
            why = reason
            if why is None:
                why = "cancelled" if state.cancelled else await self._death_of(address)
            if state.checked is not None and not state.checked.done():
                state.checked.set_result({"lost": why, "address": address})
            if self._outbox is not None:
                await self._rpc(self._outbox.put([token, [NOTICE, "lost", why]]))

        self._spawn(mark())

    async def _death_of(self, address: str) -> str:
        seen = self._exit_seen.setdefault(address, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), EXIT_NOTE_WAIT_S)
        code = self._exit_codes.get(address)
        if code is not None:
            return f"{describe_exit(code)} (Dask worker {address})"
        return (f"Dask worker {address} left the cluster (its process or host died, or the network to it "
                "failed)")

    # --- the pump: the only reader of the outbox ----------------------------------------------------------

    async def _pump(self) -> None:
        """Blocking reads (a read that times out is logged as an error by the scheduler, every
        time): ``_watch_client`` notices a lost scheduler, ``_close`` wakes the last read."""
        outbox = self._outbox
        while not self._closed:
            try:
                item = await self._rpc(outbox.get(), None)
            except BackendError:
                return
            self._take(item)

    async def _watch_client(self) -> None:
        while not self._closed and self._fatal is None:
            status = getattr(self._client, "status", "running")
            if status not in ("running", "newly-created"):
                self._lost_scheduler(f"lost the Dask scheduler at {self.address} (client {status})")
                return
            await asyncio.sleep(WATCH_S)

    def _take(self, item: Any) -> None:
        item = remote.plain(item)
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], list)):
            logger.warning("Dask backend: dropped a malformed message %.80r", item)
            return
        token, wire = item
        state = self._current(token)
        if state is None:
            return  # from an incarnation already reported lost (or another sweep's stray)
        if wire and wire[0] == NOTICE:
            self._notice(state, wire[1:])
            return
        try:
            message = from_wire(wire)
        except (ValueError, TypeError) as exc:
            logger.warning("Dask backend: dropped an undecodable message from slot %d: %s", state.slot, exc)
            return
        if getattr(message, "worker_id", None) != state.slot:
            return
        if isinstance(message, WorkerReady):
            state.ready, state.pid, state.unready_deaths = True, message.pid, 0
        elif isinstance(message, TrialFinished):
            state.busy = False
            state.leaving = state.leaving or message.worker_exits
        self._received.put(message)

    def _notice(self, state: _Slot, notice: list[Any]) -> None:
        kind, detail = (notice + [None, None])[:2]
        if kind == "checked" and isinstance(detail, dict):
            if state.checked is not None and not state.checked.done():
                state.checked.set_result(detail)
            if (detail.get("versions") or detail.get("imports")) and state.address is not None:
                self._refused.add(state.address)
                self._lose(state, refusal([detail], self._expected()))
        elif kind == "rerun" and not state.losing:
            self._lose(state, f"Dask ran the serve task again after its worker {state.address} died: reported as "
                              "a crash, never run twice")
        elif kind == "ended" and not state.losing and not self._closed:
            why = "worker left after its trial (recycled)" if state.leaving else (
                f"the serve task on Dask worker {state.address} ended: {str(detail)[:2000]}")
            if state.leaving:  # a fresh process, so the memory it grew is given back
                self._end_worker(state, 0.0)
            self._lose(state, why)
        elif kind == "lost":
            self._report_lost(state, str(detail))

    def _report_lost(self, state: _Slot, reason: str) -> None:
        if not state.ready and not state.cancelled:
            state.unready_deaths += 1
        elif state.cancelled:
            pass
        else:
            state.unready_deaths = 1  # died while serving: counts once, as a local worker
        replaced = state.unready_deaths < RESTART_BUDGET and not self._closed
        self._retire(state)
        self._received.put(WorkerLost(state.slot, reason, replaced))
        if replaced:
            self._spawn(self._place(state))

    def _retire(self, state: _Slot) -> None:
        """Let go of an incarnation: its task, inbox and data on the cluster."""
        future, inbox, shared = state.future, state.inbox, state.shared
        state.token = state.key = state.inbox = state.future = None
        state.shared = []
        state.address = None
        for item in [future, *shared]:
            if item is not None:
                with contextlib.suppress(Exception):
                    item.release()
        if inbox is not None:
            with contextlib.suppress(Exception):
                inbox.close()
        self._unsubscribe_unused()

    # --- sending and cancelling -----------------------------------------------------------------------------

    def _enqueue(self, slot: int, wire: list[Any], is_trial: bool) -> None:
        state = self._slots.get(slot)
        if state is None or state.token is None:
            return  # gone; its loss is (or was) reported by receive
        self._sends[slot].put_nowait((state.token, wire, is_trial))

    async def _sender(self, slot: int) -> None:
        """Puts one slot's messages in order (concurrent puts could overtake each other)."""
        pending = self._sends[slot]
        while True:
            token, wire, is_trial = await pending.get()
            state = self._slots[slot]
            if state.token != token or state.inbox is None:
                continue
            if is_trial:
                state.busy = True
            try:
                await self._rpc(state.inbox.put(wire))
            except BackendError:
                return

    def _cancel(self, slot: int, grace_s: float) -> None:
        state = self._slots.get(slot)
        if state is None or state.token is None or state.losing:
            return
        state.cancelled = True
        self._end_worker(state, grace_s)
        token = state.token

        async def fallback() -> None:  # the worker did not go: never use it again
            await asyncio.sleep(grace_s + CANCEL_FALLBACK_S)
            current = self._current(token)
            if current is not None and not current.losing:
                if current.address is not None:
                    self._refused.add(current.address)
                self._lose(current, f"cancelled (Dask worker {current.address} did not go away: not used again)")

        self._spawn(fallback())

    def _end_worker(self, state: _Slot, grace_s: float) -> None:
        """Ask the nanny of ``state``'s worker to end that process; it starts a fresh one."""
        if state.address is None:
            return
        run = self._client.run(remote.end_worker, state.pid, grace_s, workers=[state.address], nanny=True,
                               wait=False, on_error="ignore")
        self._spawn(self._quiet(run))

    # --- plumbing -------------------------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_finished)

    def _task_finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, BackendError) and not self._closed:
            logger.warning("Dask backend: %r", exc)

    async def _quiet(self, awaitable: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(awaitable, RPC_GRACE_S)

    async def _rpc(self, awaitable: Any, timeout_s: float | None = RPC_GRACE_S) -> Any:
        """One call to the scheduler; losing it is the transport lost: ``BackendError``, once,
        after every message already received."""
        try:
            return await asyncio.wait_for(awaitable, timeout_s)
        except TimeoutError:
            self._lost_scheduler(f"the Dask scheduler at {self.address} did not answer within {timeout_s:.0f}s")
            raise self._fatal or BackendError("lost") from None
        except (OSError, CommClosedError, asyncio.CancelledError, RuntimeError) as exc:
            if self._closed:
                raise BackendError("closed") from exc
            why = "the connection closed" if isinstance(exc, (OSError, CommClosedError)) else repr(exc)
            self._lost_scheduler(f"lost the Dask scheduler at {self.address} ({why})")
            raise self._fatal or BackendError("lost") from exc

    def _lost_scheduler(self, text: str) -> None:
        if self._fatal is None:
            self._fatal = BackendError(
                f"{text}. Finished trials are saved; run the sweep again to resume (with a scheduler that is up)")
            self._received.put(self._fatal)

    async def _close(self, kill: bool) -> None:
        client = self._client
        if client is None:
            return
        if self._fatal is None:
            waiting = []
            for state in self._slots.values():
                if state.token is None or state.inbox is None:
                    continue
                if kill and state.busy:
                    self._end_worker(state, 0.0)  # its trial stops now
                else:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(state.inbox.put(to_wire(_shutdown())), RPC_GRACE_S)
                waiting.append(self._ended.setdefault(state.token, asyncio.Event()).wait())
            if waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*waiting), CLOSE_WAIT_S)
        for state in self._slots.values():
            self._retire(state)
        for task in list(self._tasks):
            task.cancel()
        if self._outbox is not None and self._fatal is None:
            with contextlib.suppress(Exception):  # wakes the pump's last read, so none is left waiting
                await asyncio.wait_for(self._outbox.put(["", [NOTICE, "closed", None]]), RPC_GRACE_S)
            await asyncio.sleep(0.05)
            with contextlib.suppress(Exception):
                self._outbox.close()
        # A client that lost its scheduler would try to reconnect for the connect timeout first;
        # cancelling that is reported by distributed as an error with a traceback: not here.
        patience = 1.0 if self._fatal is not None else RPC_GRACE_S
        quiet = _DropCancelled()
        loggers = [logging.getLogger(name) for name in ("distributed.client", "distributed.utils")]
        for noisy in loggers:
            noisy.addFilter(quiet)
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(timeout=patience), patience + 1)
            leftover = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in leftover:  # what the client left running on this loop
                task.cancel()
            if leftover:
                await asyncio.wait(leftover, timeout=1.0)
        finally:
            for noisy in loggers:
                noisy.removeFilter(quiet)


class _DropCancelled(logging.Filter):
    """Drops distributed's report of a task of its own that sweeper cancelled while closing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _shutdown() -> Any:
    from ..messages import Shutdown

    return Shutdown()


def _slot_of(token: str) -> int | None:
    head, _, _ = token.partition("-")
    return int(head) if head.isdigit() else None
