"""The ``trial`` an objective receives inside a worker process.

It looks like ``optuna.Trial`` to the objective, but decides nothing: every suggestion the
coordinator did not pre-sample, every pruning question and every log line becomes a message
to the coordinator, which alone owns the Optuna study and the MLflow runs (one writer).
Imports no optuna and no mlflow, so a worker stays cheap to start.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import os
import queue
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .messages import (
    Artifact,
    Metrics,
    PruneDecision,
    Report,
    ShouldPrune,
    Suggest,
    Suggestion,
    UserAttr,
)
from ..errors import SweeperError

#: Largest JSON a user attr may take: the study keeps it, and every worker's sends share one queue.
MAX_USER_ATTR_BYTES = 64 * 1024
#: How long a worker waits for the coordinator to answer a question before giving up.
REPLY_TIMEOUT_S = 120.0
#: Largest file ``log_artifact`` takes: it travels to the coordinator as bytes.
MAX_ARTIFACT_BYTES = 256 * 2**20


class _Channel(Protocol):
    def put(self, item: Any) -> None: ...
    def get(self, block: bool = ..., timeout: float | None = ...) -> Any: ...


class StudyDirection(enum.IntEnum):
    """``trial.study.direction`` while optuna is not loaded; equal to Optuna's own
    ``StudyDirection`` members (same values), which are returned once it is."""

    NOT_SET = 0
    MINIMIZE = 1
    MAXIMIZE = 2


class StudyView:
    """``trial.study`` inside a worker: read-only, the study as the coordinator knew it when it
    sent the trial (its name, directions, the user's own attrs, the best value and params so
    far). What Optuna's integration callbacks read (``direction``) works; a write is refused."""

    def __init__(self, view: Mapping[str, Any]) -> None:
        self._view = dict(view)

    @property
    def study_name(self) -> str:
        return str(self._view.get("study_name", ""))

    @property
    def directions(self) -> list[Any]:
        optuna_study = sys.modules.get("optuna.study")  # Optuna's enum when it is loaded
        kind: Any = StudyDirection if optuna_study is None else optuna_study.StudyDirection
        return [kind[str(name).upper()] for name in self._view.get("directions") or ["minimize"]]

    @property
    def direction(self) -> Any:
        directions = self.directions
        if len(directions) > 1:
            raise RuntimeError("A single direction cannot be retrieved from a multi-objective study. "
                               "Consider using trial.study.directions to retrieve a list containing all directions.")
        return directions[0]

    @property
    def metric_names(self) -> list[str] | None:
        return list(self._view["metric_names"]) if self._view.get("metric_names") else None

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._view.get("user_attrs") or {})

    @property
    def best_value(self) -> float:
        if self._view.get("best_value") is None:
            raise ValueError("no trial of this study had completed when this trial started")
        return float(self._view["best_value"])

    @property
    def best_params(self) -> dict[str, Any]:
        if self._view.get("best_value") is None:
            raise ValueError("no trial of this study had completed when this trial started")
        return dict(self._view.get("best_params") or {})

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"trial.study.{name}: inside a sweeper worker trial.study is a read-only view (study_name, "
            "direction, directions, metric_names, user_attrs, best_value, best_params); the study "
            "itself lives in the coordinator: use the study sweeper.optimize returns, or callbacks="
        )

    def __repr__(self) -> str:
        return f"<sweeper StudyView {self.study_name!r}>"


class Trial:
    """The live handle of one trial, as seen by ``objective(trial)``.

    Supports what objectives use from ``optuna.Trial``: ``suggest_float`` (``step``, ``log``),
    ``suggest_int`` (``step``, ``log``), ``suggest_categorical``, ``report``, ``should_prune``,
    ``set_user_attr``, ``user_attrs``, ``number``, ``params``, ``distributions``,
    ``datetime_start``, ``relative_params`` and a read-only ``study``; plus ``log_metric(s)``
    and ``log_artifact`` for the trial's MLflow child run.

    Example:
        >>> def objective(trial):
        ...     x = trial.suggest_float("x", -10, 10)
        ...     return (x - 2) ** 2
    """

    def __init__(
        self,
        number: int,
        params: Mapping[str, Any],
        *,
        worker_id: int,
        inbox: _Channel,
        outbox: _Channel,
        study: Mapping[str, Any] | None = None,
        relative_params: Mapping[str, Any] | None = None,
    ) -> None:
        self._number = number
        self._study = StudyView(study or {})
        self._datetime_start = datetime.datetime.now()
        self._presampled = dict(params)
        self._relative = dict(relative_params or {})
        self._params: dict[str, Any] = {}
        self._distributions: dict[str, dict[str, Any]] = {}
        self._user_attrs: dict[str, Any] = {}
        self._worker_id = worker_id
        self._inbox = inbox
        self._outbox = outbox
        self.reports = 0
        self.artifacts_sent = 0

    # --- what Optuna objectives read ---------------------------------------------------------

    @property
    def number(self) -> int:
        return self._number

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def study(self) -> StudyView:
        """The study, read-only, as the coordinator knew it when this trial was sent."""
        return self._study

    @property
    def datetime_start(self) -> datetime.datetime:
        """When this trial started running in its worker (local time, as Optuna's)."""
        return self._datetime_start

    @property
    def relative_params(self) -> dict[str, Any]:
        """What Optuna's trial holds as ``relative_params``: the params its sampler chose jointly
        (``sample_relative``, e.g. TPE ``multivariate=True`` or CMA-ES) when the coordinator
        asked for the trial; empty for samplers that sample each param on its own."""
        return dict(self._relative)

    @property
    def distributions(self) -> dict[str, Any]:
        """Optuna distribution objects when the objective's process loaded optuna, else their
        JSON dicts (a worker never imports optuna itself)."""
        distributions = sys.modules.get("optuna.distributions")
        if distributions is None:
            return dict(self._distributions)
        return {k: distributions.json_to_distribution(json.dumps(v)) for k, v in self._distributions.items()}

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._user_attrs)

    # --- suggestions -------------------------------------------------------------------------

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        attrs: dict[str, Any] = {"low": float(low), "high": float(high), "log": bool(log), "step": step}
        if step is not None:
            attrs["step"] = float(step)
        return float(self._suggest(name, {"name": "FloatDistribution", "attributes": attrs}))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        attrs = {"low": int(low), "high": int(high), "log": bool(log), "step": int(step)}
        return int(self._suggest(name, {"name": "IntDistribution", "attributes": attrs}))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        attrs = {"choices": list(choices)}
        return self._suggest(name, {"name": "CategoricalDistribution", "attributes": attrs})

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)

    def _suggest(self, name: str, distribution: dict[str, Any]) -> Any:
        if name in self._params:
            return self._params[name]
        if name in self._presampled:
            value = self._presampled[name]
        else:
            self._outbox.put(
                Suggest(self._worker_id, self._number, name, json.dumps(distribution))
            )
            reply = self._await(Suggestion)
            if reply.error is not None:
                raise ValueError(reply.error)
            value = reply.value
        self._params[name] = value
        self._distributions[name] = distribution
        return value

    # --- pruning -----------------------------------------------------------------------------

    def report(self, value: float, step: int) -> None:
        """Send an intermediate value to the coordinator's pruner (and MLflow); does not wait."""
        value = float(value)
        if not math.isfinite(value):
            return  # optuna drops non-finite intermediate values from pruning as well
        self.reports += 1
        self._outbox.put(Report(self._worker_id, self._number, int(step), value))

    def should_prune(self) -> bool:
        self._outbox.put(ShouldPrune(self._worker_id, self._number))
        return bool(self._await(PruneDecision).prune)

    # --- records -----------------------------------------------------------------------------

    def set_user_attr(self, key: str, value: Any) -> None:
        size = len(json.dumps(value))  # fail here, in the user's frame, not in the coordinator
        if size > MAX_USER_ATTR_BYTES:
            raise ValueError(f"user attr {key!r} is {size} bytes of JSON; the limit is {MAX_USER_ATTR_BYTES}"
                             " (log large things with trial.log_artifact)")
        self._user_attrs[key] = value
        self._outbox.put(UserAttr(self._worker_id, self._number, str(key), value))

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Log metrics to this trial's MLflow run (non-finite values are dropped)."""
        clean = {str(k): float(v) for k, v in values.items() if math.isfinite(float(v))}
        if clean:
            self._outbox.put(Metrics(self._worker_id, self._number, clean, step))

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Attach a file to this trial's MLflow run. The file is read now, as
        ``mlflow.log_artifact`` would copy it, so it may be overwritten or deleted right after."""
        full = os.path.abspath(os.fspath(path))
        if not os.path.isfile(full):
            raise FileNotFoundError(full)
        size = os.path.getsize(full)
        if size > MAX_ARTIFACT_BYTES:
            raise ValueError(f"artifact {full} is {size} bytes; the limit is {MAX_ARTIFACT_BYTES} "
                             "(log large files with mlflow.log_artifact in the objective itself)")
        with open(full, "rb") as handle:
            data = handle.read()
        self.artifacts_sent += 1
        self._outbox.put(Artifact(self._worker_id, self._number, os.path.basename(full), data, artifact_path))

    # --- plumbing ----------------------------------------------------------------------------

    def _await(self, kind: type) -> Any:
        try:
            reply = self._inbox.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            raise SweeperError(
                f"no answer from the coordinator within {REPLY_TIMEOUT_S:.0f}s"
            ) from None
        if not isinstance(reply, kind) or getattr(reply, "trial_number", None) != self._number:
            raise SweeperError(
                f"protocol error: trial {self._number} expected {kind.__name__}, got {type(reply).__name__} "
                f"for trial {getattr(reply, 'trial_number', None)}"
            )
        return reply
