"""Embedding: Optuna-style objectives through ``sweeper.optimize`` behave as with ``study.optimize``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pytest
from _objectives import counted_steps, define_by_run
from conftest import children_runs

import sweeper

pytestmark = pytest.mark.timeout(120)
PRUNED = optuna.trial.TrialState.PRUNED


def _columns(study: optuna.Study) -> set[str]:
    return {c for c in study.trials_dataframe().columns if not c.startswith("system_attrs")}


def test_returned_study_has_the_shape_study_optimize_gives():
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2)
    ours = sweeper.optimize(define_by_run, n_trials=20, n_jobs=2, seed=4, pruner=pruner, track=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    reference = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=4), pruner=pruner)
    reference.optimize(define_by_run, n_trials=20)
    assert _columns(ours) == _columns(reference)
    assert {t.state for t in ours.trials} <= {t.state for t in reference.trials} | {PRUNED}
    for trial in ours.trials:
        assert set(trial.user_attrs) == {"kind_seen"}
        assert {type(d) for d in trial.distributions.values()} <= {
            optuna.distributions.CategoricalDistribution,
            optuna.distributions.FloatDistribution,
            optuna.distributions.IntDistribution,
        }


def test_spawn_start_method_works():
    study = sweeper.optimize("_objectives:quadratic", n_trials=4, n_jobs=2, start_method="spawn", track=False)
    assert len(study.trials) == 4 and study.best_value >= 0


def test_objective_in_a_script_main_module_runs_under_spawn(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sweeper

        def objective(trial):
            return (trial.suggest_float("x", -3, 3) - 1) ** 2

        if __name__ == "__main__":
            study = sweeper.optimize(objective, n_trials=4, n_jobs=2, start_method="spawn", track=False)
            print("BEST", len(study.trials), study.best_value)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BEST 4" in done.stdout


@pytest.mark.parametrize(
    "pruner", ["none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon"]
)
def test_pruners_by_name_answer_should_prune(pruner):
    study = sweeper.optimize(counted_steps, n_trials=8, n_jobs=2, pruner=pruner, seed=0, track=False)
    assert len(study.trials) == 8
    if pruner == "none":
        assert all(t.state != PRUNED for t in study.trials)


def test_pruning_saves_reported_steps():
    def steps(pruner):
        study = sweeper.optimize(
            counted_steps, n_trials=16, n_jobs=2, pruner=pruner, sampler="random", seed=2, track=False,
        )
        return study, sum(t.user_attrs["steps"] for t in study.trials)

    pruned, with_pruner = steps(optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
    _, without = steps("none")
    assert sum(t.state == PRUNED for t in pruned.trials) > 0
    assert with_pruner < without == 16 * 8
    # the intermediate values reached the coordinator's study, as with study.optimize
    assert all(len(t.intermediate_values) == t.user_attrs["steps"] for t in pruned.trials)


def test_in_process_mode_keeps_the_same_mlflow_records(tracking_uri, experiment, client):
    study = sweeper.optimize(
        define_by_run, n_trials=4, in_process=True, tracking_uri=tracking_uri, experiment=experiment,
    )
    runs = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    assert len(runs) == 4
    assert {r.data.tags["sweeper.state"] for r in runs} <= {"complete", "pruned"}


@pytest.mark.slow
def test_partial_fit_config_reports_every_epoch(tmp_path, monkeypatch, tracking_uri):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sgd.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{estimator: sklearn.linear_model.SGDClassifier, params: {{random_state: 0}}}}
        data: load_digits
        evaluation: {{partial_fit_epochs: 4, holdout: 0.25, scoring: accuracy}}
        search_space:
          alpha: {{type: float, low: 1.0e-5, high: 1.0e-1, log: true}}
        sampler: random
        pruner: {{name: median, n_startup_trials: 2}}
        n_trials: 8
        n_jobs: 2
        seed: 0
        tracking: {{uri: "{tracking_uri}", experiment: sgd-{tmp_path.name}}}
    """))
    study = sweeper.run(config)
    assert len(study.trials) == 8
    for trial in study.trials:
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(len(steps))) and 1 <= len(steps) <= 4
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert len(steps) == 4 and trial.value == trial.intermediate_values[3]


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "qmc"])
def test_samplers_by_name_run_in_workers(sampler):
    study = sweeper.optimize("_objectives:quadratic", n_trials=6, n_jobs=2, sampler=sampler, seed=0, track=False)
    assert len(study.trials) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
