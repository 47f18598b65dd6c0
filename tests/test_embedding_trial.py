"""Optuna's trial surface inside a worker: ``trial.study`` (read-only, as the coordinator knew it),
``datetime_start``, ``relative_params``, ``suggest_int(log=...)``, ``suggest_float(step=...)``; and
optuna-integration's LightGBM pruning callback, unchanged, inside a sweeper objective."""

from __future__ import annotations

import datetime

import optuna
import pytest

import sweeper

pytestmark = pytest.mark.timeout(120)
PRUNED, COMPLETE, FAIL = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


def test_trial_study_and_the_rest_of_the_trial_surface():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name="surface", direction="maximize").set_user_attr("team", "red")
    before = datetime.datetime.now()
    study = sweeper.optimize("_objectives:study_surface", n_trials=4, n_jobs=1, direction="maximize",
                             study_name="surface", storage=storage, load_if_exists=True, track=False, seed=0)
    best_so_far = None
    for trial in study.trials:
        assert trial.state == COMPLETE
        seen = trial.user_attrs["seen"]
        assert seen["study_name"] == "surface" and seen["direction"] == "MAXIMIZE"
        assert seen["direction_is_optunas"] is True  # compares equal to optuna.study.StudyDirection
        assert seen["user_attrs"] == {"team": "red"}
        assert seen["best_value"] == best_so_far  # what the coordinator knew when it sent the trial
        assert before <= datetime.datetime.fromisoformat(seen["datetime_start"]) <= trial.datetime_complete
        assert seen["relative_params"] == {}  # nothing pre-sampled: every param asked for by the objective
        assert isinstance(trial.distributions["n"], optuna.distributions.IntDistribution) and trial.distributions["n"].log
        assert trial.distributions["x"].step == 0.25 and trial.params["x"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        best_so_far = trial.value if best_so_far is None else max(best_so_far, trial.value)


class _JointSampler(optuna.samplers.BaseSampler):
    """A sampler that samples ``x`` jointly (``sample_relative``), as TPE(multivariate) or CMA-ES do."""

    def infer_relative_search_space(self, study, trial):
        return {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}

    def sample_relative(self, study, trial, search_space):
        return {"x": 0.25 + 0.5 * (trial.number % 2)}

    def sample_independent(self, study, trial, param_name, param_distribution):
        raise AssertionError(f"{param_name} should have been sampled jointly")


def test_relative_params_are_optunas_relative_params():
    joint = sweeper.optimize("_objectives:relative_seen", n_trials=2, n_jobs=1, sampler=_JointSampler(), track=False)
    for trial in joint.trials:
        expected = 0.25 + 0.5 * (trial.number % 2)
        assert trial.user_attrs["relative_params"] == {"x": expected} and trial.params["x"] == expected
    independent = sweeper.optimize("_objectives:relative_seen", n_trials=2, n_jobs=1, sampler="random",
                                   track=False, seed=0)
    assert [t.user_attrs["relative_params"] for t in independent.trials] == [{}, {}]  # as Optuna's trial says


def test_trial_study_is_read_only():
    from sweeper.workers.trial import StudyDirection, StudyView

    view = StudyView({"study_name": "s", "directions": ["minimize", "maximize"]})
    assert view.directions == [StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE]
    with pytest.raises(RuntimeError, match="multi-objective"):
        view.direction
    with pytest.raises(ValueError, match="no trial of this study had completed"):
        view.best_value
    with pytest.raises(AttributeError, match="read-only view"):
        view.set_user_attr("k", 1)


@pytest.mark.slow
def test_lightgbm_pruning_callback_works_unchanged_inside_a_sweeper_objective():
    pytest.importorskip("lightgbm")
    rounds = 12
    complete = sweeper.optimize("_objectives:lightgbm_pruned", n_trials=2, n_jobs=2, pruner="none",
                                track=False, objective_kwargs={"rounds": rounds})
    assert [t.state for t in complete.trials] == [COMPLETE, COMPLETE]
    assert all(sorted(t.intermediate_values) == list(range(rounds)) for t in complete.trials)  # one per round
    pruned = sweeper.optimize("_objectives:lightgbm_pruned", n_trials=2, n_jobs=2, track=False,
                              pruner=optuna.pruners.ThresholdPruner(upper=1e-9), objective_kwargs={"rounds": rounds})
    assert [t.state for t in pruned.trials] == [PRUNED, PRUNED]  # raised as optuna.TrialPruned in the worker
    assert all(len(t.intermediate_values) == 1 for t in pruned.trials)
    wrong = sweeper.optimize("_objectives:lightgbm_pruned", n_trials=1, n_jobs=1, direction="maximize",
                             track=False, objective_kwargs={"rounds": rounds})
    assert wrong.trials[0].state == FAIL  # the callback read trial.study.direction and refused logloss
    assert "inconsistent with the objective values" in wrong.trials[0].system_attrs["sweeper:error"]
