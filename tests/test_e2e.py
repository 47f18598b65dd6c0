"""End to end: real worker processes, a real Optuna study, a real MLflow store read back."""

from __future__ import annotations

import os

import optuna
import pytest
from conftest import children_runs, wait_no_leftovers

import sweeper

pytestmark = pytest.mark.timeout(120)


def test_sweep_records_one_parent_and_one_child_per_trial(tracking_uri, experiment, client, tmp_path, writer):
    study = sweeper.optimize(
        "_objectives:logs_everything", n_trials=6, n_jobs=2, sampler="random", seed=0,
        tracking_uri=tracking_uri, experiment=experiment, direction="maximize",
        objective_kwargs={"artifact_dir": str(tmp_path)},
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 6
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_complete"] == 6
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.tags["sweeper.best_trial"] == str(study.best_trial.number)
    children = children_runs(client, parent_id)
    assert len(children) == 6
    by_number = {int(r.data.tags["sweeper.trial_number"]): r for r in children}
    for trial in study.trials:
        run = by_number[trial.number]
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"trial-{trial.number:04d}"
        assert float(run.data.params["x"]) == pytest.approx(trial.params["x"])
        assert run.data.metrics["value"] == pytest.approx(trial.value)
        assert run.data.metrics["train_loss"] == pytest.approx(1 - trial.params["x"])
        assert run.data.tags["sweeper.state"] == "complete"
        history = client.get_metric_history(run.info.run_id, "curve")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"note-{trial.number}.txt"]
    assert parent.data.tags["sweeper.best_run_id"] == by_number[study.best_trial.number].info.run_id
    pids = {int(r.data.tags["sweeper.worker_pid"]) for r in children}
    assert len(pids) == 2, "both worker processes should have run trials"
    assert os.getpid() not in pids


def test_workers_are_reused_across_trials(tracking_uri, experiment):
    study = sweeper.optimize(
        "_objectives:pid_value", n_trials=8, n_jobs=2, track=False, sampler="random",
    )
    pids = [t.value for t in study.trials]
    assert len(set(pids)) == 2  # 8 trials, 2 processes: each worker ran several trials


def test_optimize_matches_optuna_in_shape(tracking_uri, experiment):
    """Define-by-run, reports, pruning and user attrs come back like study.optimize gives them."""
    study = sweeper.optimize(
        "_objectives:define_by_run", n_trials=16, n_jobs=2, seed=1,
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        tracking_uri=tracking_uri, experiment=experiment,
    )
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.COMPLETE in states
    assert len(study.trials) == 16
    for t in study.trials:
        assert t.user_attrs["kind_seen"] == t.params["kind"]
        assert set(t.params) in ({"kind", "a"}, {"kind", "b"})
        assert set(t.distributions) == set(t.params)
        assert t.intermediate_values  # every trial reported at least once
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(t.intermediate_values) == 4
    frame = study.trials_dataframe()
    assert len(frame) == 16
    assert study.best_params == study.best_trial.params


def test_multi_objective_sweep(tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_objectives:two_objectives", n_trials=8, n_jobs=2, directions=["maximize", "minimize"],
        metric_names=["gain", "cost"], tracking_uri=tracking_uri, experiment=experiment, seed=3,
    )
    assert len(study.best_trials) >= 1
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    children = children_runs(client, parent_id)
    assert all({"gain", "cost"} <= set(r.data.metrics) for r in children)
    front = sorted(t.number for t in study.best_trials)
    tagged = sorted(int(r.data.tags["sweeper.trial_number"]) for r in children
                    if r.data.tags.get("sweeper.pareto_front") == "true")
    assert tagged == front
    assert client.get_run(parent_id).data.tags["sweeper.pareto_front"] == ",".join(map(str, front))


def test_in_process_mode_runs_trials_in_this_process(tracking_uri, experiment):
    from _objectives import pid_value

    study = sweeper.optimize(pid_value, n_trials=3, in_process=True, n_jobs=1, track=False)
    assert {t.value for t in study.trials} == {float(os.getpid())}


def test_no_processes_left_after_a_sweep():
    sweeper.optimize("_objectives:quadratic", n_trials=4, n_jobs=2, track=False)
    assert wait_no_leftovers() == []


@pytest.mark.slow
def test_plain_mlflow_calls_in_the_objective_land_in_its_child_run(tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_mlflow_objectives:uses_mlflow_directly", n_trials=4, n_jobs=2, tracking_uri=tracking_uri,
        experiment=experiment, sampler="random",
    )
    children = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    assert len(children) == 4
    for run in children:
        number = int(run.data.tags["sweeper.trial_number"])
        x = study.trials[number].params["x"]
        assert run.data.metrics["plain_metric"] == pytest.approx(x * 10)
        assert run.data.tags["plain_tag"] == f"t{number}"
        assert run.info.status == "FINISHED"
    experiments = client.search_experiments()
    assert not any(e.name == "Default" and client.search_runs([e.experiment_id]) for e in experiments)


def test_artifacts_live_beside_the_sqlite_store_not_in_the_working_directory(tmp_path, monkeypatch):
    store_dir, work = tmp_path / "store", tmp_path / "work"
    store_dir.mkdir()
    work.mkdir()
    monkeypatch.chdir(work)
    study = sweeper.optimize(
        "_objectives:logs_everything", n_trials=2, n_jobs=2, tracking_uri=f"sqlite:///{store_dir}/m.db",
        experiment="beside", objective_kwargs={"artifact_dir": str(tmp_path)},
    )
    assert not (work / "mlruns").exists() and not (work / "mlartifacts").exists()
    assert any((store_dir / "mlartifacts" / "beside").rglob("note-*.txt"))
    assert len(study.trials) == 2


def test_optimize_on_a_loaded_study_runs_n_trials_more_as_optuna_does(tmp_path):
    """``optimize``'s ``n_trials`` is this call's, as in ``study.optimize`` (a config's is the
    sweep's total): three calls of 3 on one stored study leave 9 trials."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    for _ in range(3):
        study = sweeper.optimize("_objectives:quadratic", n_trials=3, n_jobs=2, study_name="more",
                                 storage=storage, load_if_exists=True, track=False)
    assert len(study.trials) == 9
