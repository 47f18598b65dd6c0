"""The built-in scikit-learn objective scores exactly like scikit-learn and prunes fold by fold."""

from __future__ import annotations

import optuna
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.svm import SVC

import sweeper
from sweeper.objectives.sklearn import build_estimator

pytestmark = pytest.mark.timeout(120)

SPACE = [
    {"name": "C", "type": "float", "low": 0.01, "high": 100.0, "log": True, "step": None, "choices": None},
    {"name": "gamma", "type": "categorical", "low": None, "high": None, "log": False, "step": None,
     "choices": ["scale", 0.0005, 0.05]},
]


def kwargs(data_kwargs=None, **evaluation):
    return {
        "estimator": "sklearn.svm.SVC",
        "fixed_params": {},
        "data": {"loader": "load_digits", "kwargs": data_kwargs or {}},
        "evaluation": {"cv": 3, "scoring": "accuracy", "shuffle": True, **evaluation},
        "space": SPACE,
        "seed": 7,
        "prune": True,
    }


def test_cv_score_equals_cross_val_score():
    study = sweeper.optimize(
        "sweeper.objectives.sklearn:sklearn_objective", objective_kwargs=kwargs(), n_trials=4, n_jobs=2,
        direction="maximize", track=False, seed=0, pruner="none",
    )
    X, y = load_digits(return_X_y=True)
    splitter = StratifiedKFold(n_splits=3, shuffle=True, random_state=7)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        expected = cross_val_score(SVC(**trial.params), X, y, cv=splitter, scoring="accuracy").mean()
        assert trial.value == pytest.approx(expected, abs=1e-12)
        assert sorted(trial.intermediate_values) == [0, 1, 2]  # one report per fold


@pytest.mark.slow
def test_per_fold_pruning_saves_folds():
    def folds_run(pruner):
        study = sweeper.optimize(
            "sweeper.objectives.sklearn:sklearn_objective", objective_kwargs=kwargs({"n_class": 4}, cv=5), n_trials=14,
            n_jobs=2, direction="maximize", track=False, seed=1, pruner=pruner, sampler="random",
        )
        return study, sum(len(t.intermediate_values) for t in study.trials)

    pruned_study, pruned_folds = folds_run(optuna.pruners.MedianPruner(n_startup_trials=3))
    _, all_folds = folds_run("none")
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in pruned_study.trials)
    assert n_pruned > 0
    assert pruned_folds < all_folds == 14 * 5


def test_estimator_n_jobs_is_capped_unless_given():
    assert build_estimator("sklearn.ensemble.RandomForestClassifier", {}).n_jobs == 1
    assert build_estimator("sklearn.ensemble.RandomForestClassifier", {"n_jobs": 2}).n_jobs == 2
