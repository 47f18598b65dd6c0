"""Every message between the coordinator and a worker, as a frozen, slotted dataclass of plain data.

    coordinator --RunTrial/Suggestion/PruneDecision/TrialEnv/Shutdown--> worker inbox (one each)
    worker --WorkerReady/Suggest/TrialEnvRequest/Report/ShouldPrune/Metrics/UserAttr/Artifact/
             TrialFinished--> outbox (one, shared)
    backend --WorkerLost--> coordinator (a worker slot's process or task is gone)

Only str, int, float, bool, bytes, None and tuples/lists/dicts of those go in a field, so the
coordinator never needs a user type. ``to_wire``/``from_wire`` give every message a plain-list
form that needs no pickle (for transports that carry msgpack or JSON-like data): decoding goes
through a whitelist of these classes only. Stdlib only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Union

TrialState = Literal["complete", "pruned", "fail"]


# --- coordinator -> worker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunTrial:
    """Run one trial. ``objective`` names the objective as the backend delivered it (an import
    path ``"pkg.mod:fn"``, or the key of one sent by value); ``params`` were sampled by the
    coordinator already (the declared search space), others arrive by ``Suggest``. ``study``
    is what ``trial.study`` shows (name, directions, best so far), as the coordinator knows it;
    ``relative_params`` what Optuna's trial holds as such (its sampler's joint sampling)."""

    trial_number: int
    objective: str
    params: dict[str, Any]
    objective_kwargs: dict[str, Any]
    capture_output: bool = False  # send the trial's stdout/stderr back with its result
    study: dict[str, Any] | None = None
    relative_params: dict[str, Any] | None = None  # what the sampler's sample_relative chose


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
class TrialEnv:
    """Environment variables the objective runs under (``TrialEnvRequest``), so a library it
    calls itself writes to the trial's own record ({}: there is none)."""

    trial_number: int
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Leave the worker loop and exit. An explicit message, never a ``None`` sentinel."""


# --- worker -> coordinator ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """A worker is up and waiting for its first trial, on ``host`` as process ``pid``."""

    worker_id: int
    host: str
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
class TrialEnvRequest:
    """Sent before the objective runs when it loaded a library that reads its environment
    (mlflow): the worker waits for a ``TrialEnv``."""

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
    """Extra metrics for the trial's record; ``step`` None means a single value."""

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
    """A file the objective attached to its trial, as bytes (read when it was logged, so it
    may change or vanish right after), with where it goes under the trial's artifacts."""

    worker_id: int
    trial_number: int
    name: str
    data: bytes
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
    output: str = ""  # the trial's captured stdout/stderr, capped (head and tail)


# --- backend -> coordinator -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerLost:
    """A worker slot's process (or remote task) is gone, described in words for the user
    (``"worker killed by SIGKILL (possibly out of memory), exit code -9"``). The backend starts
    a replacement by itself, which says ``WorkerReady``; ``replaced`` is False when it will not
    (the slot died before it was ever ready too often: its restart budget is spent)."""

    worker_id: int
    reason: str
    replaced: bool = True
    output: str = ""  # what the lost worker's trial printed, when it was captured


ToWorker = Union[RunTrial, Suggestion, PruneDecision, TrialEnv, Shutdown]
FromWorker = Union[
    WorkerReady, Suggest, TrialEnvRequest, Report, ShouldPrune, Metrics, UserAttr, Artifact, TrialFinished
]
FromBackend = Union[FromWorker, WorkerLost]

#: Every class ``from_wire`` may build: nothing else can come out of a wire form.
MESSAGE_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (RunTrial, Suggestion, PruneDecision, TrialEnv, Shutdown, WorkerReady, Suggest,
                TrialEnvRequest, Report, ShouldPrune, Metrics, UserAttr, Artifact, TrialFinished, WorkerLost)
}
_TUPLE_FIELDS = {"values"}  # tuples travel as lists


def to_wire(message: Any) -> list[Any]:
    """``[class name, field, field, ...]``: plain data any serializer carries."""
    return [type(message).__name__, *(getattr(message, f.name) for f in dataclasses.fields(message))]


def from_wire(data: Any) -> Any:
    """The message ``to_wire`` described; ``ValueError`` for anything that is not one."""
    if not isinstance(data, (list, tuple)) or not data or not isinstance(data[0], str):
        raise ValueError(f"not a wire message: {type(data).__name__}")
    cls = MESSAGE_CLASSES.get(data[0])
    if cls is None:
        raise ValueError(f"unknown message type {data[0]!r}")
    fields = dataclasses.fields(cls)
    if len(data) - 1 > len(fields):
        raise ValueError(f"{data[0]}: {len(data) - 1} fields, expected at most {len(fields)}")
    values = {
        f.name: tuple(value) if f.name in _TUPLE_FIELDS and isinstance(value, list) else value
        for f, value in zip(fields, data[1:])
    }
    return cls(**values)
