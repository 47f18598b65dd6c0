"""MLflow records of a sweep: one parent run, one nested child run per trial.

    coordinator --events (queue.Queue)--> writer thread --+--> SqliteStore (sqlite3, no mlflow)
                                                          +--> ClientStore (MlflowClient, any store)

One writer writes MLflow: this thread, either in the coordinator (when the coordinator uses
mlflow itself afterwards, for the end-of-sweep report) or inside the writer process of
``_tracker_process``, so a slow store never stalls scheduling. A SQLite store the direct writer
knows (``_mlflow_sqlite``) is written without importing mlflow at all (~1.5 s of CPU saved on a
2-core machine whose workers are busy); any other store, and anything the direct writer refuses,
goes through MLflow's client (``_mlflow_client``). Trials' runs are written in one transaction
per batch of queued starts and ends (~0.2-1 ms a run instead of MLflow's ~10 ms), elsewhere
with one ``log_batch``; the parent's progress is coalesced to its latest value.
A write that still fails after retries is spooled to a JSON-lines file and reported, never
silently dropped.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .bulk import ChildRun, Conflict, Metric, Param, RunTag
from .client_store import ClientStore
from .records import ChildRecord, run_name as _run_name, spool_entry
from .sqlite_store import MLFLOW_PARENT_RUN_ID, SqliteStore, Unsupported
from .uri import artifact_location as _artifact_location
from .._redact import redact_uri
from ..errors import TrackingError

RETRIES = 3
#: At most this many queued trial starts and ends go into one bulk transaction.
BULK_EVENTS = 200
#: After a quiet spell the bulk writer waits this long for more events before it writes: a
#: trial shorter than that is created once, finished, and a burst is one transaction.
BULK_GATHER_S = 0.05
_log = logging.getLogger("sweeper")
#: The parent's best-so-far and counts are rewritten at most this often (and at the end).
PROGRESS_INTERVAL_S = 1.0


class Tracker:
    """Writes a sweep to MLflow from a background thread. ``close`` flushes everything."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        *,
        parent_run_id: str | None = None,
        spool_path: str | None = None,
        reconcile: Mapping[int, ChildRecord] | None = None,
        start_ms: int | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.experiment_id: str | None = None
        self.run_ids: dict[int, str] = {}
        self.failures: list[str] = []
        self._spool_path = spool_path
        self._reconcile = dict(reconcile or {})  # resume: finished trials, by number
        self._deferred: list[ChildRecord] = []  # failed during an outage; retried at close
        self._start_ms = start_ms or _now_ms()  # the sweep's start, not the writer's
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._backlog: collections.deque[tuple[str, Any]] = collections.deque()  # taken, not yet written
        self._pending_ends: dict[int, ChildRecord] = {}  # child_end events in the backlog, by trial
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._parent_progress: tuple[dict[str, float], dict[str, str], int] | None = None
        # rewritten at close, when every child run id is known
        self._latest_progress: tuple[dict[str, float], dict[str, str], int] | None = None
        self._progress_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._store: SqliteStore | ClientStore | None = None  # the direct SQLite writer, else MLflow's client
        self._resuming = parent_run_id is not None
        self._texts_written: set[str] = set()
        self._bulk: Any = None  # set once the store is open, if it is a SQL store (``write``)
        self._bulk_created: set[int] = set()  # trials whose RUNNING run the bulk writer made
        self._bulk_finishes = True  # off once a run was logged to by someone else (a worker)
        #: Called on the writer thread with (trial number, run id) as each child run gets its id.
        self.on_run_id: Callable[[int, str], None] | None = None

    # --- coordinator side (cheap, never blocks on the store) -----------------------------------

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], texts: Mapping[str, str]) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(dict(params), dict(tags), dict(texts)),
            name="sweeper-mlflow-writer", daemon=True,
        )
        self._thread.start()

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Block until the parent run exists; raise ``TrackingError`` if it could not be made."""
        if not self._ready.wait(timeout_s):
            raise TrackingError(f"MLflow store {redact_uri(self.uri)} did not answer in {timeout_s:.0f}s")
        if self._start_error is not None:
            raise TrackingError(
                f"could not open MLflow store {redact_uri(self.uri)}: "
                f"{redact_uri(str(self._start_error)).splitlines()[0][:300]}"
            )
        assert self.parent_run_id is not None
        return self.parent_run_id

    @property
    def ready(self) -> bool:
        """The parent run exists."""
        return self._ready.is_set() and self._start_error is None

    @property
    def failed(self) -> bool:
        """The store could not be opened (so child runs will never get ids)."""
        return self._ready.is_set() and self._start_error is not None

    def raise_if_failed(self) -> None:
        """Non-blocking: raise ``TrackingError`` if the store could not be opened."""
        if self._ready.is_set() and self._start_error is not None:
            self.wait_ready(0)

    @property
    def start_error(self) -> str | None:
        if self._start_error is None:
            return None
        return redact_uri(str(self._start_error)).splitlines()[0][:300]

    def child_started(self, number: int, start_ms: int, tags: Mapping[str, str]) -> None:
        self._events.put(("child_start", (number, start_ms, dict(tags))))

    def child_finished(self, record: ChildRecord) -> None:
        self._events.put(("child_end", record))

    def parent_progress(self, metrics: Mapping[str, float], tags: Mapping[str, str], step: int) -> None:
        """Only the latest progress matters: a backlog writes it once, not once per trial."""
        with self._progress_lock:
            self._parent_progress = self._latest_progress = (dict(metrics), dict(tags), step)
        self._events.put(("parent_progress", None))

    def close(
        self,
        status: str,
        tags: Mapping[str, str] | None = None,
        child_tags: Mapping[int, Mapping[str, str]] | None = None,
        timeout_s: float = 600.0,
        *,
        end_parent: bool = True,
    ) -> None:
        """Flush every pending write, tag finished children (e.g. the Pareto front), end the
        parent run with ``status`` and stop the thread. ``end_parent=False`` (the coordinator
        vanished) flushes the children and leaves the parent RUNNING for a resume."""
        if self._thread is None:
            return
        self._events.put(("close", (status, dict(tags or {}), dict(child_tags or {}), end_parent)))
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self.failures.append(f"MLflow writer still busy after {timeout_s:.0f}s; some runs may be missing")
        self._thread = None

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self, params: dict[str, Any], tags: dict[str, str], texts: dict[str, str]) -> None:
        try:
            self._open(params, tags, texts)
        except BaseException as exc:  # noqa: BLE001 - reported through wait_ready
            self._start_error = exc
            self.failures.append(f"could not open the store: {redact_uri(str(exc)).splitlines()[0][:200]}")
            self._ready.set()
            self._drain_to_spool()
            return
        self._ready.set()
        last_progress = 0.0
        while True:
            wait_s = None  # a held-back progress update is due at last_progress + interval
            if self._parent_progress is not None:
                wait_s = max(0.0, last_progress + PROGRESS_INTERVAL_S - time.monotonic())
            try:
                kind, payload = self._next_event(wait_s)
            except queue.Empty:
                kind, payload = "parent_progress", None
            if kind == "close":
                self._flush_deferred()
                with self._progress_lock:
                    self._parent_progress = self._latest_progress
                self._write_progress()
                status, end_tags, child_tags, end_parent = payload
                for number, tags in child_tags.items():
                    if number in self.run_ids:
                        self._write_or_report(f"tag trial {number}", lambda: self._tag(self.run_ids[number], tags))
                if end_parent:
                    self._write_or_report("end parent run", lambda: self._end_parent(status, end_tags))
                if self._store is not None:
                    self._store.close()
                return
            if self._bulk is not None and self._bulkable(kind, payload):
                self._write_bulk([(kind, payload), *self._take_bulkable()])
                continue
            if kind == "child_start":  # a failure here heals itself: the end creates the run
                number, start_ms, child_tags = payload
                if self._fold_into_end(number, child_tags):  # already over: one create_run, at its end
                    continue
                self._retry(f"start trial {number}", lambda: self._start_child(number, start_ms, child_tags))
            elif kind == "child_end":
                self._record_child(payload)
            elif kind == "parent_progress" and time.monotonic() - last_progress >= PROGRESS_INTERVAL_S:
                self._write_progress()
                last_progress = time.monotonic()

    def _next_event(self, wait_s: float | None) -> tuple[str, Any]:
        """The oldest event, after taking in all that are waiting: a trial whose end is already
        queued when its start comes up is written once, not created and then updated (MLflow's
        tag writes are its slowest part, ~2 ms a run on SQLite)."""
        if not self._backlog:
            self._take(self._events.get(timeout=wait_s))
            if self._bulk is not None and self._backlog[-1][0] in ("child_start", "child_end"):
                time.sleep(BULK_GATHER_S)
        while True:
            try:
                self._take(self._events.get_nowait())
            except queue.Empty:
                break
        kind, payload = self._backlog.popleft()
        self._untake(kind, payload)
        return kind, payload

    def _bulkable(self, kind: str, payload: Any) -> bool:
        if kind == "child_start":
            return payload[0] not in self.run_ids
        if kind == "child_end":
            return not payload.texts and not payload.files and (payload.number not in self.run_ids or (
                payload.number in self._bulk_created and self._bulk_finishes))
        return False

    def _take_bulkable(self) -> list[tuple[str, Any]]:
        """The trial starts and ends at the head of the backlog that can join one transaction."""
        taken: list[tuple[str, Any]] = []
        while self._backlog and len(taken) < BULK_EVENTS and self._bulkable(*self._backlog[0]):
            kind, payload = self._backlog.popleft()
            self._untake(kind, payload)
            taken.append((kind, payload))
        return taken

    def _write_bulk(self, events: list[tuple[str, Any]]) -> None:
        """Write trial starts and ends in one transaction (see ``_mlflow_bulk``). A start whose
        end is queued too is folded into it: one run, created finished. If the transaction fails,
        nothing of it was written: the same events go the public way, and so does the rest of
        the sweep."""
        assert self._bulk is not None
        ends = {p.number: p for k, p in events if k == "child_end"}
        created: dict[int, ChildRun] = {}
        finished: list[ChildRun] = []
        for kind, payload in events:
            if kind == "child_start":
                number, start_ms, tags = payload
                if self._fold_into_end(number, tags, ends):
                    continue
                created[number] = ChildRun(
                    uuid.uuid4().hex, _run_name(number), "RUNNING", start_ms, None,
                    tags=_tag_entities({MLFLOW_PARENT_RUN_ID: self.parent_run_id, **tags}))
                continue
            params, tags, metrics = _entities(payload)
            if payload.number in self._bulk_created:
                finished.append(ChildRun(self.run_ids[payload.number], _run_name(payload.number),
                                         payload.status, payload.start_ms, payload.end_ms, params, tags, metrics))
            else:
                created[payload.number] = ChildRun(
                    uuid.uuid4().hex, _run_name(payload.number), payload.status, payload.start_ms,
                    payload.end_ms, params, [*_tag_entities({MLFLOW_PARENT_RUN_ID: self.parent_run_id}), *tags],
                    metrics)
        try:
            self._bulk.write(list(created.values()), finished)
        except Exception as exc:  # noqa: BLE001 - rolled back: write them the public way
            _log.debug("bulk write of %d MLflow events failed (%s: %s); writing them one by one",
                       len(events), type(exc).__name__, redact_uri(str(exc)).splitlines()[0][:200])
            if isinstance(exc, Conflict):  # objectives log to their runs: finish runs publicly
                self._bulk_finishes = False
            elif isinstance(exc, Unsupported):  # MLflow's client (and bulk writer) from now on
                self._use_mlflow(exc)
            else:
                self._bulk = None
            for kind, payload in events:
                if kind == "child_end":
                    self._record_child(payload)
                elif payload[0] not in ends and payload[0] not in self._pending_ends:
                    number, start_ms, tags = payload
                    self._retry(f"start trial {number}", lambda: self._start_child(number, start_ms, tags))
            return
        for number, run in created.items():
            if run.end_ms is None:
                self._bulk_created.add(number)
            self._remember_run(number, run.run_id)

    def _fold_into_end(
        self, number: int, tags: dict[str, str], ends: Mapping[int, ChildRecord] | None = None
    ) -> bool:
        """A trial whose end is queued too (in ``ends`` or the backlog) gets its start's tags
        there, and its run is created once, finished; True if so."""
        end = (ends or {}).get(number) or self._pending_ends.get(number)
        if end is not None:
            end.tags = {**tags, **end.tags}
        return end is not None

    def _take(self, event: tuple[str, Any]) -> None:
        self._backlog.append(event)
        if event[0] == "child_end":
            self._pending_ends[event[1].number] = event[1]

    def _untake(self, kind: str, payload: Any) -> None:
        """``payload`` left the backlog: it is no longer a queued end to fold a start into."""
        if kind == "child_end":
            number = payload.number
            if self._pending_ends.get(number) is payload:
                del self._pending_ends[number]

    def _open(self, params: dict[str, Any], tags: dict[str, str], texts: dict[str, str]) -> None:
        """Open the store -- directly when it is a SQLite store the direct writer knows (no mlflow
        import), else through MLflow -- and make or resume the parent run."""
        self._store = SqliteStore.open(self.uri) or ClientStore.open(self.uri)
        try:
            self._open_sweep(params, tags, texts)
        except Unsupported as exc:  # nothing of the refused step was written: MLflow does it
            self._use_mlflow(exc)
            self._open_sweep(params, tags, texts)
        self._bulk = self._store.bulk_writer()

    def _open_sweep(self, params: dict[str, Any], tags: dict[str, str], texts: dict[str, str]) -> None:
        assert self._store is not None
        store = self._store
        # "custom_model_development" makes MLflow 3's UI open the runs table, not its GenAI view
        self.experiment_id = store.open_experiment(
            self.experiment, _artifact_location(self.uri, self.experiment),
            {"mlflow.experimentKind": "custom_model_development"})
        if self._resuming:  # the same parent goes on
            assert self.parent_run_id is not None
            store.set_status(self.parent_run_id, "RUNNING")
        elif self.parent_run_id is None:
            self.parent_run_id = store.create_run(
                self._start_ms, self.run_name, tags, {k: _param_text(v) for k, v in params.items()})
        for name, text in texts.items():
            if name not in self._texts_written:
                store.log_text(self.parent_run_id, text, name)
                self._texts_written.add(name)
        if self._reconcile:
            self._reconcile_children()

    def _use_mlflow(self, why: Exception) -> None:
        """Hand the store to MLflow's client after the direct writer refused something (it
        wrote nothing of it); the experiment and the runs written so far stay as they are."""
        if isinstance(self._store, ClientStore):
            raise why
        _log.debug("MLflow writes go through MLflow's client from here on (%s)", why)
        if self._store is not None:
            self._store.close()
        self._store = ClientStore.open(self.uri)
        if self.experiment_id is not None:
            self._store.open_experiment(self.experiment, _artifact_location(self.uri, self.experiment), {})
        self._bulk = self._store.bulk_writer()

    def _reconcile_children(self) -> None:
        """On resume, make MLflow agree with the study, which is the record of truth: a child
        left RUNNING by a dead coordinator gets its trial's outcome (KILLED if the trial was
        interrupted), and a finished trial whose run was never written gets one now."""
        assert self._store is not None and self.parent_run_id is not None
        seen: set[int] = set()
        for run_id, status, number_tag in self._store.children(self.parent_run_id):
            if number_tag is None or not number_tag.isdigit():
                continue
            number = int(number_tag)
            seen.add(number)
            if number not in self.run_ids:
                self._remember_run(number, run_id)
            if status != "RUNNING":
                continue
            record = self._reconcile.get(number)
            if record is None:  # a trial the study never finished: it was interrupted
                self._store.log_batch(run_id, tags=[RunTag("sweeper.fail_reason", "interrupted")])
                self._store.set_status(run_id, "KILLED", _now_ms())
            else:
                self._remember_run(number, run_id)
                self._end_child(record)
        for number, record in self._reconcile.items():
            if number not in seen:
                self._start_child(number, record.start_ms, {})
                self._end_child(record)

    def _start_child(self, number: int, start_ms: int, tags: dict[str, str]) -> None:
        assert self._store is not None and self.parent_run_id is not None
        run_id = self._store.create_run(start_ms, _run_name(number), {MLFLOW_PARENT_RUN_ID: self.parent_run_id, **tags})
        self._remember_run(number, run_id)

    def _remember_run(self, number: int, run_id: str) -> None:
        self.run_ids[number] = run_id
        if self.on_run_id is not None:
            self.on_run_id(number, run_id)

    def _end_child(self, record: ChildRecord) -> None:
        tags_written = False
        if record.number not in self.run_ids:  # created at its end (short trial, or an outage)
            tags_written = len(record.tags) <= 100
            self._start_child(record.number, record.start_ms,
                              {k: _tag_text(v) for k, v in record.tags.items()} if tags_written else {})
        assert self._store is not None
        run_id = self.run_ids[record.number]
        params, tags, metrics = _entities(record)
        if params or metrics or (tags and not tags_written):
            self._store.log_batch(run_id, metrics=metrics, params=params, tags=[] if tags_written else tags)
        for name, text in record.texts.items():
            self._store.log_text(run_id, text, name)
        for name, data, artifact_dir in record.files:
            self._store.log_bytes(run_id, name, data, artifact_dir)
        self._store.set_status(run_id, record.status, record.end_ms)

    def _write_progress(self) -> None:
        with self._progress_lock:
            progress, self._parent_progress = self._parent_progress, None
        if progress is None or self.parent_run_id is None or self._store is None:
            return
        metrics, tags, step = progress
        now = _now_ms()
        if "sweeper.best_trial" in tags:
            best = self.run_ids.get(int(tags["sweeper.best_trial"]))
            if best is not None:
                tags = {**tags, "sweeper.best_run_id": best}
        self._retry(  # a failure is healed by the next update, or the one at close
            "update parent run",
            lambda: self._store.log_batch(  # type: ignore[union-attr]
                self.parent_run_id,
                metrics=[Metric(k, v, now, step) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            ),
        )

    def _tag(self, run_id: str, tags: Mapping[str, str]) -> None:
        assert self._store is not None
        if tags:
            self._store.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def _end_parent(self, status: str, tags: dict[str, str]) -> None:
        assert self.parent_run_id is not None and self._store is not None
        self._tag(self.parent_run_id, tags)
        self._store.set_status(self.parent_run_id, status, _now_ms())

    def _retry(self, what: str, write: Any) -> str | None:
        """Run ``write`` with a few quick retries; the last error (redacted) or None."""
        delay = 0.2
        for attempt in range(RETRIES):
            try:
                try:
                    write()
                except Unsupported as refused:  # the direct writer wrote none of it: MLflow does
                    self._use_mlflow(refused)
                    write()
                return None
            except Exception as exc:  # noqa: BLE001 - a tracking outage must not end the sweep
                if attempt == RETRIES - 1:
                    return f"{what}: {redact_uri(str(exc)).splitlines()[0][:200]}"
                time.sleep(delay)
                delay *= 4
        return None  # pragma: no cover

    def _record_child(self, record: ChildRecord) -> None:
        """Write a finished trial; during an outage keep it for one more try at the end."""
        if self._retry(f"record trial {record.number}", lambda: self._end_child(record)) is not None:
            self._deferred.append(record)

    def _flush_deferred(self) -> None:
        """Trials written during an outage get one more try at the end; once one still fails
        the store is taken to be down and the rest go straight to the spool file."""
        down = False
        for record in self._deferred:
            what = f"record trial {record.number}"
            error = "store still unreachable" if down else self._retry(what, lambda: self._end_child(record))
            if error is not None:
                down = True
                self.failures.append(f"{what}: {error}" if error == "store still unreachable" else error)
                self._spool(what, record)
        self._deferred.clear()

    def _write_or_report(self, what: str, write: Any, record: ChildRecord | None = None) -> None:
        error = self._retry(what, write)
        if error is not None:
            self.failures.append(error)
            self._spool(what, record)

    def _spool(self, what: str, record: ChildRecord | None) -> None:
        spool(self._spool_path, what, record)

    def _drain_to_spool(self) -> None:
        """After a failed start, keep consuming events so the coordinator never blocks."""

        def drain() -> None:
            while True:
                kind, payload = self._events.get()
                if kind == "child_end":
                    self._spool(f"record trial {payload.number}", payload)
                if kind == "close":
                    return

        drain()


def spool(path: str | None, what: str, record: ChildRecord | None) -> None:
    """Append a write that could not be made to the JSON-lines spool file (never lost)."""
    if path is None:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(spool_entry(what, record)) + "\n")

def _tag_entities(tags: Mapping[str, Any]) -> list[RunTag]:
    return [RunTag(k, _tag_text(v)) for k, v in tags.items()]


def _tag_text(value: Any) -> str:
    return str(value)[:5000]


def _entities(record: ChildRecord) -> tuple[list[Param], list[RunTag], list[Metric]]:
    """A finished trial's params, tags and metrics as the writers' entities."""
    return ([Param(k, _param_text(v)) for k, v in record.params.items()], _tag_entities(record.tags),
            [Metric(k, v, ts, step) for k, v, step, ts in record.metrics])


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def _now_ms() -> int:
    return int(time.time() * 1000)
