"""The engine's recorder for MLflow: one parent run per sweep, one nested child run per trial.

    Coordinator --TrialStarted / TrialRecord / Progress / SweepEnd--> MlflowRecorder
        --frames (records.child_record etc.: MLflow's vocabulary)--> writer process --> the store

Two-phase parent: ``study_attrs`` names the sweep key before the writer starts, the study keeps
it, and the writer finds the parent run by that key or makes it -- so a kill at any moment
leaves one parent for the next run to continue. Every call returns at once: frames are queued
and pumped on the coordinator's own thread (``process.WriterProcess``). A trial's record is kept
here until the writer says it is in the store; if the writer dies, or never opened the store,
what it has not written goes to the spool file and is reported by ``close``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .._redact import redact_uri
from ..engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted
from ..errors import TrackingError
from . import spool
from .frames import Close, Closed, Open, Opened, ParentUpdate, TrialEnd, TrialStart, Written
from .process import QUIET_MLFLOW, WriterProcess
from .records import (
    EXPERIMENT_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    RUN_IDS_ATTR,
    SWEEP_KEY_ATTR,
    TRACKING_URI_ATTR,
    ChildRecord,
    child_record,
    parent_end,
    parent_progress,
    param_text,
    run_metadata,
    start_tags,
)

#: The writer opens the store (import mlflow, migrations, the probe, reconciling) within this.
READY_TIMEOUT_S = 300.0
#: ... and writes what is pending and ends the parent within this at close.
CLOSE_TIMEOUT_S = 600.0


def direct_sqlite_default() -> bool:
    """Whether a SQLite store at a verified schema revision is written with sqlite3: yes, unless
    the user said ``SWEEPER_DIRECT_SQLITE=0`` (then MLflow's client writes every store)."""
    import os

    return os.environ.get("SWEEPER_DIRECT_SQLITE", "1") != "0"


class MlflowRecorder:
    """``engine.recorder.Recorder`` writing to an MLflow store through the writer process."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        *,
        study_attrs: Mapping[str, Any] | None = None,
        spool_path: str | None = None,
        required: bool = True,
        start_ms: int | None = None,
        direct_sqlite: bool | None = None,
    ) -> None:
        attrs = dict(study_attrs or {})
        self.uri = uri
        self.experiment = experiment
        self.run_name = run_name
        self.required = required
        self.spool_path = spool_path
        self.sweep_key = str(attrs.get(SWEEP_KEY_ATTR) or uuid.uuid4().hex)
        self._recorded_parent: str | None = attrs.get(PARENT_RUN_ATTR)
        self._recorded_run_ids: dict[str, str] = dict(attrs.get(RUN_IDS_ATTR) or {})
        self._start_ms = start_ms
        self._direct = direct_sqlite_default() if direct_sqlite is None else direct_sqlite
        self._writer = WriterProcess()
        self.parent_run_id: str | None = None
        self.experiment_id: str | None = None
        self.run_ids: dict[int, str] = {}
        self.repaired: list[str] = []
        self.failures: list[str] = []
        self._unwritten: dict[int, ChildRecord] = {}  # sent, not yet in the store by the writer's word
        self._progress: ParentUpdate | None = None
        self._linked: set[int] = set()
        self._assigned: dict[int, str] = {}
        self._open_error: str | None = None
        self._opened = False
        self._lost = False  # the writer died after opening the store
        self._closed = False
        self._spooled = 0

    # --- set up (the sweep) -----------------------------------------------------------------------

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], texts: Mapping[str, str],
              finished: Iterable[TrialRecord] = (), *, probe_params: Sequence[str] = (),
              probe_metrics: Sequence[str] = ()) -> None:
        """Start the writer: it opens the store, tries the sweep's names on a probe run, finds
        or makes the parent run, and makes MLflow agree with the ``finished`` trials."""
        import time

        self._writer.start(Open(
            uri=self.uri, experiment=self.experiment, run_name=self.run_name, sweep_key=self.sweep_key,
            parent_run_id=self._recorded_parent, start_ms=self._start_ms or int(time.time() * 1000),
            params={k: param_text(v) for k, v in params.items()}, tags=dict(tags), texts=dict(texts),
            metadata=run_metadata(), probe_params=tuple(probe_params), probe_metrics=tuple(probe_metrics),
            spool_path=self.spool_path, direct_sqlite=self._direct,
            finished=tuple(child_record(r) for r in finished),
        ))

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Block until the parent run exists and MLflow agrees with the study; ``TrackingError``
        (whole, credentials masked) if the store cannot be used."""
        import time

        deadline = time.monotonic() + timeout_s
        while not self._opened and self._open_error is None:
            if self._writer.gone:
                tail = self._writer.log_tail()
                self._fail(f"the MLflow writer process exited (code {self._writer.exit_code}) before "
                           f"opening the store{': ' + tail if tail else ''}")
                break
            if time.monotonic() > deadline:
                self._writer.kill()
                self._fail(f"the store did not answer in {timeout_s:.0f}s")
                break
            self._handle(self._writer.pump(min(0.5, max(0.0, deadline - time.monotonic()))))
        if self._open_error is not None:
            raise TrackingError(f"could not open MLflow store {redact_uri(self.uri)}: {self._open_error}")
        assert self.parent_run_id is not None
        return self.parent_run_id

    @property
    def pid(self) -> int | None:
        return self._writer.pid

    # --- the Recorder protocol --------------------------------------------------------------------

    def trial_started(self, start: TrialStarted) -> None:
        if self._writing:
            self._writer.send(TrialStart(start.number, start.start_ms, start_tags(start)))

    def trial_finished(self, record: TrialRecord) -> None:
        child = child_record(record)
        if not self._writing:
            self._spool(child)
            return
        self._unwritten[child.number] = child
        self._writer.send(TrialEnd(child))

    def trial_env(self, number: int) -> Mapping[str, str] | None:
        self._pump()
        run_id = self.run_ids.get(number)
        if run_id is not None:
            return {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": self.uri, **QUIET_MLFLOW}
        return None if self._writing else {}

    def trial_attrs(self, number: int) -> Mapping[str, Any]:
        self._pump()
        run_id = self.run_ids.get(number)
        if run_id is None:
            return {}
        self._linked.add(number)
        return {RUN_ID_ATTR: run_id}

    def study_attrs(self) -> Mapping[str, Any]:
        """The sweep key from the start (phase one: before any run exists); the parent, the
        experiment and the store once open; at close, the child runs the trials do not name."""
        attrs: dict[str, Any] = {SWEEP_KEY_ATTR: self.sweep_key}
        if self.parent_run_id is not None:
            attrs[PARENT_RUN_ATTR] = self.parent_run_id
            if self.experiment_id is not None:
                attrs[EXPERIMENT_ATTR] = self.experiment_id
            if redact_uri(self.uri) == self.uri:  # `sweeper ui NAME` finds the store; never credentials
                attrs[TRACKING_URI_ATTR] = self.uri
        if self._closed and self.parent_run_id is not None:
            same_parent = self._recorded_parent in (None, self.parent_run_id)
            run_ids = dict(self._recorded_run_ids) if same_parent else {}
            run_ids.update({str(n): r for n, r in self._assigned.items() if n not in self._linked})
            if run_ids != self._recorded_run_ids:
                attrs[RUN_IDS_ATTR] = run_ids
        return attrs

    def progress(self, progress: Progress) -> None:
        self._progress = ParentUpdate(*parent_progress(progress))
        self._pump()

    def check(self) -> None:
        self._pump()
        if self.required and self._open_error is not None:
            raise TrackingError(f"could not open MLflow store {redact_uri(self.uri)}: {self._open_error}")

    def close_quietly(self) -> None:
        """Stop the writer without ending the parent run (the sweep never started)."""
        self._writer.close(30.0)
        self._closed = True

    def close(self, end: SweepEnd) -> list[str]:
        if self._closed:
            return list(self.failures)
        if end.progress is not None:
            self._progress = ParentUpdate(*parent_progress(end.progress))
        if self._writing:
            self._pump()
            if self._progress is not None:
                self._writer.send(self._progress)
                self._progress = None
            status, tags, child_tags = parent_end(end)
            self._writer.send(Close(status, tags, child_tags))
            self._handle(self._writer.wait(CLOSE_TIMEOUT_S))
            if self._writing:  # no Closed came: killed, crashed, or too slow
                self._writer_lost(during_close=True)
        self._writer.close()
        self._closed = True
        if self._spooled:
            self.failures.append(f"{self._spooled} trial record(s) were not written to MLflow; they are kept "
                                 f"in {self.spool_path}, and running the sweep again writes them")
        return list(self.failures)

    # --- the writer's replies ---------------------------------------------------------------------

    @property
    def _writing(self) -> bool:
        """The writer is (or may still be) writing: started, not failed, not lost, not closed."""
        return self._writer.started and self._open_error is None and not self._lost and not self._closed

    def _pump(self) -> None:
        if not self._writing:
            return
        if self._progress is not None and self._writer.backlog_bytes == 0:
            self._writer.send(self._progress)  # only the latest; a backlog sends it later
            self._progress = None
        self._handle(self._writer.pump())
        if self._opened and self._writer.gone and not self._closed:
            self._writer_lost(during_close=False)

    def _handle(self, frames: list[Any]) -> None:
        for frame in frames:
            if isinstance(frame, Written):
                self.run_ids.update(frame.run_ids)
                for number in frame.finished:
                    self._unwritten.pop(number, None)
            elif isinstance(frame, Opened):
                if frame.error is not None:
                    self._fail(frame.error)
                    continue
                self._opened = True
                self.parent_run_id, self.experiment_id = frame.parent_run_id, frame.experiment_id
                self.run_ids.update(frame.run_ids)
                self.repaired = list(frame.repaired)
            elif isinstance(frame, Closed):
                self.failures.extend(frame.failures)
                self._assigned.update(frame.run_ids)
                self.run_ids.update(frame.run_ids)
                self._unwritten.clear()  # what the writer could not write, it spooled itself
                self._lost = False
                self._opened = False  # done: nothing more to pump
                self._closed = True

    def _fail(self, error: str) -> None:
        """The store could not be opened: ``wait_ready`` raises it (the sweep stops, or with
        ``tracking.required: false`` warns once); from then on records go to the spool."""
        self._open_error = error
        self._writer.close()

    def _writer_lost(self, *, during_close: bool) -> None:
        if self._lost:
            return
        self._lost = True
        if self._writer.exit_code is None:
            self._writer.kill()
        tail = self._writer.log_tail()
        when = "before it finished closing" if during_close else "mid-sweep"
        self.failures.append(f"MLflow writer process exited (code {self._writer.exit_code}) {when}"
                             f"{': ' + tail if tail else ''}")
        for record in sorted(self._unwritten.values(), key=lambda r: r.number):
            self._spool(record)
        self._unwritten.clear()

    def _spool(self, record: ChildRecord) -> None:
        problem = spool.append(self.spool_path, f"record trial {record.number}", record)
        if problem is None:
            self._spooled += 1
        else:
            self.failures.append(f"record trial {record.number}: not written to MLflow and lost ({problem})")


def default_parent_tags(study_name: str) -> dict[str, str]:
    """Tags every parent run gets besides ``run_metadata``: what ran it (package versions, Python)."""
    import sys
    from importlib import metadata

    tags = {"sweeper.kind": "sweep", "sweeper.study_name": study_name}
    for package in ("sweeper", "optuna", "mlflow", "scikit-learn"):
        try:
            tags[f"sweeper.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    tags["sweeper.version.python"] = sys.version.split()[0]
    return tags


def name_check(experiment: str, parent_params: Iterable[str], child_params: Iterable[str],
               metrics: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(config key, expected, got)`` for every name of the sweep MLflow would refuse."""
    from .records import name_problems

    names = [(key, key) for key in parent_params if not key.startswith("search_space.")]  # checked as params
    names += [(f"search_space.{name}", name) for name in child_params]
    names += [("metric_names", name) for name in metrics]
    return name_problems(experiment, names)
