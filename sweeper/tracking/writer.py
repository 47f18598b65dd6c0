"""The MLflow writer: what the writer process does with the frames it gets, on one thread.

    Open  --> open the store (direct sqlite or MLflow's client), the experiment, a probe run;
              find the parent by its sweep key or make it; make MLflow agree with the study
              (missing child runs, runs left RUNNING, duplicates, the spool)      --> Opened
    TrialStart / TrialEnd / ParentUpdate --> gathered for GATHER_S, then one batch --> Written
    Close --> everything pending, retries, the parent's totals, tags and status    --> Closed

Runs are found before they are made: the parent by its ``sweeper.sweep_key`` tag (written to
the study before the run exists), a child by its trial number under the parent, so a process
killed at any moment leaves, after the next run, one parent and one child per trial. A run's
final status is the last thing written to it. On the direct path a batch is one transaction;
any ``sqlite3.Error`` or ``Unsupported`` hands the store to MLflow's client for the rest of the
sweep, which first looks again at what exists, so nothing is lost or written twice. What still
fails after retries is retried at close, then spooled and reported.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._procs import flock_within
from .._redact import redact_uri
from . import spool
from .client_store import ClientStore
from .frames import Close, Closed, Open, Opened, ParentUpdate, TrialEnd, TrialStart, Written
from .records import MLFLOW_PARENT_RUN_ID, SWEEP_KEY_TAG, TRIAL_NUMBER_TAG, ChildRecord, now_ms, run_name
from .sqlite_store import SqliteStore, Unsupported
from .store import PartialWrite, RunRef, RunWrite, Store, StoreProblem, open_store
from .uri import artifact_location

#: A batch of trial events is written this long after its first event arrived: a trial shorter
#: than that is one run created finished, and a burst is one transaction.
GATHER_S = 0.05
#: ... or as soon as this many are waiting.
MAX_BATCH = 200
#: The parent's best-so-far and counts are rewritten at most this often (and at the end).
PROGRESS_INTERVAL_S = 1.0
#: Pauses between the attempts at one write (then it waits for close, then the spool).
RETRY_DELAYS_S = (0.2, 0.8)
#: How long a writer waits for the writer of a killed coordinator of the same sweep to finish.
WRITER_LOCK_WAIT_S = 120.0
_log = logging.getLogger("sweeper")


@dataclass
class _Item:
    """One trial's pending write: its start (tags) and/or its end (record)."""

    number: int
    start_ms: int = 0
    start_tags: dict[str, str] = field(default_factory=dict)
    record: ChildRecord | None = None
    data: bool = True  # False: only the record's tags and status (the run holds its data already)


def describe(exc: BaseException) -> str:
    """An error for people, on one line: whole (MLflow's remedy included), credentials masked."""
    text = " ".join(line.strip() for line in redact_uri(str(exc)).splitlines() if line.strip())
    if not text:
        return type(exc).__name__
    return text if text.startswith(type(exc).__name__) or isinstance(exc, StoreProblem) else \
        f"{type(exc).__name__}: {text}"


class Writer:
    """One sweep's writes, driven by ``open``, ``take``, ``tick`` and ``close`` on one thread."""

    def __init__(self, spec: Open, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.spec = spec
        self.store: Store | None = None
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.runs: dict[int, str] = {}  # trial number -> its child run
        self.statuses: dict[int, str] = {}
        self.assigned: dict[int, str] = {}  # child runs this session made or chose
        self.failures: list[str] = []
        self._clock, self._sleep = clock, sleep
        self._pending: dict[int, _Item] = {}
        self._pending_since: float | None = None
        self._progress: ParentUpdate | None = None
        self._latest_progress: ParentUpdate | None = None
        self._progress_at = float("-inf")
        self._progress_written: tuple[Any, ...] | None = None
        self._deferred: dict[int, tuple[_Item, str]] = {}  # failed after retries: (item, last error)
        self._new_ids: dict[int, str] = {}
        self._done: list[int] = []
        self._lock_fd: int | None = None

    # --- open -------------------------------------------------------------------------------------

    def open(self) -> Opened:
        try:
            repaired = self._open()
        except Exception as exc:  # noqa: BLE001 - reported as one error, whole
            self._release()
            return Opened(None, None, error=describe(exc))
        assert self.store is not None
        return Opened(self.parent_run_id, self.experiment_id, None, dict(self.runs), tuple(repaired))

    def _open(self) -> list[str]:
        spec = self.spec
        self._hold_writer_lock()
        self.store = open_store(spec.uri, spec.direct_sqlite)
        _log.debug("store open; writes go through %s", self.store.kind)
        location = artifact_location(spec.uri, spec.experiment)
        # "custom_model_development" makes MLflow 3's UI open the runs table, not its GenAI view
        kind = {"mlflow.experimentKind": "custom_model_development"}
        self._direct_or_client(lambda store: setattr(
            self, "experiment_id", store.open_experiment(spec.experiment, location, kind)))
        self._direct_or_client(lambda store: store.probe(spec.probe_params, spec.probe_metrics, spec.metadata))
        repaired: list[str] = []
        found = self._direct_or_client(lambda store: self._parent(store, repaired))
        self._reconcile(found, repaired)
        return repaired

    def _hold_writer_lock(self) -> None:
        """One writer per sweep at a time, for as long as its process lives: the writer of a
        coordinator that was killed writes what it had and exits, and the next one waits for
        that before it looks for the parent run (else both could make one)."""
        if self.spec.spool_path is None:
            return
        directory = os.path.dirname(os.path.abspath(self.spec.spool_path))
        os.makedirs(directory, exist_ok=True)
        fd = os.open(os.path.join(directory, "writer.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        if not flock_within(fd, WRITER_LOCK_WAIT_S, clock=self._clock, poll_s=0.05):
            os.close(fd)
            raise StoreProblem(
                f"another MLflow writer of this sweep is still writing after {WRITER_LOCK_WAIT_S:.0f}s "
                f"(it holds {directory}/writer.lock); wait for it to finish, or stop it, and run again"
            )
        self._lock_fd = fd  # released when this process ends, however it ends

    def _direct_or_client(self, step: Callable[[Store], Any]) -> Any:
        assert self.store is not None
        try:
            return step(self.store)
        except (Unsupported, sqlite3.Error) as exc:
            if not isinstance(self.store, SqliteStore):
                raise
            self._handover(exc)
            return step(self.store)

    def _handover(self, why: BaseException) -> None:
        """MLflow's client writes the rest of the sweep (the direct path refused, or its
        database failed mid-transaction, which wrote nothing); first it looks at what exists."""
        _log.debug("MLflow writes go through MLflow's client from here on (%s)", describe(why))
        assert self.store is not None
        self.store.close()
        self.store = ClientStore.open(self.spec.uri)
        if self.experiment_id is not None:
            self.experiment_id = self.store.open_experiment(self.spec.experiment, None, {})
        if self.parent_run_id is not None:
            for ref in self.store.children(self.parent_run_id):
                if ref.number is not None and ref.number not in self.runs:
                    self.runs[ref.number] = ref.run_id
                    self.statuses[ref.number] = ref.status

    def _parent(self, store: Store, repaired: list[str]) -> bool:
        """Find the parent run by the sweep key (or, for a sweep from before the key, by the id
        the study recorded) or make it; True if it existed."""
        spec = self.spec
        tags = {**spec.metadata, **spec.tags, SWEEP_KEY_TAG: spec.sweep_key}
        found = store.find_runs(SWEEP_KEY_TAG, spec.sweep_key)
        parent: RunRef | None = found[0] if found else None
        if parent is None and spec.parent_run_id:
            status = store.run_status(spec.parent_run_id)
            parent = None if status is None else RunRef(spec.parent_run_id, status)
        if parent is None:
            [self.parent_run_id] = store.write([RunWrite(None, spec.run_name, spec.start_ms, "RUNNING",
                                                         params=dict(spec.params), tags=tags, texts=dict(spec.texts))])
            if spec.parent_run_id:
                repaired.append(f"the parent run {spec.parent_run_id} is not in the store: made parent run "
                                f"{self.parent_run_id} and wrote every trial's child run under it")
            return False
        self.parent_run_id = parent.run_id
        params, _ = store.run_contents(parent.run_id)
        missing = {k: v for k, v in spec.params.items() if k not in params}  # a param never changes
        store.write([RunWrite(parent.run_id, spec.run_name, parent.start_ms, "RUNNING", params=missing, tags=tags,
                              texts=dict(spec.texts))])
        if parent.status == "RUNNING":
            repaired.append(f"the parent run {parent.run_id} was left RUNNING by a coordinator that was killed")
        else:
            store.set_status(parent.run_id, "RUNNING")
        return True

    def _reconcile(self, found: bool, repaired: list[str]) -> None:
        """Make MLflow agree with the study (``spec.finished``, the record of truth) and with
        the spool: a child run for every finished trial, with its status; nothing RUNNING that
        is not running; one child per trial."""
        assert self.store is not None and self.parent_run_id is not None
        spec = self.spec
        expected = {record.number: record for record in spec.finished}
        spooled, spool_lines = spool.read(spec.spool_path)
        for record in spooled:  # a live record beats one rebuilt from the study ...
            truth = expected.get(record.number)
            if truth is not None and truth.status != record.status:
                record.status = truth.status  # ... but the study decides how the trial ended
            expected[record.number] = record
        groups: dict[int, list[RunRef]] = {}
        for ref in self.store.children(self.parent_run_id) if found else []:
            if ref.number is not None:
                groups.setdefault(ref.number, []).append(ref)
        removed = []
        for number, refs in sorted(groups.items()):
            keep = refs[0]
            if len(refs) > 1:
                want = expected.get(number)
                keep = next((r for r in refs if want is not None and r.status == want.status), None) or next(
                    (r for r in refs if r.status != "RUNNING"), refs[0])
                for ref in refs:
                    if ref is not keep:
                        self._delete(ref.run_id)
                removed.append(number)
                self.assigned[number] = keep.run_id
            self.runs[number], self.statuses[number] = keep.run_id, keep.status
        created, ended, corrected, stopped, items = [], [], [], [], []
        for number, record in sorted(expected.items()):
            status = self.statuses.get(number)
            if status is None:
                created.append(number)
                items.append(_Item(number, record=record))
            elif status == "RUNNING":
                ended.append(number)
                has_metrics = self._has_metrics(self.runs[number])
                items.append(_Item(number, record=record, data=not (record.recovered and has_metrics)))
            elif status != record.status:
                corrected.append(number)
                items.append(_Item(number, record=record, data=False))
        now = now_ms()
        for number, status in sorted(self.statuses.items()):
            if number not in expected and status == "RUNNING":  # its trial never finished: interrupted
                stopped.append(number)
                items.append(_Item(number, data=False, record=ChildRecord(
                    number, "KILLED", now, now, tags={"sweeper.state": "fail", "sweeper.fail_reason": "interrupted"})))
        self._write(items)
        for what, numbers in (("removed {} duplicate child run(s)", removed),
                              ("made {} missing child run(s)", created),
                              ("ended {} child run(s) left RUNNING", ended),
                              ("set the status of {} child run(s) to the study's", corrected),
                              ("ended {} child run(s) of trials that never finished (KILLED)", stopped)):
            if numbers:
                repaired.append(what.format(len(numbers)) + ": trials " + _numbers(numbers))
        if spool_lines and spec.spool_path is not None:
            left = [r for r in spooled if r.number in self._deferred]
            spool.keep_only(spec.spool_path, left)
            written = len(spooled) - len(left)
            if written:
                repaired.append(f"wrote {written} trial record(s) kept in the spool file {spec.spool_path}")

    def _delete(self, run_id: str) -> None:
        self._direct_or_client(lambda store: store.delete_run(run_id))

    def _has_metrics(self, run_id: str) -> bool:
        return bool(self._direct_or_client(lambda store: store.run_contents(run_id)[1]))

    # --- the sweep --------------------------------------------------------------------------------

    def take(self, frame: TrialStart | TrialEnd | ParentUpdate) -> None:
        if isinstance(frame, ParentUpdate):
            self._progress = self._latest_progress = frame
            return
        number = frame.number if isinstance(frame, TrialStart) else frame.record.number
        item = self._pending.get(number)
        if item is None:
            item = self._pending[number] = _Item(number)
            if self._pending_since is None:
                self._pending_since = self._clock()
        if isinstance(frame, TrialStart):
            item.start_ms, item.start_tags = frame.start_ms, dict(frame.tags)
        else:
            item.record = frame.record

    def due_s(self) -> float | None:
        """How long the loop may wait for more frames before ``tick`` has work; None: no limit."""
        now = self._clock()
        waits = []
        if self._pending_since is not None:
            waits.append(0.0 if len(self._pending) >= MAX_BATCH else self._pending_since + GATHER_S - now)
        if self._progress is not None:
            waits.append(self._progress_at + PROGRESS_INTERVAL_S - now)
        return max(0.0, min(waits)) if waits else None

    def tick(self) -> Written | None:
        """Write what is due; what the recorder should hear about it."""
        now = self._clock()
        if self._pending_since is not None and (
                len(self._pending) >= MAX_BATCH or now - self._pending_since >= GATHER_S):
            self._flush_trials()
        if self._progress is not None and now - self._progress_at >= PROGRESS_INTERVAL_S:
            self._write_progress(retry=False)
            self._progress_at = now
        return self.reply()

    def reply(self) -> Written | None:
        if not self._new_ids and not self._done:
            return None
        written = Written(self._new_ids, tuple(self._done))
        self._new_ids, self._done = {}, []
        return written

    def _flush_trials(self) -> None:
        items, self._pending, self._pending_since = list(self._pending.values()), {}, None
        self._write(items)

    def close(self, frame: Close | None) -> Closed:
        """Write everything pending and end the parent run with ``frame``'s status; None (the
        coordinator is gone): write what arrived and leave the parent RUNNING for the rerun."""
        self._flush_trials()
        if frame is not None and self.store is not None and self.parent_run_id is not None:
            self._retry_deferred()
            if self._latest_progress is not None:
                self._progress = self._latest_progress
                self._write_progress(retry=True)
            for number, tags in sorted(frame.child_tags.items()):
                if number in self.runs:
                    self._must(f"tag trial {number}", RunWrite(self.runs[number], run_name(number), 0, "RUNNING",
                                                                 tags=dict(tags)))
            self._must("end parent run", RunWrite(self.parent_run_id, self.spec.run_name, self.spec.start_ms,
                                                  frame.status, now_ms(), tags=dict(frame.tags)))
        self._release()
        return Closed(tuple(self.failures), dict(self.assigned))

    def _release(self) -> None:
        if self.store is not None:
            self.store.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- writing ----------------------------------------------------------------------------------

    def _run_write(self, item: _Item) -> RunWrite | None:
        spec, number, record = self.spec, item.number, item.record
        run_id = self.runs.get(number)
        new_tags = {MLFLOW_PARENT_RUN_ID: self.parent_run_id or "", **spec.metadata, **item.start_tags,
                    TRIAL_NUMBER_TAG: str(number)}  # how the next run finds it
        if record is None:  # a start: the run is made RUNNING (unless it exists)
            if run_id is not None:
                return None
            return RunWrite(None, run_name(number), item.start_ms, "RUNNING", tags=new_tags)
        if run_id is None:
            return RunWrite(None, run_name(number), record.start_ms, record.status, record.end_ms,
                            params=dict(record.params), tags={**new_tags, **record.tags}, metrics=list(record.metrics),
                            texts=dict(record.texts), files=list(record.files))
        if not item.data:
            return RunWrite(run_id, run_name(number), record.start_ms, record.status, record.end_ms,
                            tags=dict(record.tags))
        return RunWrite(run_id, run_name(number), record.start_ms, record.status, record.end_ms,
                        params=dict(record.params), tags={**item.start_tags, **record.tags},
                        metrics=list(record.metrics), texts=dict(record.texts), files=list(record.files))

    def _write(self, items: list[_Item]) -> None:
        """Write ``items``: on the direct path in one transaction, else run by run."""
        if not items:
            return
        assert self.store is not None
        if self.store.transactional:
            writes = [(item, w) for item in items if (w := self._run_write(item)) is not None]
            try:
                ids = self.store.write([w for _, w in writes])
            except (Unsupported, sqlite3.Error) as exc:
                self._handover(exc)
                self._write(items)
                return
            except Exception as exc:  # noqa: BLE001 - e.g. an artifact the disk refused: run by run
                _log.debug("a batch of %d runs failed (%s); writing them one by one", len(writes), describe(exc))
            else:
                for (item, w), run_id in zip(writes, ids):
                    self._written(item, w, run_id)
                return
        for item in items:
            self._write_one(item)

    def _write_one(self, item: _Item, delays: Iterable[float] = RETRY_DELAYS_S) -> bool:
        error: BaseException | None = None
        for delay in (*delays, None):
            write = self._run_write(item)
            if write is None:
                return True
            assert self.store is not None
            try:
                [run_id] = self.store.write([write])
            except PartialWrite as exc:  # the run exists now: the next attempt adds to it
                self._remember(item.number, exc.run_id, "RUNNING")
                error = exc.cause
            except (Unsupported, sqlite3.Error) as exc:
                if not isinstance(self.store, SqliteStore):
                    raise  # pragma: no cover - only the direct path raises these
                self._handover(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a store outage must not end the sweep
                error = exc
            else:
                self._written(item, write, run_id)
                return True
            if delay is None:
                break
            self._sleep(delay)
        if item.record is not None:  # a start that failed heals itself: its end makes the run
            self._deferred[item.number] = (item, describe(error) if error else "unknown error")
        return False

    def _written(self, item: _Item, write: RunWrite, run_id: str) -> None:
        self._remember(item.number, run_id, write.status)
        self._deferred.pop(item.number, None)
        if item.record is not None:
            self._done.append(item.number)

    def _remember(self, number: int, run_id: str, status: str) -> None:
        if self.runs.get(number) != run_id:
            self.runs[number] = self.assigned[number] = self._new_ids[number] = run_id
        self.statuses[number] = status

    def _retry_deferred(self) -> None:
        """Writes that failed during the sweep get one more try; once one still fails the store
        is taken to be down and the rest go straight to the spool."""
        down = False
        for number, (item, error) in sorted(self._deferred.items()):
            if not down and self._write_one(item, delays=()):
                continue
            down = True
            error = self._deferred.get(number, (item, error))[1]
            self._spool(f"record trial {number}", f"record trial {number}: {error}", item.record)
        self._deferred.clear()

    def _write_progress(self, *, retry: bool) -> None:
        progress, self._progress = self._progress, None
        if progress is None or self.parent_run_id is None or self.store is None:
            return
        tags = dict(progress.tags)
        best = tags.get("sweeper.best_trial")
        if best is not None and best.isdigit() and int(best) in self.runs:
            tags["sweeper.best_run_id"] = self.runs[int(best)]
        same = self._progress_written == (progress.step, tuple(sorted(progress.metrics.items())))
        now = now_ms()
        write = RunWrite(self.parent_run_id, self.spec.run_name, self.spec.start_ms, "RUNNING", tags=tags,
                         metrics=[] if same else [(k, float(v), progress.step, now) for k, v in progress.metrics.items()])
        if self._attempt(write, RETRY_DELAYS_S if retry else ()) is None:
            self._progress_written = (progress.step, tuple(sorted(progress.metrics.items())))
        elif retry:
            self.failures.append("update parent run: the store did not take the sweep's totals")

    def _must(self, what: str, write: RunWrite) -> None:
        error = self._attempt(write, RETRY_DELAYS_S)
        if error is not None:
            self._spool(what, f"{what}: {error}", None)

    def _attempt(self, write: RunWrite, delays: Iterable[float]) -> str | None:
        """One write with retries; None, or the last error."""
        error: BaseException | None = None
        for delay in (*delays, None):
            assert self.store is not None
            try:
                self.store.write([write])
                return None
            except (Unsupported, sqlite3.Error) as exc:
                if not isinstance(self.store, SqliteStore):
                    raise  # pragma: no cover
                self._handover(exc)
                error = exc
                continue
            except Exception as exc:  # noqa: BLE001
                error = exc
            if delay is None:
                break
            self._sleep(delay)
        return describe(error) if error else None

    def _spool(self, what: str, failure: str, record: ChildRecord | None) -> None:
        problem = spool.append(self.spec.spool_path, what, record)
        self.failures.append(failure if problem is None else f"{failure} (lost: {problem})")


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:20]))
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
