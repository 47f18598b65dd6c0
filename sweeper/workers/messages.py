"""Every message that crosses a process boundary, as a frozen, slotted dataclass of plain data.

    coordinator --RunTrial/Suggestion/PruneDecision/RunIdReply/Shutdown--> worker inbox (one each)
    worker --WorkerReady/Suggest/RunIdRequest/Report/ShouldPrune/Metrics/UserAttr/Artifact/
             TrialFinished--> outbox (one, shared)

Only str, int, float, bool, None and tuples/dicts of those go in a field, so the coordinator
never unpickles a user object (a hostile or broken ``__reduce__`` cannot reach it).
Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

TrialState = Literal["complete", "pruned", "fail"]


# --- coordinator -> worker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTrial:
    """Run one trial: ``objective`` is an import path ``"pkg.mod:fn"``; ``params`` were sampled
    by the coordinator already (the declared search space), others arrive by ``Suggest``."""

    trial_number: int
    objective: str
    params: dict[str, Any]
    objective_kwargs: dict[str, Any]
    output_path: str | None = None  # where the trial's stdout/stderr go (None: not captured)
    scratch_dir: str | None = None  # where log_artifact copies files until they are uploaded


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The coordinator's answer to ``Suggest``, or the reason it refused (``error``)."""

    trial_number: int
    name: str
    value: Any
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PruneDecision:
    """The coordinator's answer to ``ShouldPrune``, from the study's pruner."""

    trial_number: int
    prune: bool


@dataclass(frozen=True, slots=True)
class RunIdReply:
    """The trial's MLflow child run, so plain ``mlflow.log_*`` calls in the objective land there
    (``run_id`` None: tracking is off or the store failed)."""

    trial_number: int
    run_id: str | None
    tracking_uri: str | None


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Leave the worker loop and exit. An explicit message, never a ``None`` sentinel."""


# --- worker -> coordinator ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker process is up and waiting for its first trial."""

    worker_id: int
    pid: int


@dataclass(frozen=True, slots=True)
class Suggest:
    """Define-by-run: the objective asked for a parameter the coordinator did not pre-sample.
    ``distribution`` is ``optuna.distributions.distribution_to_json`` output."""

    worker_id: int
    trial_number: int
    name: str
    distribution: str


@dataclass(frozen=True, slots=True)
class RunIdRequest:
    """Sent before the objective runs when its module imported mlflow: the worker waits for a
    ``RunIdReply`` naming the trial's child run."""

    worker_id: int
    trial_number: int


@dataclass(frozen=True, slots=True)
class Report:
    """An intermediate objective value (``trial.report``); the worker does not wait."""

    worker_id: int
    trial_number: int
    step: int
    value: float


@dataclass(frozen=True, slots=True)
class ShouldPrune:
    """The worker waits for a ``PruneDecision`` after sending this."""

    worker_id: int
    trial_number: int


@dataclass(frozen=True, slots=True)
class Metrics:
    """Extra metrics for the trial's MLflow run; ``step`` None means a single value."""

    worker_id: int
    trial_number: int
    values: dict[str, float]
    step: int | None = None


@dataclass(frozen=True, slots=True)
class UserAttr:
    """``trial.set_user_attr`` from inside the objective (value must be JSON-serializable)."""

    worker_id: int
    trial_number: int
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file the objective wrote, to be logged to its trial's MLflow run by the coordinator."""

    worker_id: int
    trial_number: int
    path: str
    artifact_path: str | None = None


@dataclass(frozen=True, slots=True)
class TrialFinished:
    """The one outcome of a trial. The coordinator synthesizes it too, for crashes and timeouts,
    so every ending goes through the same ``_finish`` path."""

    worker_id: int
    trial_number: int
    state: TrialState
    values: tuple[float, ...] | None = None
    duration_s: float = 0.0
    error: str | None = None
    traceback: str | None = None
    reason: str | None = None
    worker_exits: bool = False  # the worker leaves after this (recycled): send it nothing more


ToWorker = Union[RunTrial, Suggestion, PruneDecision, RunIdReply, Shutdown]
FromWorker = Union[
    WorkerReady, Suggest, RunIdRequest, Report, ShouldPrune, Metrics, UserAttr, Artifact, TrialFinished
]
