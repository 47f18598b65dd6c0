"""The engine's recorder for MLflow: one parent run per sweep, one nested child run per trial.

    Coordinator --TrialStarted / TrialRecord / Progress / SweepEnd--> MlflowRecorder
        --records.child_record etc. (MLflow's vocabulary)--> writer process --> the store

Every call returns at once; the writing happens in the writer process (``process``). What the
study must keep -- the parent run's id as soon as it exists, each trial's run id -- comes back
through ``study_attrs`` and ``trial_attrs``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._redact import redact_uri
from ..engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted
from .process import ProcessTracker
from .records import (
    EXPERIMENT_ATTR,
    PARENT_RUN_ATTR,
    RUN_ID_ATTR,
    RUN_IDS_ATTR,
    TRACKING_URI_ATTR,
    child_record,
    parent_end,
    parent_progress,
    start_tags,
)


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
    ) -> None:
        attrs = dict(study_attrs or {})
        self.uri = uri
        self.required = required
        self._previous_run_ids: dict[str, str] = dict(attrs.get(RUN_IDS_ATTR) or {})
        self._parent_run_id = attrs.get(PARENT_RUN_ATTR)
        self._linked: set[int] = set()
        self._tracker = ProcessTracker(
            uri, experiment, run_name, parent_run_id=self._parent_run_id, spool_path=spool_path,
            start_ms=start_ms,
        )
        self._closed = False

    # --- set up (the sweep) -----------------------------------------------------------------------

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], texts: Mapping[str, str],
              finished: Iterable[TrialRecord] = ()) -> None:
        """Start the writer: it opens the store, makes (or continues) the parent run, and makes
        the child runs of ``finished`` trials agree with them (a resumed sweep)."""
        self._tracker._init["reconcile"] = {r.number: child_record(r) for r in finished}
        self._tracker.start(params, tags, texts)

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Block until the parent run exists; ``TrackingError`` if the store cannot be used."""
        return self._tracker.wait_ready(timeout_s)

    @property
    def parent_run_id(self) -> str | None:
        return self._tracker.parent_run_id

    @property
    def experiment_id(self) -> str | None:
        return self._tracker.experiment_id

    @property
    def run_ids(self) -> dict[int, str]:
        return dict(self._tracker.run_ids)

    @property
    def pid(self) -> int | None:
        return self._tracker.pid

    # --- the Recorder protocol --------------------------------------------------------------------

    def trial_started(self, start: TrialStarted) -> None:
        self._tracker.child_started(start.number, start.start_ms, start_tags(start))

    def trial_finished(self, record: TrialRecord) -> None:
        self._tracker.child_finished(child_record(record))

    def trial_env(self, number: int) -> Mapping[str, str] | None:
        run_id = self._tracker.run_ids.get(number)
        if run_id is not None:
            return {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": self.uri}
        return {} if self._tracker.failed else None

    def trial_attrs(self, number: int) -> Mapping[str, Any]:
        run_id = self._tracker.run_ids.get(number)
        if run_id is None:
            return {}
        self._linked.add(number)
        return {RUN_ID_ATTR: run_id}

    def study_attrs(self) -> Mapping[str, Any]:
        attrs: dict[str, Any] = {}
        if self._tracker.ready:
            attrs[PARENT_RUN_ATTR] = self._tracker.parent_run_id
            if self._tracker.experiment_id is not None:
                attrs[EXPERIMENT_ATTR] = self._tracker.experiment_id
            if redact_uri(self.uri) == self.uri:  # `sweeper ui NAME` finds the store; never credentials
                attrs[TRACKING_URI_ATTR] = self.uri
        if self._closed:
            unlinked = {str(n): r for n, r in self._tracker.run_ids.items() if n not in self._linked}
            if unlinked:
                attrs[RUN_IDS_ATTR] = {**self._previous_run_ids, **unlinked}
        return attrs

    def progress(self, progress: Progress) -> None:
        self._tracker.parent_progress(*parent_progress(progress))

    def check(self) -> None:
        if self.required:
            self._tracker.raise_if_failed()

    def close_quietly(self) -> None:
        """Stop the writer without ending the parent run (the sweep never started)."""
        self._tracker.abandon()
        self._closed = True

    def close(self, end: SweepEnd) -> list[str]:
        if end.progress is not None:
            self.progress(end.progress)
        status, tags, child_tags = parent_end(end)
        self._tracker.close(status, tags, child_tags)
        self._closed = True
        return list(self._tracker.failures)


def default_parent_tags(study_name: str) -> dict[str, str]:
    """Tags every parent run gets: what ran it (package versions, Python, the git commit)."""
    import subprocess
    import sys
    from importlib import metadata

    tags = {"sweeper.kind": "sweep", "sweeper.study_name": study_name}
    for package in ("sweeper", "optuna", "mlflow", "scikit-learn"):
        try:
            tags[f"sweeper.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    tags["sweeper.version.python"] = sys.version.split()[0]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False)
        if out.returncode == 0 and out.stdout.strip():
            tags["mlflow.source.git.commit"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags
