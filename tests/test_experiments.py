"""The example scripts in experiments/ run as users run them, and leave what they promise in MLflow.

Each script runs small, as a real subprocess (``python experiments/x.py ...``, so the objective
lives in ``__main__`` and workers find it through the main guard), with its own MLflow SQLite
store under ``tmp_path`` and ``tmp_path`` as the working directory (MLflow puts artifacts in
``./mlruns``). The store is then read back with ``MlflowClient``. One test imports a script
as ``experiments.<name>`` and calls ``main()`` in this process: the other import path.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
SUBPROCESS_TIMEOUT_S = 150

pytestmark = pytest.mark.timeout(180)


def run_script(name: str, tmp_path: Path, *args: str) -> tuple[str, str]:
    """Run ``experiments/<name>.py`` on a fresh store in ``tmp_path``; return (stdout, uri)."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    command = [sys.executable, str(EXPERIMENTS / f"{name}.py"), "--n-jobs", "2", "--tracking-uri", uri, *args]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, check=False, cwd=tmp_path, capture_output=True, text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name}.py still running after {SUBPROCESS_TIMEOUT_S}s (deadlock?)\n"
                    f"stdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")
    assert done.returncode == 0, (
        f"{name}.py exited {done.returncode} after {time.monotonic() - started:.1f}s\n"
        f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout, uri


def sweep_runs(uri: str, experiment: str):
    """(client, the one parent run, its child runs) of the only sweep in ``experiment``."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r} in {uri}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, f"expected one parent run, got {[r.info.run_name for r in parents]}"
    parent = parents[0]
    children = client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        max_results=1000,
    )
    assert len(children) == len(runs) - 1, "every other run should be a child of the parent"
    assert parent.info.status == "FINISHED"
    return client, parent, children


@pytest.mark.slow
def test_optuna_one_line_logs_a_parent_and_a_child_per_trial(tmp_path):
    stdout, uri = run_script("optuna_one_line", tmp_path, "--n-trials", "6")

    _, parent, children = sweep_runs(uri, "optuna-one-line")
    assert f"MLflow parent run: {parent.info.run_id}" in stdout
    assert "best accuracy:" in stdout and "best params:" in stdout
    assert len(children) == 6
    assert sorted(int(r.data.tags["sweeper.trial_number"]) for r in children) == list(range(6))
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweeper.state"] == "complete"
        assert 0.0 < run.data.metrics["value"] <= 1.0
        # The conditional (define-by-run) parameters of the branch taken, and only those.
        branch = "svc_" if run.data.params["classifier"] == "svc" else "rf_"
        assert {k for k in run.data.params if k != "classifier"} == {
            k for k in ("svc_c", "svc_gamma", "rf_n_estimators", "rf_max_depth") if k.startswith(branch)
        }


@pytest.mark.slow
def test_sgd_partial_fit_pruning_prunes_trials_and_tags_them(tmp_path):
    epochs = 10
    stdout, uri = run_script(
        "sgd_partial_fit_pruning", tmp_path, "--n-trials", "12", "--epochs", str(epochs)
    )

    client, _, children = sweep_runs(uri, "sgd-partial-fit-pruning")
    assert len(children) == 12
    states = [r.data.tags["sweeper.state"] for r in children]
    assert set(states) <= {"complete", "pruned"}, states
    pruned = [r for r in children if r.data.tags["sweeper.state"] == "pruned"]
    assert pruned, f"no trial was pruned; stdout:\n{stdout}"
    assert f"{len(pruned)} pruned" in stdout
    for run in pruned:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "intermediate_value")]
        assert 0 < len(steps) < epochs, "a pruned trial reports some epochs, not all"
    total = sum(len(client.get_metric_history(r.info.run_id, "intermediate_value")) for r in children)
    assert f"epochs run: {total} of {12 * epochs}" in stdout


@pytest.mark.slow
def test_custom_loop_attaches_its_plot_and_epoch_metrics_to_each_child(tmp_path):
    epochs = 5
    stdout, uri = run_script("custom_loop_artifact", tmp_path, "--n-trials", "4", "--epochs", str(epochs))

    client, _, children = sweep_runs(uri, "custom-loop-artifact")
    assert len(children) == 4
    for run in children:
        assert run.data.tags["sweeper.state"] == "complete"
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["loss_curve.png"]
        local = client.download_artifacts(run.info.run_id, "loss_curve.png", str(tmp_path))
        assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for key in ("train_loss", "val_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == list(range(epochs)), key
    assert "best validation loss:" in stdout


@pytest.mark.slow
def test_multi_objective_logs_both_metrics_and_prints_the_pareto_front(tmp_path):
    stdout, uri = run_script("multi_objective", tmp_path, "--n-trials", "6")

    _, _, children = sweep_runs(uri, "multi-objective")
    assert len(children) == 6
    for run in children:
        assert run.data.tags["sweeper.state"] == "complete"
        assert 0.0 < run.data.metrics["accuracy"] <= 1.0
        assert run.data.metrics["fit_time_s"] > 0.0
    assert "Pareto front:" in stdout
    front_rows = stdout.split("params\n", 1)[1].strip().splitlines()
    assert 1 <= len(front_rows) <= 6


def test_main_runs_from_an_imported_module(tmp_path, monkeypatch):
    """Imported as ``experiments.multi_objective``, the objective's import path is that module,
    not ``__main__``; workers must import it the same way (they inherit ``sys.path``)."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(tmp_path)
    from experiments import multi_objective

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = multi_objective.main(["--n-trials", "3", "--n-jobs", "2", "--tracking-uri", uri,
                                  "--experiment", "in-process"])

    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.metric_names == ["accuracy", "fit_time_s"]
    assert study.best_trials
    _, parent, children = sweep_runs(uri, "in-process")
    assert parent.info.run_id == study.user_attrs["mlflow_parent_run_id"]
    assert parent.data.params["objective"] == "experiments.multi_objective:objective"
    assert len(children) == 3


def test_optuna_one_line_plain_optuna_mode_runs_the_same_objective(tmp_path, monkeypatch, capsys):
    """The "before" half of the one-line change: the objective runs under plain Optuna too."""
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.chdir(tmp_path)
    from experiments import optuna_one_line

    study = optuna_one_line.main(["--n-trials", "2", "--plain-optuna"])

    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert "mlflow_parent_run_id" not in study.user_attrs
    assert not (tmp_path / "mlflow.db").exists()
    assert "best params:" in capsys.readouterr().out
