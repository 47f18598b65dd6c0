"""The MLflow vocabulary of a sweep, in one place: run names, ``sweeper.*`` tags, statuses,
truncation, and the child-run record a finished trial becomes (built here, once).

    engine TrialRecord --child_record--> ChildRecord (params, metrics, tags, texts, files)
    engine Progress    --parent_progress--> the parent's metrics and tags
    engine SweepEnd    --parent_end--> the parent's status and closing tags

Stdlib only: the writer process imports it without mlflow.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted

# Tags and attrs the rest of sweeper reads back.
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attr
EXPERIMENT_ATTR = "mlflow_experiment_id"  # study user attr
TRACKING_URI_ATTR = "mlflow_tracking_uri"  # study user attr, only ever without credentials
RUN_IDS_ATTR = "mlflow_run_ids"  # study user attr: {trial number: run id} not on the trials themselves
RUN_ID_ATTR = "sweeper:mlflow_run_id"  # trial system attr
MODEL_URI_ATTR = "mlflow_best_model_uri"  # study user attr (the report)
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MAX_TAG = 5000  # sweeper's own tag values are cut here (MLflow takes 8000)
MAX_PARAM = 6000  # MLflow's limit for a param value
MAX_ERROR_TAG = 4000


@dataclass
class ChildRecord:
    """Everything a finished trial leaves in its child run, written in one batch."""

    number: int
    status: str  # FINISHED | FAILED | KILLED
    start_ms: int
    end_ms: int
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, step, ms
    tags: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # artifact file -> content
    files: list[tuple[str, bytes, str | None]] = field(default_factory=list)  # name, data, artifact dir


def run_name(number: int) -> str:
    return f"trial-{number:04d}"


def mlflow_status(state: str, reason: str | None) -> str:
    """A trial's ending as an MLflow run status: pruned is a normal end; timeouts and
    interruptions were stopped from outside (KILLED); everything else FAILED."""
    if state in ("complete", "pruned"):
        return "FINISHED"
    return "KILLED" if reason in ("timeout", "interrupted") else "FAILED"


def value_names(names: tuple[str, ...], n_values: int) -> list[str]:
    """The metric name of each objective value: the study's names, else value / value_i."""
    if names and len(names) == n_values:
        return list(names)
    return ["value"] if n_values == 1 else [f"value_{i}" for i in range(n_values)]


def start_tags(start: TrialStarted) -> dict[str, str]:
    tags = {"sweeper.trial_number": str(start.number), "sweeper.state": "running"}
    if start.worker is not None:
        tags["sweeper.worker_host"] = start.worker.host
        tags["sweeper.worker_pid"] = str(start.worker.pid)
    if start.retry_of is not None:
        tags["sweeper.retry_of"] = str(start.retry_of)
    return tags


def child_record(record: TrialRecord) -> ChildRecord:
    """The one place a finished trial becomes MLflow data."""
    child = ChildRecord(record.number, mlflow_status(record.state, record.reason), record.start_ms,
                        record.end_ms, params=dict(record.params))
    child.metrics += [(m.key, m.value, m.step, m.timestamp_ms) for m in record.measurements]
    child.metrics += [(m.key, m.value, m.step, m.timestamp_ms) for m in record.reports]
    if record.state == "complete" and record.values is not None:
        names = value_names(record.value_names, len(record.values))
        child.metrics += [(name, float(v), 0, record.end_ms) for name, v in zip(names, record.values)
                          if v == v and abs(v) != float("inf")]
    child.metrics.append(("duration_s", float(record.duration_s), 0, record.end_ms))
    child.tags.update({
        "sweeper.trial_number": str(record.number),
        "sweeper.state": record.state,
        "sweeper.duration_s": f"{record.duration_s:.3f}",
    })
    if record.worker is not None:
        child.tags["sweeper.worker_host"] = record.worker.host
        child.tags["sweeper.worker_pid"] = str(record.worker.pid)
    if record.retry_of is not None:
        child.tags["sweeper.retry_of"] = str(record.retry_of)
    if record.recovered:
        child.tags["sweeper.reconciled"] = "true"
    if record.dropped:
        child.tags["sweeper.metrics_dropped"] = str(record.dropped)
    if record.output:
        child.texts["output.txt"] = record.output
    if record.state == "fail":
        child.tags["sweeper.fail_reason"] = record.reason or "exception"
        if record.error:
            child.tags["sweeper.error"] = record.error[:MAX_ERROR_TAG]
        if record.traceback:
            child.texts["traceback.txt"] = record.traceback
    child.files = [(f.name, f.data, f.directory) for f in record.files]
    return child


def parent_progress(progress: Progress) -> tuple[dict[str, float], dict[str, str], int]:
    """The parent run's metrics and tags after a trial: totals over the whole sweep."""
    metrics = {
        "trials_complete": float(progress.n_complete),
        "trials_failed": float(progress.n_fail),
        "trials_pruned": float(progress.n_pruned),
    }
    tags: dict[str, str] = {}
    if progress.best_value is not None and progress.best_trial is not None:
        metrics["best_value"] = float(progress.best_value)
        tags["sweeper.best_trial"] = str(progress.best_trial)
    return metrics, tags, progress.n_complete + progress.n_fail + progress.n_pruned


def parent_end(end: SweepEnd) -> tuple[str, dict[str, str], dict[int, dict[str, str]]]:
    """The parent's final status, its closing tags, and tags for children (the Pareto front)."""
    status = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}[end.outcome]
    tags = {"sweeper.outcome": end.outcome, "sweeper.stopped": end.reason or ""}
    child_tags: dict[int, dict[str, str]] = {}
    if end.pareto_front:
        tags["sweeper.pareto_front"] = ",".join(map(str, end.pareto_front))[:MAX_TAG]
        child_tags = {number: {"sweeper.pareto_front": "true"} for number in end.pareto_front}
    return status, tags, child_tags


def tag_text(value: Any) -> str:
    return str(value)[:MAX_TAG]


def param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM]


def run_id_of(study: Any, trial: Any) -> str | None:
    """The MLflow child run of a trial, wherever it was recorded: the trial's own system attr,
    or the study's list for trials that ended before their run existed."""
    run_id = trial.system_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        run_id = study.user_attrs.get(RUN_IDS_ATTR, {}).get(str(trial.number))
    return run_id if isinstance(run_id, str) else None


def now_ms() -> int:
    return int(time.time() * 1000)


def spool_entry(what: str, record: ChildRecord | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"what": what, "time_ms": now_ms()}
    if record is not None:
        entry["record"] = {
            "number": record.number, "status": record.status, "params": {k: str(v) for k, v in record.params.items()},
            "metrics": record.metrics, "tags": record.tags,
        }
    return entry


def merge_tags(*parts: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for part in parts:
        merged.update(part)
    return merged
