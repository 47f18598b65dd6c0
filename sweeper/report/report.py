"""What a finished sweep leaves on its MLflow parent run besides metrics: plots, the trials
table, the best model and the dataset's lineage. Runs in the coordinator after the sweep.

    study (journal) --optuna.visualization.matplotlib (Agg)--> plots/*.png   --+
                    --trials_dataframe + run ids----------------> trials.csv  --+--> parent run artifacts
                    --best trial------------------------------> best.json   --+
    config model + data --refit best params on all data--> mlflow.sklearn.log_model --> best child run
    config data --mlflow.data.from_numpy/from_pandas--> log_inputs --> parent run (lineage)

Every step is optional and guarded on its own: a plot that cannot be drawn (one trial, one
parameter) is left out, and any failure is one warning line on stderr, never a failed sweep.
It runs after the MLflow writer closed, with the sweep lock still held, so it is the
only writer of both the store and the study. On Linux the parameter importances (fANOVA, once)
and the plots are computed by a child forked first thing, while this process imports mlflow,
opens the store, logs the dataset and refits and logs the best model: the two cores share the
report's CPU (the child only reads the study). Heavy imports stay inside functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .. import results as _results
from ..tracking import records as _records
from .._redact import redact_uri

logger = logging.getLogger("sweeper")
T = TypeVar("T")

# Parent-run tags that link the sweep to its best model (README "What lands in MLflow").
BEST_MODEL_URI_TAG = "sweeper.best_model_uri"
BEST_MODEL_RUN_URI_TAG = "sweeper.best_model_run_uri"
REGISTERED_TAG = "sweeper.registered_model"
MODEL_NAME = "model"
PLOTS_DIR = "plots"
#: Tells the MLflow UI this experiment holds training runs (not GenAI traces).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def finalize_sweep(cfg: Any, result: Any) -> None:
    """Write the end-of-sweep artifacts for a config sweep (``result`` is ``api.SweepResult``).

    Never raises for a reporting problem: the sweep itself already succeeded. Ctrl-C while it
    runs skips the rest of the report (running the sweep again writes it).
    """
    if result.tracking_uri is None or result.parent_run_id is None:
        return
    try:
        write_report(cfg, result)
    except KeyboardInterrupt:
        _warn("end-of-sweep report interrupted; run the sweep again to write it")
    except Exception as exc:  # noqa: BLE001 - reporting must never fail the sweep
        _warn(f"could not write the end-of-sweep report: {_describe(exc)}")


def write_report(cfg: Any, result: Any) -> dict[str, Any]:
    """Plots, trials table, dataset lineage and best model on the parent run; returns what was
    written (paths, model URI, dataset) for the caller and the tests."""
    from optuna.trial import TrialState

    study, uri, parent = result.study, result.tracking_uri, result.parent_run_id
    report: dict[str, Any] = {"artifacts": [], "model_uri": None, "dataset": None}
    _step("remember the tracking store", lambda: _remember_store(study, uri))
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    logger.info("writing the sweep report to MLflow parent run %s", parent)
    builtin = getattr(cfg, "objective", None) is None and getattr(cfg, "model", None) is not None
    interrupted = result.summary.signal is not None
    refit = builtin and n_complete > 0 and len(study.directions) == 1 and not interrupted
    importances: dict[str, float] | None = None if n_complete >= 2 else {}  # fANOVA compares trials
    drawing = None
    with tempfile.TemporaryDirectory(prefix="sweeper-report-") as tmp, contextlib.ExitStack() as stack:
        out = Path(tmp) / "report"  # uploaded as it is
        out.mkdir()
        ranked = Path(tmp) / "importances.json"  # the plot child's importances, for this process
        table = Path(tmp) / "trials.csv"  # the plot child's trials table, moved into the report
        if n_complete:  # first, before mlflow is imported: the plot child's work overlaps all the rest
            drawing = _step("start drawing plots", lambda: start_plots(
                study, out / PLOTS_DIR, ranked if importances is None else None, table_path=table))
            if drawing is not None:
                stack.callback(_stop_plots, drawing)  # Ctrl-C or an error: no child left behind
        with _timed("import mlflow and open the store", indent=""):
            from mlflow import MlflowClient

            client = MlflowClient(uri)
            client.get_experiment_by_name("Default")  # the store's first use loads its SQL modules
        data = _step("load the dataset", lambda: _load_data(cfg)) if builtin else None
        if data is not None:
            report["dataset"] = _step("log the dataset", lambda: log_dataset(client, parent, cfg, *data))
            if refit:
                model = _step("log the best model", lambda: log_best_model(client, cfg, result, *data))
                if model is not None:
                    report["model_uri"] = model["model_uri"]
        drawn = drawing is not None and bool(_step("wait for the plots", lambda: finish_plots(drawing)))
        if table.exists():  # written by the plot child
            os.replace(table, out / "trials.csv")
        else:
            _step("write trials.csv", lambda: write_trials_table(study, out / "trials.csv"))
        if n_complete:
            if importances is None and drawing is not None:
                importances = _read_importances(ranked)  # None: the child did not get that far
            if importances is None:
                importances = _step("compute parameter importances", lambda: param_importances(study)) or {}
            if not drawn:
                _step("draw plots", lambda: render_plots(study, out / PLOTS_DIR, importances))
            _step("draw interactive plots", lambda: render_html(study, out / PLOTS_DIR, importances))
            _step("write best.json", lambda: _write_best(study, out / "best.json", report))
        report["artifacts"] = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        if report["artifacts"]:
            _step("upload the report", lambda: client.log_artifacts(parent, str(out)))
    importances = importances or {}
    if importances:
        _step("log importances", lambda: _log_importances(client, parent, importances))
    _step("describe the parent run", lambda: _describe_parent(client, result, report, importances))
    experiment_id = study.user_attrs.get(_records.EXPERIMENT_ATTR)
    if experiment_id:
        _step("tag the experiment", lambda: client.set_experiment_tag(experiment_id, *EXPERIMENT_KIND))
    return report


# --- plots --------------------------------------------------------------------------------------


def param_importances(study: Any) -> dict[str, float]:
    """Optuna's default evaluator (fANOVA), seeded so a report is reproducible; for several
    objectives, the importances for the first."""
    import warnings

    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    target = None if len(study.directions) == 1 else (lambda t: t.values[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = optuna.importance.get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), target=target
        )
    return {name: float(value) for name, value in found.items()}


def render_plots(study: Any, out: Path, importances: Mapping[str, float] | None = None) -> list[Path]:
    """Draw Optuna's matplotlib plots of the study as PNG files in ``out``; returns those made.

    Single objective: optimization history, parameter importances, parallel coordinates, slice
    (top 4 parameters), contour (top 2), timeline, intermediate values (when reported).
    Several objectives: Pareto front, importances, parallel coordinates (first objective), timeline.
    The importances plot shows ``importances`` when they are given for a single objective (the
    same seeded fANOVA, not computed twice); else it runs fANOVA itself.
    """
    import warnings

    import optuna
    import optuna.visualization.matplotlib as vis
    from optuna.importance import FanovaImportanceEvaluator

    out.mkdir(parents=True, exist_ok=True)
    names = _param_names(study)  # params of complete trials; none to compare with fewer than 2
    if len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))) < 2:
        names = []
    top = [p for p in (importances or {}) if p in names] or names
    single = len(study.directions) == 1
    first = None if single else (lambda t: t.values[0])
    target_name = _target_names(study)[0]
    evaluator = (_known_importances(importances) if single and importances and set(importances) == set(names)
                 else FanovaImportanceEvaluator(seed=0))
    plots: list[tuple[str, Callable[[], Any]]] = []
    if single:
        plots.append(("optimization_history", lambda: vis.plot_optimization_history(study, target_name=target_name)))
    elif len(study.directions) in (2, 3):
        plots.append(("pareto_front", lambda: vis.plot_pareto_front(study, target_names=_target_names(study))))
    if names:
        plots.append(("param_importances", lambda: vis.plot_param_importances(study, evaluator=evaluator)))
        plots.append(("parallel_coordinate", lambda: vis.plot_parallel_coordinate(
            study, params=top[:8], target=first, target_name=target_name)))
    if single and names:
        plots.append(("slice", lambda: vis.plot_slice(study, params=top[:4], target_name=target_name)))
    if single and len(names) >= 2:
        plots.append(("contour", lambda: vis.plot_contour(study, params=top[:2], target_name=target_name)))
    plots.append(("timeline", lambda: vis.plot_timeline(study)))
    if single and any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        plots.append(("intermediate_values", lambda: vis.plot_intermediate_values(study)))
    written = []
    with _agg_pyplot() as plt, warnings.catch_warnings(), _quiet("optuna"):
        warnings.simplefilter("ignore")  # ExperimentalWarning, "no trials to plot", ...
        for name, draw in plots:
            path = out / f"{name}.png"
            figure = _step(f"draw {name}", lambda draw=draw, path=path: _save(draw(), path, plt))  # type: ignore[misc]
            if figure is not None:
                written.append(path)
    return written


def _known_importances(importances: Mapping[str, float]) -> Any:
    """An Optuna importance evaluator that returns ``importances`` (``param_importances``'
    result), so the importances plot shows them instead of fitting fANOVA a second time."""
    from optuna.importance import BaseImportanceEvaluator

    class KnownImportances(BaseImportanceEvaluator):  # type: ignore[misc]
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
            wanted = {p: importances[p] for p in (importances if params is None else params)}
            return dict(sorted(wanted.items(), key=lambda kv: kv[1], reverse=True))

    return KnownImportances()


def write_trials_table(study: Any, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    _results.trials_frame(study).to_csv(partial, index=False)
    os.replace(partial, path)  # the parent sees all of it or nothing


def start_plots(study: Any, out: Path, importances_path: Path | None = None, *,
                table_path: Path | None = None) -> Any | None:
    """Draw the plots in a forked child process while this one imports mlflow, opens the store,
    logs the dataset and refits and logs the best model (1.5-2 s, most of it imports): the
    machine's cores are idle once the sweep is over. With ``importances_path``, the child first
    computes the parameter importances (``param_importances``) and writes them there as JSON
    for this process (``_read_importances``): computed once, and off this process' path. Only
    where a fork is cheap and safe: on Linux (the child starts in milliseconds with optuna
    already imported; a spawned one would import optuna again) and while this process has no
    other thread (one could hold a lock the child needs). Otherwise None: computed and drawn
    here, in sequence.

    Until ``finish_plots`` or ``_stop_plots``, the objects this process had are frozen for the
    garbage collector (``gc.freeze``): a full collection in either process would otherwise
    touch every one of them and copy much of the memory the fork shares (0.2-0.4 s of CPU)."""
    import gc
    import multiprocessing
    import threading

    if sys.platform != "linux" or threading.active_count() != 1:
        return None
    child: Any = multiprocessing.get_context("fork").Process(
        target=_draw_in_child, args=(study, out, importances_path, table_path), name="sweeper-plots", daemon=True
    )
    child.sweeper_frozen = gc.get_freeze_count() == 0  # a host's own freeze is left as it is
    if child.sweeper_frozen:
        gc.freeze()
    try:
        child.start()
    except BaseException:
        _unfreeze(child)
        raise
    return child


def finish_plots(child: Any, timeout_s: float = 300.0) -> bool:
    """Wait for ``start_plots``' child; False if it failed or hung (then draw them here)."""
    child.join(timeout_s)
    if child.is_alive():
        _stop_plots(child)
        return False
    _unfreeze(child)
    return child.exitcode == 0


def _stop_plots(child: Any) -> None:
    if child.is_alive():
        child.terminate()
        child.join(5)
    _unfreeze(child)


def _unfreeze(child: Any) -> None:
    import gc

    if getattr(child, "sweeper_frozen", False):
        child.sweeper_frozen = False
        gc.unfreeze()


def _draw_in_child(study: Any, out: Path, importances_path: Path | None, table_path: Path | None = None) -> None:
    """The plot child: exit status 0 when every plot was tried (each failure already one
    warning line); any other problem is a silent non-zero exit, the parent draws them then.
    With ``table_path`` it also writes the trials table (pandas, ~0.15 s) there, off the
    parent's path (the parent writes it if the child did not)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        importances: dict[str, float] = {}
        if importances_path is not None:
            importances = _step("compute parameter importances", lambda: param_importances(study)) or {}
            _write_json(importances_path, importances)
        if table_path is not None:
            with contextlib.suppress(Exception):  # the parent writes it, and reports a failure
                write_trials_table(study, table_path)
        render_plots(study, out, importances)
    except BaseException:  # noqa: BLE001 - reported by the parent, which draws them itself
        os._exit(1)


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)  # the parent sees all of it or nothing


def _read_importances(path: Path) -> dict[str, float] | None:
    """What the plot child wrote (``{}`` when fANOVA failed there: not tried again); None when
    it wrote nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else None


def render_html(study: Any, out: Path, importances: Mapping[str, float] | None = None) -> Path | None:
    """Interactive versions of the main plots in one HTML file, only when plotly is installed
    (plotly.js is embedded once, so the file works offline in the MLflow UI)."""
    import importlib.util

    if importlib.util.find_spec("plotly") is None:
        return None
    import warnings

    import optuna.visualization as vis

    names = _param_names(study)
    top = [p for p in (importances or {}) if p in names] or names
    single = len(study.directions) == 1
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if single:
            figures.append(vis.plot_optimization_history(study))
        elif len(study.directions) in (2, 3):
            figures.append(vis.plot_pareto_front(study))
        if names:
            target = None if single else (lambda t: t.values[0])
            figures.append(vis.plot_parallel_coordinate(study, params=top[:8], target=target))
            if single:
                figures.append(vis.plot_slice(study, params=top[:4]))
    if not figures:
        return None
    out.mkdir(parents=True, exist_ok=True)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    path = out / "interactive.html"
    path.write_text(
        f"<html><head><meta charset='utf-8'><title>{study.study_name}</title></head><body>"
        + "".join(parts) + "</body></html>",
        encoding="utf-8",
    )
    return path


def _save(axes: Any, path: Path, plt: Any) -> Path:
    import numpy as np

    figure = np.ravel(axes)[0].figure
    try:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


@contextlib.contextmanager
def _agg_pyplot() -> Iterator[Any]:
    """pyplot on the non-interactive Agg backend, with rcParams restored afterwards (Optuna's
    plots switch the global style to ggplot). A host that already uses pyplot gets its backend
    back."""
    import matplotlib

    previous = None
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        previous = plt.get_backend()
        plt.switch_backend("Agg")
    else:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    try:
        with matplotlib.rc_context():
            yield plt
    finally:
        if previous is not None and previous.lower() != "agg":
            with contextlib.suppress(Exception):
                plt.switch_backend(previous)


def _param_names(study: Any) -> list[str]:
    from optuna.trial import TrialState

    names: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for name in trial.params:
            names.setdefault(name, None)
    return list(names)


def _target_names(study: Any) -> list[str]:
    names = getattr(study, "metric_names", None)
    if names:
        return list(names)
    if len(study.directions) == 1:
        return ["value"]
    return [f"values[{i}]" for i in range(len(study.directions))]


# --- data and the best model ----------------------------------------------------------------


def _data_spec(cfg: Any) -> dict[str, Any]:
    data = cfg.data
    return {"loader": data.loader, "kwargs": dict(data.kwargs), "file": data.file, "target": data.target}


def _load_data(cfg: Any) -> tuple[Any, Any]:
    from ..objectives.sklearn import load_dataset

    return load_dataset(_data_spec(cfg))


def log_dataset(client: Any, run_id: str, cfg: Any, X: Any, y: Any) -> dict[str, Any]:
    """Log the training data's name, digest, schema and shape as an input of ``run_id``."""
    import warnings

    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "source ... multiple ways", "integer columns"
        dataset = _dataset(cfg.data, X, y)
        # What mlflow.log_input does, without making the (finished) parent run active again.
        entity = dataset._to_mlflow_entity()
    client.log_inputs(run_id, datasets=[DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, "training")])])
    shape = list(getattr(X, "shape", ()))
    return {"name": dataset.name, "digest": dataset.digest, "shape": shape}


def _dataset(data: Any, X: Any, y: Any) -> Any:
    import numpy as np
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.data.pandas_dataset import from_pandas

    if data.file:
        frame = X.copy()
        frame[data.target] = y
        dataset: Any = from_pandas(frame, source=data.file, targets=data.target, name=Path(data.file).name)
    else:
        kwargs = ", ".join(f"{k}={v!r}" for k, v in sorted(data.kwargs.items()))
        name = f"{data.loader}({kwargs})" if kwargs else str(data.loader)
        if hasattr(X, "columns"):  # a loader asked for as_frame=True
            frame = X.copy()
            frame["target"] = np.asarray(y)
            dataset = from_pandas(frame, targets="target", name=name)
        else:
            dataset = from_numpy(np.asarray(X), targets=np.asarray(y), name=name)
    return dataset


def log_best_model(client: Any, cfg: Any, result: Any, X: Any, y: Any) -> dict[str, Any] | None:
    """Refit the best configuration on all the data and log it to the best trial's child run
    with ``mlflow.sklearn.log_model`` (signature and input example included); the parent run
    gets tags pointing at it, and the study remembers its URI for ``sweeper best``."""
    import warnings

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from ..objectives.sklearn import build_estimator

    study = result.study
    best = study.best_trial
    run_id = result.run_ids.get(best.number) or _records.run_id_of(study, best)
    if run_id is None:
        _warn(f"best trial #{best.number} has no MLflow run; its model is not logged")
        return None
    run_uri = f"runs:/{run_id}/{MODEL_NAME}"
    parent_tags = client.get_run(result.parent_run_id).data.tags
    if parent_tags.get(BEST_MODEL_RUN_URI_TAG) == run_uri and parent_tags.get(BEST_MODEL_URI_TAG):
        return {"model_uri": parent_tags[BEST_MODEL_URI_TAG], "run_uri": run_uri, "run_id": run_id,
                "format": None}  # a resumed sweep whose best trial did not change: already logged
    model = build_estimator(cfg.model.estimator, {**cfg.model.params, **best.params}, cap_n_jobs=False)
    with _timed("refit the best model"):
        model.fit(X, y)
    example = X.head(5) if hasattr(X, "head") else X[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "integer columns cannot hold missing values"
        signature = infer_signature(example, model.predict(example))
    fmt = serialization_format()
    requirements = mlflow.sklearn.get_default_pip_requirements(
        include_cloudpickle=fmt == "cloudpickle", include_skops=fmt == "skops"
    ) + _extra_requirements(cfg.model.estimator)
    with _timed("import skops and list the model's types"):
        trusted = _skops_types(model) if fmt == "skops" else None
    before = client.get_run(run_id).info
    with (
        _timed("mlflow.sklearn.log_model"),
        _tracking_uri(result.tracking_uri),
        _quiet("mlflow.sklearn", "mlflow.models"),
        _no_requirement_check(),
        warnings.catch_warnings(),
        mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None),
    ):
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.sklearn.log_model(
            model, name=MODEL_NAME, signature=signature, input_example=example,
            serialization_format=fmt, pip_requirements=requirements, skops_trusted_types=trusted,
        )
    # Reopening the run set it RUNNING then FINISHED "now": give it back its own end.
    client.set_terminated(run_id, before.status, end_time=before.end_time)
    if parent_tags.get(BEST_MODEL_URI_TAG):  # a model was logged before (a resumed sweep): untag it
        _step("untag the previous best", lambda: _untag_previous_best(client, result.parent_run_id, run_id))
    client.set_tag(run_id, "sweeper.best_model", "true")
    client.set_tag(result.parent_run_id, BEST_MODEL_URI_TAG, info.model_uri)
    client.set_tag(result.parent_run_id, BEST_MODEL_RUN_URI_TAG, run_uri)
    _step("list the model on the parent run", lambda: _link_model(client, result.parent_run_id, info.model_id))
    study.set_user_attr(_records.MODEL_URI_ATTR, info.model_uri)
    return {"model_uri": info.model_uri, "run_uri": run_uri, "run_id": run_id, "format": fmt}


def serialization_format() -> str:
    """skops (MLflow's safe default) when installed, else cloudpickle (MLflow's Databricks choice)."""
    import importlib.util

    return "skops" if importlib.util.find_spec("skops") is not None else "cloudpickle"


def _skops_types(model: Any) -> list[str]:
    """The types skops will not load unless told to trust them (a forest's ``Tree``, a boosted
    model's predictors). We built this model from an allowlisted estimator a moment ago, so
    its own types are trusted; MLflow stores the list with the model for ``load_model``."""
    import skops.io  # type: ignore[import-untyped]

    return sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def _untag_previous_best(client: Any, parent_run_id: str, run_id: str) -> None:
    """A resumed sweep with a new best: only one child says it holds the best model."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    previous = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`sweeper.best_model` = 'true'",
        max_results=100,
    )
    for run in previous:
        if run.info.run_id != run_id:
            client.set_tag(run.info.run_id, "sweeper.best_model", "false")


def _link_model(client: Any, parent_run_id: str, model_id: str) -> None:
    """The parent's "Logged models" shows the sweep's best model (it lives on the child run)."""
    from mlflow.entities import LoggedModelOutput

    client.log_outputs(parent_run_id, [LoggedModelOutput(model_id, 0)])


def register_best_model(tracking_uri: str, parent_run_id: str, name: str) -> str:
    """Register the sweep's best model (logged by ``finalize_sweep``) as ``name``; returns the
    new version. Raises ``SweeperError`` when the sweep has no logged model."""
    import mlflow
    from mlflow import MlflowClient

    from ..errors import SweeperError

    client = MlflowClient(tracking_uri)
    model_uri = client.get_run(parent_run_id).data.tags.get(BEST_MODEL_URI_TAG)
    if not model_uri:
        raise SweeperError(
            "no best model to register: only the built-in scikit-learn objective (model: + data:) "
            "logs one, after at least one trial completes"
        )
    with _tracking_uri(tracking_uri), _quiet("mlflow"):
        version = mlflow.register_model(model_uri, name)
    client.set_tag(parent_run_id, REGISTERED_TAG, f"{name}/{version.version}")
    return str(version.version)


def _extra_requirements(estimator: str) -> list[str]:
    """The estimator's own package, pinned, when it is not scikit-learn (allow_imports)."""
    from importlib import metadata

    top = estimator.replace(":", ".").split(".")[0]
    if top == "sklearn":
        return []
    for dist in metadata.packages_distributions().get(top, []):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return [f"{dist}=={metadata.version(dist)}"]
    return []


@contextlib.contextmanager
def _no_requirement_check() -> Iterator[None]:
    """Skip MLflow's check of a model's pip requirements against the installed packages for a
    moment (log_model runs it when it writes them and again when it loads the model back to
    validate the input example): it first maps every installed distribution to its modules
    (0.2-0.5 s, the largest part of log_model), and our requirements are the installed
    versions, pinned, so it could only ever find nothing. Where MLflow has no such function,
    nothing changes."""
    import importlib

    name = "warn_dependency_requirement_mismatches"
    patched = []
    for module_name in ("mlflow.utils.environment", "mlflow.pyfunc"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, name, None)
        if callable(original):
            patched.append((module, original))
            setattr(module, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        for module, original in patched:
            setattr(module, name, original)


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API at ``uri`` for a moment; the host's URI (and env var) come back."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    previous, env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None also unsets the env var ...
        if env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env  # ... which was the host's to keep


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """MLflow's INFO/WARNING chatter (e.g. the pickle-format notice) off for a moment."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


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
    best = [_results.trial_record(study, t) for t in _results.best_trials(study)]
    data: dict[str, Any] = {"study": study.study_name, "directions": _results.directions_of(study)}
    if len(study.directions) == 1:
        data["best"] = best[0] if best else None
    else:
        data["pareto_front"] = best
    data["model_uri"] = report.get("model_uri")
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _log_importances(client: Any, run_id: str, importances: Mapping[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(f"importance.{name}", value, now, 0) for name, value in importances.items()]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def _describe_parent(client: Any, result: Any, report: Mapping[str, Any], importances: Mapping[str, float]) -> None:
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
        lines.append(f"- **Parameter importances** (fANOVA): {ranked}")
    plots = [a for a in report.get("artifacts", []) if a.startswith(PLOTS_DIR + "/")]
    if plots:
        lines.append(f"- **Plots** (Artifacts tab): {', '.join(Path(p).name for p in plots)}; "
                     "full table: `trials.csv`")
    client.set_tag(result.parent_run_id, "mlflow.note.content", "\n".join(lines))


# --- failures stay warnings ---------------------------------------------------------------------


def _step(what: str, action: Callable[[], T]) -> T | None:
    try:
        with _timed(what, indent=""):
            return action()
    except Exception as exc:  # noqa: BLE001 - one missing piece of the report is not fatal
        _warn(f"report: could not {what}: {_describe(exc)}")
        return None


@contextlib.contextmanager
def _timed(what: str, indent: str = "  ") -> Iterator[None]:
    """Wall and CPU time (this process') of a step or a part of one, for SWEEPER_LOG_LEVEL=DEBUG."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        logger.debug("report: %s%s took %.2fs (cpu %.2fs)", indent, what,
                     time.perf_counter() - started, time.process_time() - cpu)


def _describe(exc: BaseException) -> str:
    text = redact_uri(str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def _warn(message: str) -> None:
    print(f"sweeper: warning: {message}", file=sys.stderr, flush=True)
