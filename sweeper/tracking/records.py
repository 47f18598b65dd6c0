"""The MLflow vocabulary of a sweep, in one place: run names, ``sweeper.*`` tags, statuses,
truncation, MLflow's naming rules, run metadata, and the child-run record a finished trial
becomes (built here, once).

    engine TrialRecord --child_record--> ChildRecord (params, metrics, tags, texts, files)
    engine Progress    --parent_progress--> the parent's metrics and tags
    engine SweepEnd    --parent_end--> the parent's status and closing tags

Stdlib only: the writer process imports it without mlflow.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import posixpath
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._redact import redact_uri
from ..engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted

# Study attrs the rest of sweeper reads back.
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attr
SWEEP_KEY_ATTR = "mlflow_sweep_key"  # study user attr: the parent run's ``sweeper.sweep_key`` tag
EXPERIMENT_ATTR = "mlflow_experiment_id"  # study user attr
TRACKING_URI_ATTR = "mlflow_tracking_uri"  # study user attr, only ever without credentials
RUN_IDS_ATTR = "mlflow_run_ids"  # study user attr: {trial number: run id}; wins over RUN_ID_ATTR
RUN_ID_ATTR = "sweeper:mlflow_run_id"  # trial system attr
MODEL_URI_ATTR = "mlflow_best_model_uri"  # study user attr (the report)

# Tags.
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_USER = "mlflow.user"
SWEEP_KEY_TAG = "sweeper.sweep_key"  # on the parent: how a rerun finds it (two-phase parent)
TRIAL_NUMBER_TAG = "sweeper.trial_number"  # on a child: how a rerun finds it
PROBE_TAG = "sweeper.probe"  # the run the store check makes and deletes

# MLflow's limits (mlflow.utils.validation), and sweeper's own cuts below them.
MAX_KEY = 250  # param, metric and tag names
MAX_PARAM = 6000  # a param value
MAX_TAG_VALUE = 8000  # a tag value
MAX_EXPERIMENT_NAME = 500
MAX_TAG = 5000  # sweeper's own tag values are cut here
MAX_ERROR_TAG = 4000
#: MLflow's rule for param, metric and tag names on POSIX (``validate_param_and_metric_name``).
NAME_RULE = re.compile(r"^[/\w.\- :]*$")
NAME_RULE_TEXT = ("letters, digits and _ - . : / and spaces only, at most 250 characters, "
                  "and no '..', leading '/' or other path tricks (MLflow's rule for names)")


@dataclass
class ChildRecord:
    """Everything a finished trial leaves in its child run, written in one batch."""

    number: int
    status: str  # FINISHED | FAILED | KILLED
    start_ms: int
    end_ms: int
    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, step, ms
    tags: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # artifact file -> content
    files: list[tuple[str, bytes, str | None]] = field(default_factory=list)  # name, data, artifact dir
    recovered: bool = False  # rebuilt from the study: the live trial's measurements are gone

    def to_plain(self) -> dict[str, Any]:
        """JSON-able form (the spool file and the writer's pipe)."""
        return {
            "number": self.number, "status": self.status, "start_ms": self.start_ms, "end_ms": self.end_ms,
            "params": dict(self.params), "metrics": [list(m) for m in self.metrics], "tags": dict(self.tags),
            "texts": dict(self.texts), "recovered": self.recovered,
            "files": [[name, base64.b64encode(data).decode("ascii"), directory] for name, data, directory in self.files],
        }

    @classmethod
    def from_plain(cls, data: Mapping[str, Any]) -> ChildRecord:
        """The record ``to_plain`` described (also the spool lines of older sweeper versions)."""
        number = int(data["number"])
        end_ms = int(data.get("end_ms") or data.get("start_ms") or now_ms())
        return cls(
            number, str(data["status"]), int(data.get("start_ms") or end_ms), end_ms,
            params={str(k): str(v) for k, v in (data.get("params") or {}).items()},
            metrics=[(str(k), float(v), int(step), int(ts)) for k, v, step, ts in data.get("metrics") or ()],
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            texts={str(k): str(v) for k, v in (data.get("texts") or {}).items()},
            files=[(str(n), base64.b64decode(d), None if a is None else str(a)) for n, d, a in data.get("files") or ()],
            recovered=bool(data.get("recovered", False)),
        )


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
    tags = {TRIAL_NUMBER_TAG: str(start.number), "sweeper.state": "running"}
    if start.worker is not None:
        tags["sweeper.worker_host"] = start.worker.host
        tags["sweeper.worker_pid"] = str(start.worker.pid)
    if start.retry_of is not None:
        tags["sweeper.retry_of"] = str(start.retry_of)
    return tags


def child_record(record: TrialRecord) -> ChildRecord:
    """The one place a finished trial becomes MLflow data."""
    child = ChildRecord(record.number, mlflow_status(record.state, record.reason), record.start_ms,
                        record.end_ms, params={k: param_text(v) for k, v in record.params.items()},
                        recovered=record.recovered)
    child.metrics += [(m.key, m.value, m.step, m.timestamp_ms) for m in record.measurements]
    child.metrics += [(m.key, m.value, m.step, m.timestamp_ms) for m in record.reports]
    if record.state == "complete" and record.values is not None:
        names = value_names(record.value_names, len(record.values))
        child.metrics += [(name, float(v), 0, record.end_ms) for name, v in zip(names, record.values)
                          if v == v and abs(v) != float("inf")]
    child.metrics.append(("duration_s", float(record.duration_s), 0, record.end_ms))
    child.tags.update(user_attr_tags(record.user_attrs))
    child.tags.update({
        TRIAL_NUMBER_TAG: str(record.number),
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


def user_attr_tags(user_attrs: Mapping[str, Any]) -> dict[str, str]:
    """A trial's user attrs as tags of its run, as Optuna's ``MLflowCallback`` tags them
    (``tag_trial_user_attrs``): sweeper's own (``sweeper_*``) left out, and a key MLflow would
    refuse as a name left out too rather than costing the trial its run."""
    tags: dict[str, str] = {}
    for key, value in user_attrs.items():
        if not isinstance(key, str) or key.startswith(("sweeper_", "mlflow_")) or name_problem(key):
            continue
        tags[key] = tag_text(value if isinstance(value, str) else json.dumps(value, default=str))
    return tags


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
    """The MLflow child run of a trial: the study's list first (rewritten when a rerun had to
    make runs anew, e.g. for a store that was deleted), else the trial's own system attr."""
    run_id = (study.user_attrs.get(RUN_IDS_ATTR) or {}).get(str(trial.number))
    if run_id is None:
        run_id = trial.system_attrs.get(RUN_ID_ATTR)
    return run_id if isinstance(run_id, str) else None


def now_ms() -> int:
    return int(time.time() * 1000)


# --- MLflow's naming rules, checked before anything starts -------------------------------------------


def name_problem(name: Any) -> str | None:
    """Why MLflow would refuse ``name`` as a param, metric or tag name; None if it would not."""
    if not isinstance(name, str) or not name:
        return "a non-empty name"
    if len(name) > MAX_KEY:
        return f"at most {MAX_KEY} characters (MLflow's limit for a name; this one has {len(name)})"
    norm = posixpath.normpath(name)
    if not NAME_RULE.match(name) or norm != name or norm == "." or norm.startswith(("..", "/")):
        return NAME_RULE_TEXT
    return None


def name_problems(experiment: str, names: Iterable[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """``(where, expected, got)`` for the experiment name and each ``(where, name)`` MLflow
    would refuse; ``where`` is the config key the name comes from."""
    problems: list[tuple[str, str, str]] = []
    if not experiment or len(experiment) > MAX_EXPERIMENT_NAME:
        problems.append(("tracking.experiment",
                         f"a name of 1 to {MAX_EXPERIMENT_NAME} characters (MLflow's limit for an experiment name)",
                         f"{len(experiment)} characters"))
    for where, name in names:
        problem = name_problem(name)
        if problem is not None:
            problems.append((where, problem, repr(name)))
    return problems


# --- run metadata, as MLflow's fluent API records it -----------------------------------------------


def run_metadata(main_file: str | None = None) -> dict[str, str]:
    """The tags ``mlflow.start_run`` gives every run (``DefaultRunContext`` and
    ``GitRunContext``): who ran it, from what, and at which git commit of the main file's
    repository. ``mlflow.user`` also fills the run's ``user_id``."""
    main = main_file if main_file is not None else (sys.argv[0] if sys.argv and sys.argv[0] else None)
    try:
        user = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid
        user = "unknown"
    tags = {MLFLOW_USER: user, "mlflow.source.name": main or "<console>", "mlflow.source.type": "LOCAL"}
    if main:
        directory = os.path.dirname(os.path.abspath(main))
        for tag, args in (("mlflow.source.git.commit", ["rev-parse", "HEAD"]),
                          ("mlflow.source.git.branch", ["rev-parse", "--abbrev-ref", "HEAD"]),
                          ("mlflow.source.git.repoURL", ["remote", "get-url", "origin"])):
            value = _git(directory, args)
            if value is None and tag.endswith("commit"):
                break  # not a repository: no git tags, as MLflow
            if value:
                tags[tag] = redact_uri(value)
    return tags


def _git(directory: str, args: list[str]) -> str | None:
    try:
        out = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=2,
                             check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return value if out.returncode == 0 and value else None
