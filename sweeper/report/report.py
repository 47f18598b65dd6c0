"""What a finished sweep leaves on its MLflow parent run besides metrics: plots, the trials
table, best.json, the best model and the dataset's lineage. Runs in the coordinator after the
sweep, or on the next run of a sweep whose report a kill or a store problem skipped.

    study (journal) --plots.start_plots (forked child)--> plots/*.png, trials.csv, importances --+
                    --best trial (Optuna's)-----------> best.json                               --+--> parent run artifacts
    config model + data --model.log_best_model / log_dataset--> best child run, parent's inputs
    last: the parent's tag ``sweeper.report`` and the study's ``sweeper_report`` say what it covers

Every step is optional and guarded on its own (``steps.step``): a plot that cannot be drawn is
left out, and any failure is one warning line on stderr, never a failed sweep. It runs after
the MLflow writer closed, with the sweep lock still held, so it is the only writer of both the
store and the study. Its scratch files live in the sweep's own directory (``report-*``, removed
after it and, when a kill left one, before the next). Heavy imports stay inside functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import results as _results
from .._redact import redact_uri
from ..tracking import records as _records
from .model import (
    BEST_MODEL_RUN_URI_TAG,
    BEST_MODEL_URI_TAG,
    MODEL_NAME,
    REGISTERED_TAG,
    load_data,
    log_best_model,
    log_dataset,
    register_best_model,
    serialization_format,
)
from .plots import (
    finish_plots,
    importance_note,
    param_importances,
    read_importances,
    render_html,
    render_plots,
    start_plots,
    stop_plots,
    write_trials_table,
)
from .steps import describe, step, timed, warn

logger = logging.getLogger("sweeper")

__all__ = [
    "BEST_MODEL_RUN_URI_TAG", "BEST_MODEL_URI_TAG", "MODEL_NAME", "PLOTS_DIR", "REGISTERED_TAG", "REPORT_ATTR",
    "REPORT_TAG", "finalize_sweep", "has_report", "param_importances", "register_best_model", "render_html",
    "render_plots", "serialization_format", "write_report",
]

PLOTS_DIR = "plots"
#: Parent-run tag the report sets last: what it covers (``covers``). Absent: no whole report yet.
REPORT_TAG = "sweeper.report"
#: Study user attr with the same, and the parent run it went to: read without importing mlflow.
REPORT_ATTR = "sweeper_report"
#: Tells the MLflow UI this experiment holds training runs (not GenAI traces).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def finalize_sweep(cfg: Any, result: Any, *, only_if_missing: bool = False) -> bool:
    """Write the end-of-sweep report for a config sweep (``result`` is ``sweep.SweepResult``);
    True when it was written. ``only_if_missing``: only when the parent run has no report of
    the study as it is now (``has_report``): a sweep with nothing left to run whose report a
    kill, a Ctrl-C or a store problem skipped gets it; one that has it costs nothing (no mlflow
    import).

    Never raises for a reporting problem: the sweep itself already succeeded. Ctrl-C while it
    runs skips the rest of the report (running the sweep again writes it).
    """
    if result.tracking_uri is None or result.parent_run_id is None:
        return False
    if only_if_missing and has_report(result.study, result.parent_run_id):
        return False
    started = time.perf_counter()
    try:
        write_report(cfg, result)
        logger.info("sweep report written in %.1fs", time.perf_counter() - started)
    except KeyboardInterrupt:
        warn("end-of-sweep report interrupted; run the sweep again to write it")
        return False
    except Exception as exc:  # noqa: BLE001 - reporting must never fail the sweep
        warn(f"could not write the end-of-sweep report: {describe(exc)}")
        return False
    return True


def covers(study: Any) -> str:
    """What a report of ``study`` as it is now shows: its trials and its best one."""
    counted = _results.counts(study.get_trials(deepcopy=False))
    best = _results.best_trials(study)
    best_text = ",".join(str(t.number) for t in best) or "none"
    return (f"{sum(counted.values())} trials ({counted['complete']} complete, {counted['fail']} failed, "
            f"{counted['pruned']} pruned); best {best_text}")


def has_report(study: Any, parent_run_id: str) -> bool:
    """Whether ``parent_run_id`` already holds a whole report of the study as it is now."""
    done = study.user_attrs.get(REPORT_ATTR)
    return (isinstance(done, dict) and done.get("parent_run_id") == parent_run_id
            and done.get("covers") == covers(study))


def write_report(cfg: Any, result: Any) -> dict[str, Any]:
    """Plots, trials table, dataset lineage and best model on the parent run; returns what was
    written (paths, model URI, dataset) for the caller and the tests."""
    from optuna.trial import TrialState

    study, uri, parent = result.study, result.tracking_uri, result.parent_run_id
    report: dict[str, Any] = {"artifacts": [], "model_uri": None, "dataset": None}
    step("remember the tracking store", lambda: _remember_store(study, uri))
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    logger.info("writing the sweep report to MLflow parent run %s", parent)
    builtin = getattr(cfg, "objective", None) is None and getattr(cfg, "model", None) is not None
    interrupted = getattr(result.summary, "signal", None) is not None
    refit = builtin and n_complete > 0 and len(study.directions) == 1 and not interrupted
    importances: dict[str, float] | None = None if n_complete >= 2 else {}  # fANOVA compares trials
    drawing = None
    uploaded = described = False
    with _scratch(cfg) as tmp, contextlib.ExitStack() as stack:
        out = tmp / "report"  # uploaded as it is
        out.mkdir()
        ranked = tmp / "importances.json"  # the plot child's importances, for this process
        table = tmp / "trials.csv"  # the plot child's trials table, moved into the report
        if n_complete:  # first, before mlflow is imported: the plot child's work overlaps all the rest
            drawing = step("start drawing plots", lambda: start_plots(
                study, out / PLOTS_DIR, ranked if importances is None else None, table_path=table))
            if drawing is not None:
                stack.callback(stop_plots, drawing)  # Ctrl-C or an error: no child left behind
        with timed("import mlflow and open the store", indent=""):
            from mlflow import MlflowClient

            client = MlflowClient(uri)
            client.get_experiment_by_name("Default")  # the store's first use loads its SQL modules
        data = step("load the dataset", lambda: load_data(cfg)) if builtin else None
        if data is not None:
            report["dataset"] = step("log the dataset", lambda: log_dataset(client, parent, cfg, *data))
            if refit:
                model = step("log the best model", lambda: log_best_model(client, cfg, result, *data))
                if model is not None:
                    report["model_uri"] = model["model_uri"]
        drawn = drawing is not None and bool(step("wait for the plots", lambda: finish_plots(drawing)))
        if table.exists():  # written by the plot child
            os.replace(table, out / "trials.csv")
        else:
            step("write trials.csv", lambda: write_trials_table(study, out / "trials.csv"))
        if n_complete:
            if importances is None and drawing is not None:
                importances = read_importances(ranked)  # None: the child did not get that far
            if importances is None:
                importances = step("compute parameter importances", lambda: param_importances(study)) or {}
            if not drawn:
                step("draw plots", lambda: render_plots(study, out / PLOTS_DIR, importances))
            step("draw interactive plots", lambda: render_html(study, out / PLOTS_DIR, importances))
            step("write best.json", lambda: _write_best(study, out / "best.json", report))
        report["artifacts"] = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        uploaded = not report["artifacts"] or step("upload the report", lambda: _upload(client, parent, out)) is True
    importances = importances or {}
    if importances:
        step("log importances", lambda: _log_importances(client, parent, importances))
    step("tag the best trial", lambda: _tag_best(client, result))
    described = step("describe the parent run", lambda: _describe_parent(client, result, report, importances)) is True
    experiment_id = study.user_attrs.get(_records.EXPERIMENT_ATTR)
    if experiment_id:
        step("tag the experiment", lambda: client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND))
    if uploaded and described:
        step("mark the report written", lambda: _mark_written(client, result))
    return report


# --- where it works -----------------------------------------------------------------------------


@contextlib.contextmanager
def _scratch(cfg: Any) -> Iterator[Path]:
    """A scratch directory in the sweep's own directory (``<storage_dir>/<name>/report-*``),
    removed afterwards; one a killed report left there is removed first. A caller without a
    sweep directory gets one in the system's temp directory."""
    name = getattr(cfg, "name", None)
    home = Path(getattr(cfg, "storage_dir", None) or ".sweeper") / name if isinstance(name, str) else None
    if home is not None and home.is_dir():
        for stale in home.glob("report-*"):
            shutil.rmtree(stale, ignore_errors=True)
    else:
        home = None
    with tempfile.TemporaryDirectory(prefix="report-" if home else "sweeper-report-", dir=home) as tmp:
        yield Path(tmp)


# --- the parent run's summary -------------------------------------------------------------------


def _remember_store(study: Any, uri: str) -> None:
    """Keep the store's URI in the study so ``sweeper ui NAME`` finds it; never credentials."""
    if redact_uri(uri) != uri:
        return
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + os.path.abspath(uri[len("sqlite:///"):])  # relative to where it ran
    if study.user_attrs.get(_records.TRACKING_URI_ATTR) != uri:
        study.set_user_attr(_records.TRACKING_URI_ATTR, uri)


def _write_best(study: Any, path: Path, report: Mapping[str, Any]) -> None:
    """best.json: what ``sweeper best --json`` says (``results.best_summary``), as of the report."""
    data = _results.best_summary(study)
    data["study"] = data.pop("name")
    data["model_uri"] = report.get("model_uri") or data.get("model_uri")
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _tag_best(client: Any, result: Any) -> None:
    """The parent's ``sweeper.best_trial``/``sweeper.best_run_id`` as the report sees them:
    Optuna's ``best_trial``, the one definition of best (the writer set them as trials finished,
    with the same tie-break: this makes sure)."""
    study = result.study
    best = _results.best_trials(study)
    if len(study.directions) != 1 or not best:
        return
    tags = {"sweeper.best_trial": str(best[0].number)}
    run_id = result.run_ids.get(best[0].number) or _records.run_id_of(study, best[0])
    if run_id:
        tags["sweeper.best_run_id"] = run_id
    current = client.get_run(result.parent_run_id).data.tags
    for key, value in tags.items():
        if current.get(key) != value:
            client.set_tag(result.parent_run_id, key, value)


def _log_importances(client: Any, run_id: str, importances: Mapping[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"importance.{name}", value, now, 0) for name, value in importances.items()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def _upload(client: Any, run_id: str, out: Path) -> bool:
    client.log_artifacts(run_id, str(out))
    return True


def _describe_parent(client: Any, result: Any, report: Mapping[str, Any], importances: Mapping[str, float]) -> bool:
    """The parent run's description (``mlflow.note.content``, shown on its page): the story of
    the sweep in a few Markdown lines."""
    study = result.study
    tally = _results.counts(study.get_trials(deepcopy=False))
    directions = " / ".join(_results.directions_of(study))
    lines = [
        (f"**Sweep `{study.study_name}`** ({directions}): {tally['complete']} complete, "
         f"{tally['fail']} failed, {tally['pruned']} pruned trials; one child run per trial."),
        "",
    ]
    experiment = study.user_attrs.get(_records.EXPERIMENT_ATTR)
    best = _results.best_trials(study)
    for trial in best[:10]:
        values = ", ".join(f"{v:.6g}" for v in trial.values)
        params = ", ".join(f"{k}={_results._plain_text(v)}" for k, v in trial.params.items())
        run_id = _records.run_id_of(study, trial)
        link = f" ([child run](#/experiments/{experiment}/runs/{run_id}))" if run_id and experiment else ""
        label = "Best trial" if len(best) == 1 else "Pareto front: trial"
        lines.append(f"- **{label} #{trial.number}**: {values}; {params}{link}")
    if report.get("model_uri"):
        uri = report["model_uri"]
        lines.append(f"- **Best model** (refit on all data): `{uri}`; load it with "
                     f"`mlflow.sklearn.load_model(\"{uri}\")`")
    if report.get("dataset"):
        ds = report["dataset"]
        shape = " x ".join(map(str, ds["shape"]))
        lines.append(f"- **Dataset**: `{ds['name']}` ({shape}), digest `{ds['digest']}`")
    if importances:
        ranked = ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:6])
        sampled = importance_note(study)
        lines.append(f"- **Parameter importances** (fANOVA{', ' + sampled if sampled else ''}): {ranked}")
    plots = [a for a in report.get("artifacts", []) if a.startswith(PLOTS_DIR + "/")]
    if plots:
        lines.append(f"- **Plots** (Artifacts tab): {', '.join(Path(p).name for p in plots)}; "
                     "full table: `trials.csv`")
    client.set_tag(result.parent_run_id, "mlflow.note.content", "\n".join(lines))
    return True


def _mark_written(client: Any, result: Any) -> None:
    """Last: the parent says it has a whole report, and of what (``has_report``)."""
    study = result.study
    what = covers(study)
    client.set_tag(result.parent_run_id, REPORT_TAG, what)
    marker = {"parent_run_id": result.parent_run_id, "covers": what}
    if study.user_attrs.get(REPORT_ATTR) != marker:
        study.set_user_attr(REPORT_ATTR, marker)
