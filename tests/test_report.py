"""The end-of-sweep report (sweeper.report): plots and their bounds for big sweeps, the plot
child (forked, dies with its parent), the best model and dataset lineage through public MLflow
API only, scratch files in the sweep's directory, and a report a kill skipped written by the
next run (``finalize_sweep(..., only_if_missing=True)``).

Studies are built with Optuna directly (``test_results.make_sweep``); MLflow is a real SQLite store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from sweeper.report import model as _model
from sweeper.report import plots as _plots
from sweeper.report import report as _report
from test_results import PNG, make_sweep

pytestmark = pytest.mark.timeout(180)
optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- the report on the parent run ---------------------------------------------------------------


def test_finalize_does_nothing_without_tracking(capsys):
    result = SimpleNamespace(tracking_uri=None, parent_run_id=None, study=None)
    assert _report.finalize_sweep(SimpleNamespace(), result) is False
    assert capsys.readouterr() == ("", "")


def test_a_failing_report_is_a_warning_never_an_error(capsys, monkeypatch):
    def broken(cfg, result):
        raise RuntimeError("store on fire\nsecond line")

    monkeypatch.setattr(_report, "write_report", broken)
    _report.finalize_sweep(SimpleNamespace(), SimpleNamespace(tracking_uri="sqlite:///x.db", parent_run_id="p"))
    assert capsys.readouterr().err == (
        "sweeper: warning: could not write the end-of-sweep report: RuntimeError: store on fire\n"
    )


def test_plots_of_a_single_objective_sweep(tmp_path):
    study = make_sweep(tmp_path, "plots", values=(0.1, 0.5, 0.4, 0.8, 0.3))
    importances = _report.param_importances(study)
    assert set(importances) == {"x", "y"}
    written = _report.render_plots(study, tmp_path / "out", importances)
    assert sorted(p.name for p in written) == [
        "contour.png", "intermediate_values.png", "optimization_history.png", "parallel_coordinate.png",
        "param_importances.png", "slice.png", "timeline.png",
    ]
    assert all(p.read_bytes()[:8] == PNG and p.stat().st_size > 5000 for p in written)


def test_plots_of_a_multi_objective_sweep_include_the_pareto_front(tmp_path):
    study = make_sweep(tmp_path, "mo", directions=("maximize", "minimize"),
                       values=((1.0, 1.0), (2.0, 3.0), (0.5, 2.0), (3.0, 4.0)))
    written = {p.name for p in _report.render_plots(study, tmp_path / "out", _report.param_importances(study))}
    assert {"pareto_front.png", "param_importances.png", "parallel_coordinate.png", "timeline.png"} == written


def test_one_complete_trial_gets_only_the_plots_that_mean_something(tmp_path, capsys):
    study = make_sweep(tmp_path, "one", values=(0.5,), failed=1)
    written = {p.name for p in _report.render_plots(study, tmp_path / "out")}
    assert written == {"optimization_history.png", "timeline.png", "intermediate_values.png"}
    assert capsys.readouterr().err == ""


def test_a_plot_that_fails_is_left_out_with_a_warning(tmp_path, capsys, monkeypatch):
    import optuna.visualization.matplotlib as vis

    def broken(*args, **kwargs):
        raise ValueError("cannot slice")

    monkeypatch.setattr(vis, "plot_slice", broken)
    written = {p.name for p in _report.render_plots(make_sweep(tmp_path, "s"), tmp_path / "out")}
    assert "slice.png" not in written and {"contour.png", "optimization_history.png"} <= written
    assert capsys.readouterr().err == "sweeper: warning: report: could not draw slice: ValueError: cannot slice\n"


def test_interactive_plots_only_with_plotly(tmp_path):
    import importlib.util

    study = make_sweep(tmp_path, "html")
    page = _report.render_html(study, tmp_path / "out")
    if importlib.util.find_spec("plotly") is None:
        assert page is None and not (tmp_path / "out").exists()  # no plotly, no page (and no error)
    else:
        assert page is not None and page.read_text().count("<script") >= 3  # one plotly.js, offline


def test_plots_leave_the_hosts_matplotlib_settings_alone(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    style = dict(matplotlib.rcParams)
    backend = plt.get_backend()
    _report.render_plots(make_sweep(tmp_path, "rc"), tmp_path / "out")
    assert plt.get_backend() == backend
    assert matplotlib.rcParams["axes.facecolor"] == style["axes.facecolor"]  # ggplot undone
    assert plt.get_fignums() == []


def test_the_importances_plot_shows_the_importances_it_is_given(tmp_path, monkeypatch):
    """fANOVA runs once per report: render_plots plots the importances computed already."""
    from optuna.importance import FanovaImportanceEvaluator

    study = make_sweep(tmp_path, "once", values=(0.1, 0.5, 0.4, 0.8, 0.3))
    importances = _report.param_importances(study)

    def refit(*args, **kwargs):
        raise AssertionError("fANOVA fitted a second time")

    monkeypatch.setattr(FanovaImportanceEvaluator, "evaluate", refit)
    written = {p.name for p in _report.render_plots(study, tmp_path / "out", importances)}
    assert {"param_importances.png", "parallel_coordinate.png", "slice.png", "contour.png"} <= written


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="plots are drawn in a forked child only on Linux")
def test_plots_are_drawn_by_a_forked_child_in_a_single_threaded_process(tmp_path):
    """As the CLI's report does (it forks before mlflow is imported): the child draws every plot
    render_plots would, computes the importances and writes the trials table for the parent, and
    the parent gets a True from finish_plots (and its objects back for the garbage collector)."""
    make_sweep(tmp_path, "fork", values=(0.1, 0.5, 0.4, 0.8, 0.3))
    script = f"""
import gc, json, sys, threading
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from test_results import make_sweep
from sweeper.report import plots as _plots, report as _report
study = make_sweep(Path({str(tmp_path)!r}), "fork2", values=(0.1, 0.5, 0.4, 0.8, 0.3))
assert threading.active_count() == 1
ranked = Path({str(tmp_path / "importances.json")!r})
assert _plots.read_importances(ranked) is None
table = Path({str(tmp_path / "trials.csv")!r})
child = _plots.start_plots(study, Path({str(tmp_path / "out")!r}), ranked, table_path=table)
assert child is not None and child.pid is not None and gc.get_freeze_count() > 0
print(_plots.finish_plots(child), child.exitcode)
assert gc.get_freeze_count() == 0
assert _plots.read_importances(ranked) == _report.param_importances(study)
from sweeper import results as _results
assert table.read_text() == _results.trials_frame(study).to_csv(index=False)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.split() == ["True", "0"], out.stderr
    assert out.stderr == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "contour.png", "intermediate_values.png", "optimization_history.png", "parallel_coordinate.png",
        "param_importances.png", "slice.png", "timeline.png",
    ]
    assert all(p.read_bytes()[:8] == PNG for p in (tmp_path / "out").iterdir())


def test_no_fork_for_plots_while_another_thread_runs(tmp_path):
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert _plots.start_plots(make_sweep(tmp_path, "threads"), tmp_path / "out") is None
    finally:
        stop.set()
        other.join()


def test_a_plot_child_that_fails_or_hangs_means_drawing_here():
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    failed = context.Process(target=sys.exit, args=(1,))
    failed.start()
    assert _plots.finish_plots(failed) is False
    hung = context.Process(target=time.sleep, args=(60,))
    hung.start()
    started = time.monotonic()
    assert _plots.finish_plots(hung, timeout_s=1.0) is False
    assert not hung.is_alive() and time.monotonic() - started < 30


@pytest.mark.parametrize("fmt", ["skops", "cloudpickle"])
def test_best_model_of_a_tree_ensemble_loads_in_either_format(fmt, tmp_path, monkeypatch, tracking_uri, client, experiment):
    """Forests hold types skops refuses by default: the report trusts the model's own types."""
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_iris

    monkeypatch.setattr(_model, "serialization_format", lambda: fmt)
    study = optuna.create_study(direction="maximize")
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9, params={"max_depth": 3},
                                 distributions={"max_depth": optuna.distributions.IntDistribution(1, 5)}))
    experiment_id = client.create_experiment(experiment, artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment_id, run_name="sweep").info.run_id
    child = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent}).info.run_id
    client.set_terminated(child, "FINISHED")
    cfg = SimpleNamespace(model=SimpleNamespace(estimator="sklearn.ensemble.RandomForestClassifier",
                                                params={"n_estimators": 5, "random_state": 0}))
    result = SimpleNamespace(study=study, run_ids={0: child}, parent_run_id=parent, tracking_uri=tracking_uri)
    X, y = load_iris(return_X_y=True)
    logged = _model.log_best_model(client, cfg, result, X, y)
    assert logged is not None and logged["format"] == fmt
    assert client.get_run(child).info.status == "FINISHED"
    mlflow.set_tracking_uri(tracking_uri)
    try:
        model = mlflow.sklearn.load_model(logged["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    assert model.max_depth == 3 and (model.predict(X) == y).mean() > 0.9
    assert client.get_run(parent).data.tags[_report.BEST_MODEL_URI_TAG] == logged["model_uri"]


def test_dataset_lineage_for_a_file_and_a_generator(tmp_path, client, experiment):
    from sweeper.objectives.sklearn import load_dataset

    (tmp_path / "train.csv").write_text("a,b,label\n1,2.5,x\n3,4.5,y\n5,6.5,x\n")
    run_id = client.create_run(client.create_experiment(experiment, artifact_location=str(tmp_path / "a"))).info.run_id
    file_spec = SimpleNamespace(file=str(tmp_path / "train.csv"), target="label", loader=None, kwargs={})
    X, y = load_dataset({"file": file_spec.file, "target": "label", "loader": None, "kwargs": {}})
    logged = _model.log_dataset(client, run_id, SimpleNamespace(data=file_spec), X, y)
    assert logged["name"] == "train.csv" and logged["shape"] == [3, 2]
    gen_spec = SimpleNamespace(file=None, target=None, loader="make_classification",
                               kwargs={"n_samples": 40, "random_state": 0})
    X, y = load_dataset({"loader": "make_classification", "kwargs": gen_spec.kwargs, "file": None, "target": None})
    logged = _model.log_dataset(client, run_id, SimpleNamespace(data=gen_spec), X, y)
    assert logged["name"] == "make_classification(n_samples=40, random_state=0)" and logged["shape"] == [40, 20]
    inputs = {d.dataset.name: d.dataset for d in client.get_run(run_id).inputs.dataset_inputs}
    assert set(inputs) == {"train.csv", "make_classification(n_samples=40, random_state=0)"}
    assert str(tmp_path / "train.csv") in inputs["train.csv"].source
    assert all(len(d.digest) >= 8 for d in inputs.values())


# --- big sweeps: plots and importances from samples (issue #15 item 11) ---------------------------


def big_sweep(root: Path, n: int = 60) -> optuna.Study:
    """``n`` complete trials (ties on the best value: #6, #13, ...) with reported values, 3 pruned, 2 failed."""
    from optuna.distributions import FloatDistribution

    from sweeper.engine.study import journal_storage

    study = optuna.create_study(study_name="big", storage=journal_storage(root / "big"), direction="maximize")
    dist = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    for i in range(n + 5):
        state = TrialState.COMPLETE if i < n else (TrialState.PRUNED if i < n + 3 else TrialState.FAIL)
        value = 0.5 + (i % 7) / 10
        study.add_trial(create_trial(
            state=state, value=value if state == TrialState.COMPLETE else None,
            params={"x": (i % 10) / 10, "y": (i % 7) / 7}, distributions=dist,
            intermediate_values={0: value / 2, 1: value} if state != TrialState.FAIL else {},
        ))
    return study


def test_a_sample_is_seeded_holds_the_best_trial_and_keeps_trial_order(tmp_path):
    study = big_sweep(tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    chosen = _plots.sample(study, complete, 10, "complete trials")
    again = _plots.sample(study, complete, 10, "complete trials")
    assert chosen.sampled and chosen.note == "10 of 60 complete trials, sampled"
    assert chosen.numbers == again.numbers == sorted(chosen.numbers) and len(chosen.numbers) == 10
    assert study.best_trial.number in chosen.numbers
    assert [t.value for t in chosen.study.trials] == [study.trials[n].value for n in chosen.numbers]
    whole = _plots.sample(study, complete, 60)
    assert not whole.sampled and whole.study is study


def test_importances_come_from_a_sample_of_a_big_sweep(tmp_path, monkeypatch):
    from optuna.importance import FanovaImportanceEvaluator

    study = big_sweep(tmp_path)
    seen = []
    evaluate = FanovaImportanceEvaluator.evaluate

    def counting(self, study, *args, **kwargs):
        seen.append(len(study.get_trials(states=(TrialState.COMPLETE,))))
        return evaluate(self, study, *args, **kwargs)

    monkeypatch.setattr(FanovaImportanceEvaluator, "evaluate", counting)
    importances = _plots.param_importances(study, limit=20)
    assert seen == [20] and set(importances) == {"x", "y"}
    assert _plots.importance_note(study, limit=20) == "on 20 of 60 complete trials, sampled"
    assert _plots.importance_note(study) is None  # 60 <= IMPORTANCE_TRIALS: all of them


def test_plots_of_a_big_sweep_are_drawn_from_samples_and_say_so(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    study = big_sweep(tmp_path)
    for name, limit in (("SCATTER_TRIALS", 25), ("IMPORTANCE_TRIALS", 15), ("TIMELINE_TRIALS", 10), ("CURVES", 8)):
        monkeypatch.setattr(_plots, name, limit)
    drawn: dict[str, int] = {}
    titles: dict[str, str] = {}
    for plot in ("plot_slice", "plot_parallel_coordinate", "plot_intermediate_values", "plot_timeline"):
        real = getattr(vis, plot)

        def spy(drawn_study, *args, real=real, plot=plot, **kwargs):
            drawn[plot] = len(drawn_study.trials) if plot != "plot_timeline" else kwargs["n_recent_trials"]
            return real(drawn_study, *args, **kwargs)

        monkeypatch.setattr(vis, plot, spy)
    real_save = _plots._save

    def keep_title(axes, path, plt_, drawn_from=None, note=None):
        import numpy as np

        figure = np.ravel(axes)[0].figure
        saved = real_save(axes, path, plt_, drawn_from, note)
        titles[path.stem] = figure._suptitle.get_text() if figure._suptitle else ""
        return saved

    monkeypatch.setattr(_plots, "_save", keep_title)
    written = {p.stem for p in _plots.render_plots(study, tmp_path / "out", _plots.param_importances(study))}
    assert {"slice", "parallel_coordinate", "intermediate_values", "timeline", "optimization_history"} <= written
    assert drawn == {"plot_slice": 25, "plot_parallel_coordinate": 25, "plot_intermediate_values": 8,
                     "plot_timeline": 10}
    assert titles["slice"] == "(25 of 60 complete trials, sampled)"
    assert titles["intermediate_values"] == "(8 of 63 trials with reported values, sampled)"
    assert titles["timeline"] == "(the last 10 of 65 trials to start)"
    assert titles["optimization_history"] == ""  # every trial
    assert plt.get_fignums() == []


def test_a_sampled_slice_plot_names_trials_by_their_own_numbers(tmp_path):
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna.visualization.matplotlib as vis

    study = big_sweep(tmp_path)
    chosen = _plots.sample(study, study.get_trials(states=(TrialState.COMPLETE,)), 12)
    with _plots._agg_pyplot():
        axes = vis.plot_slice(chosen.study)
        figure = np.ravel(axes)[0].figure
        _plots._real_numbers(figure, list(np.ravel(axes)), chosen.numbers)
        (colorbar,) = [ax for ax in figure.axes if ax.get_ylabel() == "Trial"]
        formatter = colorbar.yaxis.get_major_formatter()
        assert [formatter(i, None) for i in range(12)] == [str(n) for n in chosen.numbers]
        plt.close(figure)


# --- the plot child dies with its parent (issue #15 item 10) ---------------------------------------


DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_results import make_sweep
from sweeper.report import plots as _plots
study = make_sweep(Path({root!r}), "s", values=(0.1, 0.5, 0.4))
_plots.render_plots = lambda *args, **kwargs: time.sleep(120)  # a child still drawing when its parent dies
child = _plots.start_plots(study, Path({root!r}) / "out")
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the plot child is forked only on Linux")
def test_the_plot_child_does_not_outlive_a_killed_coordinator(tmp_path):
    import psutil

    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(tests=str(Path(__file__).parent), root=str(tmp_path))],
        stdout=subprocess.PIPE, text=True,
    )
    child = None
    try:
        child = psutil.Process(int(driver.stdout.readline()))
        assert child.is_running() and child.ppid() == driver.pid
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        gone, alive = psutil.wait_procs([child], timeout=30)  # it would draw for 120 s
        assert not alive
    finally:
        if driver.poll() is None:
            driver.kill()
        with contextlib.suppress(psutil.Error, AttributeError):
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()


# --- scratch files and a report a kill skipped (issue #15 item 10) ----------------------------------


def user_sweep_cfg(root: Path) -> SimpleNamespace:
    return SimpleNamespace(objective="userobj:objective", model=None, storage_dir=str(root), name="s")


@pytest.fixture
def reported(tmp_path, tracking_uri, client, experiment):
    """A sweep with a parent run on a real store, and finalize_sweep's arguments for it."""
    study = make_sweep(tmp_path, "s", values=(0.1, 0.5, 0.4))
    experiment_id = client.create_experiment(experiment, artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(experiment_id, run_name="s").info.run_id
    study.set_user_attr("mlflow_parent_run_id", parent)
    study.set_user_attr("mlflow_experiment_id", experiment_id)
    result = SimpleNamespace(study=study, tracking_uri=tracking_uri, parent_run_id=parent, run_ids={},
                             summary=SimpleNamespace(signal=None), experiment=experiment)
    return SimpleNamespace(cfg=user_sweep_cfg(tmp_path), result=result, client=client, parent=parent,
                           directory=tmp_path / "s")


def test_the_reports_scratch_files_live_in_the_sweep_directory(reported, monkeypatch):
    import tempfile

    stale = reported.directory / "report-left-by-a-kill"
    (stale / "report").mkdir(parents=True)
    system_before = set(Path(tempfile.gettempdir()).glob("sweeper-report-*"))
    seen = []
    real = _report._scratch

    @contextlib.contextmanager
    def where(cfg):
        with real(cfg) as path:
            seen.append((path, path.is_dir(), stale.exists()))
            yield path

    monkeypatch.setattr(_report, "_scratch", where)
    assert _report.finalize_sweep(reported.cfg, reported.result)
    ((scratch, existed, stale_there),) = seen
    assert existed and scratch.parent == reported.directory and not stale_there
    assert not list(reported.directory.glob("report-*"))  # its own removed, the stale one too
    assert set(Path(tempfile.gettempdir()).glob("sweeper-report-*")) == system_before


def test_a_report_is_written_once_per_state_of_the_study(reported, monkeypatch, capsys):
    result = reported.result
    assert not _report.has_report(result.study, reported.parent)
    assert _report.finalize_sweep(reported.cfg, result, only_if_missing=True)
    tags = reported.client.get_run(reported.parent).data.tags
    assert tags[_report.REPORT_TAG] == "3 trials (3 complete, 0 failed, 0 pruned); best 1"
    assert _report.has_report(result.study, reported.parent)

    def must_not_run(cfg, result):
        raise AssertionError("the report was written again")

    monkeypatch.setattr(_report, "write_report", must_not_run)
    assert _report.finalize_sweep(reported.cfg, result, only_if_missing=True) is False
    assert not _report.has_report(result.study, "another-parent")
    monkeypatch.undo()
    result.study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.95, params={"x": 0.5, "y": 0.5},
                                        distributions=result.study.trials[0].distributions))
    assert not _report.has_report(result.study, reported.parent)  # a trial more: the report is stale
    assert _report.finalize_sweep(reported.cfg, result, only_if_missing=True)
    assert reported.client.get_run(reported.parent).data.tags[_report.REPORT_TAG].endswith("best 3")
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_report_cut_short_is_not_marked_and_the_next_run_writes_it(reported, monkeypatch, capsys):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_report, "_describe_parent", killed)
    assert _report.finalize_sweep(reported.cfg, reported.result) is False
    assert "end-of-sweep report interrupted; run the sweep again to write it" in capsys.readouterr().err
    assert _report.REPORT_TAG not in reported.client.get_run(reported.parent).data.tags
    monkeypatch.undo()
    assert _report.finalize_sweep(reported.cfg, reported.result, only_if_missing=True)
    assert _report.has_report(reported.result.study, reported.parent)


# --- public MLflow API only -----------------------------------------------------------------------------


def test_the_report_patches_no_library():
    """No monkeypatching of other libraries in sweeper.report (issue #12 §6), and no private
    MLflow or Optuna name (those live in sweeper/_compat.py)."""
    import ast

    for path in Path(_report.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
                target = ast.unparse(node.args[0])
                assert target in ("child",), f"{path.name}: setattr on {target}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = ast.unparse(node.value)
                assert base.split(".")[0] not in ("mlflow", "optuna", "utils", "dataset"), f"{path.name}: {base}.{node.attr}"


@pytest.mark.parametrize("host", ["unset", "in code", "by variable"])
def test_log_model_leaves_the_hosts_tracking_uri_as_it_was(host, monkeypatch, tmp_path):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(None)
    if host == "in code":
        mlflow.set_tracking_uri("sqlite:///host.db")
    elif host == "by variable":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    before = (mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
    try:
        with _model._tracking_uri(f"sqlite:///{tmp_path}/report.db"):
            assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path}/report.db"
        assert (mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before
        if host == "by variable":  # not pinned: the variable still decides
            monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///changed.db")
            assert mlflow.get_tracking_uri() == "sqlite:///changed.db"
    finally:
        mlflow.set_tracking_uri(None)
