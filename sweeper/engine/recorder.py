"""What the coordinator tells the outside world about a sweep, and the contract of whoever listens.

    Coordinator --trial_started / trial_finished / progress / close--> Recorder (MLflow, or nothing)
               <--trial_env(number)-- (for objectives that log to their trial's run themselves)

The engine speaks in sweeps and trials only: states, reasons, values, params, measurements,
output and files. What those become elsewhere -- MLflow run names, tags, statuses, truncation
-- is the recorder's business (``sweeper.tracking``). Every call must return at once: a slow
or dead store may never stall scheduling. Plain data only, so a recorder can hand records to
another process. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

TrialState = Literal["complete", "pruned", "fail"]
#: How a sweep ended, as every result view reports it.
SweepOutcome = Literal["finished", "interrupted", "failed"]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """Where a trial ran: a host name and a process id there."""

    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value an objective logged (``trial.log_metric``) or reported (``trial.report``)."""

    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class FileBlob:
    """A file an objective attached to its trial (``trial.log_artifact``), as bytes."""

    name: str  # the file's base name
    data: bytes
    directory: str | None = None  # where under the trial's artifacts it goes (None: the top)


@dataclass(frozen=True, slots=True)
class TrialStarted:
    """A trial was handed to a worker."""

    number: int
    start_ms: int
    worker: WorkerInfo | None = None
    retry_of: int | None = None  # the trial whose params this one re-runs


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """Everything a finished trial leaves behind, built once by the coordinator.

    ``reason`` names why a trial failed: ``exception``, ``crashed``, ``timeout``,
    ``interrupted``, ``bad_value``, ``sampler``, ``tell``; ``pruned`` for a pruned trial.
    ``recovered`` marks a record rebuilt from the study after a restart (nothing of the live
    trial -- output, files, logged measurements -- survived).
    """

    number: int
    state: TrialState
    start_ms: int
    end_ms: int
    duration_s: float
    params: Mapping[str, Any] = field(default_factory=dict)
    values: tuple[float, ...] | None = None  # the objective's values, complete trials only
    value_names: tuple[str, ...] = ()  # one per value: the study's metric names
    reason: str | None = None
    error: str | None = None
    traceback: str | None = None
    worker: WorkerInfo | None = None
    measurements: tuple[Measurement, ...] = ()  # logged metrics, in order
    reports: tuple[Measurement, ...] = ()  # intermediate values (key "intermediate_value")
    dropped: int = 0  # measurements past the per-trial cap, counted not kept
    output: str = ""  # captured stdout/stderr, capped
    files: tuple[FileBlob, ...] = ()
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    retry_of: int | None = None
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class Progress:
    """The sweep as a whole, after a trial finished: totals over every session of the sweep."""

    n_complete: int
    n_pruned: int
    n_fail: int
    n_running: int
    n_target: int | None  # the sweep's total (n_trials), None when it runs until a timeout
    best_trial: int | None = None  # single objective: the study's best trial
    best_value: float | None = None


@dataclass(frozen=True, slots=True)
class SweepEnd:
    """How the sweep ended, for the record's final state."""

    outcome: SweepOutcome
    reason: str | None = None  # why it stopped early (interrupted by SIGINT, crash loop, ...)
    progress: Progress | None = None
    pareto_front: tuple[int, ...] = ()  # multi-objective: the trials on the front


class Recorder(Protocol):
    """Where the coordinator's facts go. Every method returns at once."""

    def trial_started(self, start: TrialStarted) -> None: ...

    def trial_finished(self, record: TrialRecord) -> None: ...

    def trial_env(self, number: int) -> Mapping[str, str] | None:
        """Environment variables under which the trial's objective runs, so a library it calls
        itself (plain ``mlflow.log_metric``) writes to the trial's own record; None while
        they are not known yet (the coordinator asks again), ``{}`` when there will be none."""
        ...

    def trial_attrs(self, number: int) -> Mapping[str, Any]:
        """System attrs for the trial's study record (e.g. the id of its run), written when the
        trial is told; only what is known by then."""
        ...

    def study_attrs(self) -> Mapping[str, Any]:
        """Study user attrs the record needs kept (e.g. the ids of its records), as they are
        now; the coordinator writes those that changed, as soon as it can and at the end."""
        ...

    def progress(self, progress: Progress) -> None: ...

    def check(self) -> None:
        """Raise ``SweeperError`` if the record can no longer be kept and must be (a required
        tracking store that failed); otherwise nothing."""
        ...

    def close(self, end: SweepEnd) -> list[str]:
        """Write what is pending and end the record; the problems to tell the user (never raises)."""
        ...


class NullRecorder:
    """Keeps nothing: ``track=False``."""

    def trial_started(self, start: TrialStarted) -> None:
        pass

    def trial_finished(self, record: TrialRecord) -> None:
        pass

    def trial_env(self, number: int) -> Mapping[str, str] | None:
        return {}

    def trial_attrs(self, number: int) -> Mapping[str, Any]:
        return {}

    def study_attrs(self) -> Mapping[str, Any]:
        return {}

    def progress(self, progress: Progress) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self, end: SweepEnd) -> list[str]:
        return []
