"""Reading sweeps back without re-running them: the logic of ``sweeper ls/status/best/export``.

    .sweeper/<name>/study.journal  --read only--> optuna.Study --Totals, outcome--> plain dicts --> table | JSON
    .sweeper/<name>/lock           --flock held?--> "running" (and whose pid)
    .sweeper/<name>/processes.json --while running--> the sweep's processes, for ``status``

The study, read whole, is the one source of truth: the state comes from the lock and from how
the last session said it ended (the study attr ``sweeper_outcome``, written at the start of every
session and at its end), the counts from ``engine.study.Totals`` (what the progress line and the
MLflow parent count), the best trial from Optuna's ``study.best_trial``. Everything here reads;
nothing writes (a running coordinator stays the journal's only writer, and reading an
append-only journal while it grows is safe: an incomplete last line is skipped). MLflow ids
come from the study's own attrs, so no verb imports mlflow. Optuna is imported inside
functions; each verb returns plain data (``--json`` prints it as it is) and a ``format_*``
function turns it into a human table.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine.study import (
    FAIL_REASON_ATTR,
    JOURNAL,
    OUTCOME_ATTR,
    Totals,
    directions_maximize,
    journal_storage,
    lock_holder,
)
from .errors import SweeperError
from .tracking.records import EXPERIMENT_ATTR, MODEL_URI_ATTR, PARENT_RUN_ATTR, TRACKING_URI_ATTR, run_id_of

STATES = ("complete", "pruned", "fail", "running", "waiting")
PROCESSES = "processes.json"


# --- finding and opening sweeps ---------------------------------------------------------------


def sweep_names(root: str | os.PathLike[str]) -> list[str]:
    """Sweeps under ``root`` (directories holding a study journal), sorted by name."""
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / JOURNAL).is_file())


def load_study(root: str | os.PathLike[str], name: str) -> Any:
    """Open a sweep's study read-only; a missing sweep is a ``SweeperError`` naming the ones
    there, a damaged journal one ``JournalCorrupt`` naming the line."""
    import optuna

    directory = Path(root) / name
    if not (directory / JOURNAL).is_file():
        known = sweep_names(root)
        have = f"sweeps there: {', '.join(known)}" if known else "no sweeps there"
        raise SweeperError(f"no sweep {name!r} in {root} ({have}); run it first, or pass --dir")
    storage = journal_storage(directory)
    studies = storage.get_all_studies()
    if not studies:
        raise SweeperError(f"sweep {name!r} in {root} has no study yet")
    chosen = next((s for s in studies if s.study_name == name), studies[0])
    return optuna.load_study(study_name=chosen.study_name, storage=storage)


def coordinator_pid(root: str | os.PathLike[str], name: str) -> int | None:
    """The pid of the coordinator running the sweep now (the holder of its lock), else None."""
    return lock_holder(Path(root) / name)


def running_processes(root: str | os.PathLike[str], name: str) -> dict[str, Any] | None:
    """The processes of a running sweep as it lists them (coordinator, Manager, MLflow writer,
    workers with host and pid); None when it is not running or has not listed them yet."""
    try:
        data = json.loads((Path(root) / name / PROCESSES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- what a study holds, as plain data ----------------------------------------------------------


def state_of(trial: Any) -> str:
    return str(trial.state.name.lower())


def counts(trials: Iterable[Any]) -> dict[str, int]:
    """Trials by state, every state present (zeros included) so tables line up."""
    tally = dict.fromkeys(STATES, 0)
    for trial in trials:
        tally[state_of(trial)] = tally.get(state_of(trial), 0) + 1
    return tally


@dataclass(frozen=True)
class SweepState:
    """Where a sweep stands: ``running`` (a live coordinator holds its lock), ``interrupted``
    (resumable: running the same config again goes on), ``finished``, ``failed`` (the failure
    brake stopped it) or ``empty`` (no trial yet); ``reason`` says why it is not finished."""

    state: str
    reason: str | None = None
    pid: int | None = None


def sweep_state(study: Any, trials: Sequence[Any], pid: int | None) -> SweepState:
    """The state of a sweep from its lock holder (``pid``), the outcome its last session wrote
    and the trials it left; see ``SweepState``."""
    outcome = study.user_attrs.get(OUTCOME_ATTR)
    outcome = outcome if isinstance(outcome, dict) else {}
    if pid is not None:
        return SweepState("running", None, pid)
    said, reason = outcome.get("outcome"), outcome.get("reason")
    left = counts(trials)
    if not trials:
        return SweepState("interrupted" if said == "interrupted" else "empty", reason)
    why = []
    if said == "running":
        why.append("its coordinator stopped without finishing (killed?)")
    elif said == "interrupted":
        why.append(reason or "interrupted")
    if left["running"]:
        why.append(f"{left['running']} trial(s) left running")
    if left["waiting"]:
        why.append(f"{left['waiting']} trial(s) queued")
    if not said and not why:
        last = max(trials, key=lambda t: t.number)
        if last.system_attrs.get(FAIL_REASON_ATTR) == "interrupted":  # a study from before outcomes
            why.append("interrupted")
    if why:
        return SweepState("interrupted", "; ".join(why))
    if said == "failed":
        return SweepState("failed", reason)
    return SweepState("finished", reason)


def sweep_target(study: Any) -> int | None:
    """The sweep's ``n_trials`` (its total over every session), as its last session had it;
    None for a sweep that runs until a timeout."""
    outcome = study.user_attrs.get(OUTCOME_ATTR)
    target = outcome.get("n_trials") if isinstance(outcome, dict) else None
    return target if isinstance(target, int) else None


def directions_of(study: Any) -> list[str]:
    return [d.name.lower() for d in study.directions]


def trial_record(study: Any, trial: Any) -> dict[str, Any]:
    """One trial as JSON-ready data."""
    values = None if trial.values is None else [_number(v) for v in trial.values]
    return {
        "number": trial.number,
        "state": state_of(trial),
        "value": values[0] if values and len(values) == 1 else None,
        "values": values,
        "params": {k: _plain(v) for k, v in trial.params.items()},
        "run_id": run_id_of(study, trial),
        "datetime_start": _iso(trial.datetime_start),
        "datetime_complete": _iso(trial.datetime_complete),
        "duration_s": _duration_s(trial),
    }


def best_trials(study: Any) -> list[Any]:
    """The best trial (single objective: Optuna's ``study.best_trial``, ties as Optuna breaks
    them -- the one definition of best every view uses) or the Pareto front in trial order;
    [] if none complete."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial]
    return sorted(study.best_trials, key=lambda t: t.number)


def mlflow_ids(study: Any) -> dict[str, Any]:
    attrs = study.user_attrs
    return {
        "tracking_uri": attrs.get(TRACKING_URI_ATTR),
        "experiment_id": attrs.get(EXPERIMENT_ATTR),
        "parent_run_id": attrs.get(PARENT_RUN_ATTR),
        "model_uri": attrs.get(MODEL_URI_ATTR),
    }


def _overview(root: str | os.PathLike[str], name: str, study: Any, trials: Sequence[Any]) -> dict[str, Any]:
    """What ``ls`` and ``status`` both say of a sweep."""
    state = sweep_state(study, trials, coordinator_pid(root, name))
    totals = Totals.of(trials, directions_maximize(study))
    best = best_trials(study)
    single = len(study.directions) == 1
    return {
        "name": name,
        "state": state.state,
        "reason": state.reason,
        "pid": state.pid,
        "directions": directions_of(study),
        "n_trials": sweep_target(study),  # the sweep's total, as the progress line shows it
        "n_done": totals.counted,  # finished trials that count toward it, as the progress line counts them
        "n_finished": totals.finished,
        "counts": counts(trials),
        "best_value": _number(best[0].values[0]) if single and best else None,
        "best_trial": best[0].number if single and best else None,
        "pareto_front_size": None if single else len(best),
        "last_activity": _iso(_last_activity(trials)),
    }


# --- the verbs ----------------------------------------------------------------------------------


def list_sweeps(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``sweeper ls``: every sweep under ``root`` with its state, trial counts and best value."""
    rows: list[dict[str, Any]] = []
    for name in sweep_names(root):
        try:
            study = load_study(root, name)
        except SweeperError as exc:  # one unreadable journal must not hide the rest
            rows.append({"name": name, "state": "unreadable", "error": str(exc)})
            continue
        rows.append(_overview(root, name, study, study.get_trials(deepcopy=False)))
    return rows


def sweep_status(root: str | os.PathLike[str], name: str, *, now: _dt.datetime | None = None) -> dict[str, Any]:
    """``sweeper status``: state and why, counts by state, the trials running now, the best so
    far, and the sweep's processes while it runs."""
    study = load_study(root, name)
    trials = study.get_trials(deepcopy=False)
    overview = _overview(root, name, study, trials)
    now = now or _dt.datetime.now()
    running = [t for t in trials if state_of(t) == "running"]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    reasons: dict[str, int] = {}
    for trial in trials:
        reason = trial.system_attrs.get(FAIL_REASON_ATTR)
        if state_of(trial) == "fail" and reason:
            reasons[reason] = reasons.get(reason, 0) + 1
    return {
        **overview,
        "processes": running_processes(root, name) if overview["state"] == "running" else None,
        "failure_reasons": dict(sorted(reasons.items())),
        "first_start": _iso(min(starts) if starts else None),
        "running": [
            {**trial_record(study, t), "running_for_s": _seconds(now - t.datetime_start) if t.datetime_start else None}
            for t in sorted(running, key=lambda t: t.number)
        ],
        "best": [trial_record(study, t) for t in best_trials(study)],
        **mlflow_ids(study),
    }


def best_of(root: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """``sweeper best``: the best trial (or the Pareto front) with its params and MLflow run."""
    study = load_study(root, name)
    return best_summary(study, name)


def best_summary(study: Any, name: str | None = None) -> dict[str, Any]:
    """The best trial (or the Pareto front) of ``study`` as ``sweeper best --json`` and the
    report's ``best.json`` give it (one definition of best: ``best_trials``)."""
    best = [trial_record(study, t) for t in best_trials(study)]
    result: dict[str, Any] = {"name": name or study.study_name, "directions": directions_of(study)}
    if len(study.directions) == 1:
        result["best"] = best[0] if best else None
    else:
        result["pareto_front"] = best
        metric_names = getattr(study, "metric_names", None)
        if metric_names:
            result["metric_names"] = list(metric_names)
    result.update(mlflow_ids(study))
    return result


def trials_frame(study: Any) -> Any:
    """The full trials table (``study.trials_dataframe()``) plus each trial's MLflow run id and
    failure reason; system attrs (tracebacks) are left out."""
    import pandas

    frame = study.trials_dataframe(multi_index=False)
    system = [c for c in frame.columns if c.startswith("system_attrs_")]
    frame = frame.drop(columns=system)
    if "duration" in frame.columns:  # a pandas Timedelta prints as "0 days 00:00:00.63"
        frame["duration"] = frame["duration"].dt.total_seconds()
        frame = frame.rename(columns={"duration": "duration_s"})
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    numbers = frame["number"].tolist() if "number" in frame.columns else []
    for column in [c for c in frame.columns if c.startswith("params_")]:
        # each value as the trial holds it: pandas makes a column of [0.1, 1, 10] floats (1.0)
        name = column[len("params_"):]
        frame[column] = pandas.Series([trials[n].params.get(name) for n in numbers], index=frame.index,
                                      dtype=object)
    frame["mlflow_run_id"] = [run_id_of(study, trials[n]) for n in numbers]
    frame["fail_reason"] = [trials[n].system_attrs.get("sweeper:fail_reason") for n in numbers]
    return frame


def export_csv(root: str | os.PathLike[str], name: str, path: str) -> int:
    """``sweeper export``: write the trials table as CSV (``-`` is stdout); returns the row count."""
    import sys

    frame = trials_frame(load_study(root, name))
    if path == "-":
        frame.to_csv(sys.stdout, index=False)
    else:
        target = Path(path)
        if target.parent and not target.parent.is_dir():
            raise SweeperError(f"cannot write {path}: directory {target.parent} does not exist")
        tmp = target.with_name(f".{target.name}.tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, target)  # no half-written CSV if we are interrupted
    return len(frame)


# --- human output -------------------------------------------------------------------------------


def format_ls(rows: Sequence[Mapping[str, Any]], root: str) -> str:
    if not rows:
        return f"no sweeps in {root} (a sweep appears there once `sweeper run` starts it)"
    header = ("NAME", "STATE", "DONE", "COMPLETE", "FAILED", "PRUNED", "RUNNING", "BEST", "TRIAL", "LAST ACTIVITY")
    table = []
    problems = []
    for row in rows:
        if row["state"] == "unreadable":
            table.append((row["name"], "unreadable", "-", "", "", "", "", "-", "", "-"))
            problems.append(f"{row['name']}: {row['error']}")
            continue
        tally = row["counts"]
        if row["pareto_front_size"] is not None:
            best, trial = f"{row['pareto_front_size']} on Pareto front", ""
        else:
            best = _fmt(row["best_value"]) if row["best_value"] is not None else "-"
            trial = f"#{row['best_trial']}" if row["best_trial"] is not None else ""
        state = row["state"] + (f" (pid {row['pid']})" if row["pid"] else "")
        done = f"{row['n_done']}/{row['n_trials']}" if row["n_trials"] else str(row["n_done"])
        table.append((
            row["name"], state, done, str(tally["complete"]), str(tally["fail"]),
            str(tally["pruned"]), str(tally["running"]), best, trial, _short_time(row["last_activity"]),
        ))
    return "\n".join([_table(header, table), *problems])


def format_status(status: Mapping[str, Any]) -> str:
    tally = status["counts"]
    state = status["state"] + (f" (coordinator pid {status['pid']})" if status["pid"] else "")
    if status["reason"] and status["state"] != "running":
        state += f": {status['reason']}"
    lines = [f"sweep {status['name']!r}: {state}; {' / '.join(status['directions'])}"]
    if status["state"] == "interrupted":
        lines.append("  run the same config again to resume it")
    target = f"/{status['n_trials']}" if status["n_trials"] else ""
    lines.append(
        f"trials: {status['n_done']}{target} done; {status['n_finished']} finished ({tally['complete']} complete, "
        f"{tally['fail']} failed, {tally['pruned']} pruned), {tally['running']} running, {tally['waiting']} waiting"
    )
    if status["failure_reasons"]:
        lines.append("failures: " + ", ".join(f"{k} x{v}" for k, v in status["failure_reasons"].items()))
    if status["first_start"]:
        lines.append(f"first trial started {_short_time(status['first_start'])}, "
                     f"last activity {_short_time(status['last_activity'])}")
    best = status["best"]
    if len(status["directions"]) == 1:
        lines.append("best so far: " + (_trial_line(best[0]) if best else "none (no trial complete yet)"))
    else:
        lines.append(f"Pareto front so far: {len(best)} trial(s)")
        lines += ["  " + _trial_line(t) for t in best]
    if status["running"]:
        lines.append("running now:")
        for trial in status["running"]:
            took = trial["running_for_s"]
            params = _params(trial["params"]) or "(no params yet)"
            lines.append(f"  #{trial['number']:<4} for {took:.1f}s  {params}" if took is not None
                         else f"  #{trial['number']:<4} {params}")
    if status.get("processes"):
        lines.append(_processes_line(status["processes"]))
    lines += _mlflow_lines(status)
    return "\n".join(lines)


def _processes_line(processes: Mapping[str, Any]) -> str:
    named = [("coordinator", processes.get("coordinator")), ("Manager", processes.get("manager_pid")),
             ("MLflow writer", processes.get("recorder_pid"))]
    parts = [f"{what} {pid}" for what, pid in named if pid]
    workers = processes.get("workers") or {}
    if isinstance(workers, Mapping) and workers:
        parts.append("workers " + ", ".join(f"{w.get('host')}:{w.get('pid')}" for w in workers.values()
                                            if isinstance(w, Mapping)))
    return "processes: " + "; ".join(parts)


def format_best(best: Mapping[str, Any]) -> str:
    if "pareto_front" in best:
        front = best["pareto_front"]
        if not front:
            return f"sweep {best['name']!r}: no trial complete yet"
        names = best.get("metric_names") or [f"values[{i}]" for i in range(len(best["directions"]))]
        goal = ", ".join(f"{n} ({d})" for n, d in zip(names, best["directions"]))
        lines = [f"sweep {best['name']!r}: Pareto front of {len(front)} trial(s) over {goal}"]
        header = ("TRIAL", *names, "RUN ID", "PARAMS")
        rows = [(f"#{t['number']}", *(_fmt(v) for v in t["values"]), t["run_id"] or "-", _params(t["params"]))
                for t in front]
        lines.append(_table(header, rows))
    else:
        trial = best["best"]
        if trial is None:
            return f"sweep {best['name']!r}: no trial complete yet"
        lines = [
            f"sweep {best['name']!r}: best trial #{trial['number']} ({best['directions'][0]})",
            f"  value:  {_fmt(trial['value'])}",
            f"  run id: {trial['run_id'] or '-'}",
            "  params:",
            *(f"    {k}: {_plain_text(v)}" for k, v in trial["params"].items()),
        ]
    lines += _mlflow_lines(best)
    return "\n".join(lines)


def _mlflow_lines(data: Mapping[str, Any]) -> list[str]:
    lines = []
    if data.get("parent_run_id"):
        lines.append(f"MLflow: experiment {data.get('experiment_id') or '?'}, parent run {data['parent_run_id']}"
                     + (f", store {data['tracking_uri']}" if data.get("tracking_uri") else ""))
    if data.get("model_uri"):
        lines.append(f"best model: {data['model_uri']}  (mlflow.sklearn.load_model)")
    return lines


def _trial_line(trial: Mapping[str, Any]) -> str:
    values = ",".join(_fmt(v) for v in trial["values"] or [])
    return f"#{trial['number']} value {values}  run {trial['run_id'] or '-'}  {_params(trial['params'])}".rstrip()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_plain_text(v)}" for k, v in params.items())


def _plain_text(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    return "null" if value is None else str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _plain(value: Any) -> Any:
    """A param value JSON can hold as it is (numpy scalars and the like become str)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: those become null."""
    return float(value) if math.isfinite(value) else None


def _iso(moment: _dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _short_time(text: str | None) -> str:
    return "-" if not text else text.replace("T", " ")


def _duration_s(trial: Any) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return _seconds(trial.datetime_complete - trial.datetime_start)


def _seconds(delta: _dt.timedelta) -> float:
    return round(delta.total_seconds(), 3)


def _last_activity(trials: Iterable[Any]) -> _dt.datetime | None:
    moments = [m for t in trials for m in (t.datetime_start, t.datetime_complete) if m is not None]
    return max(moments) if moments else None
