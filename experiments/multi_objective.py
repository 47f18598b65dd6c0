"""Trade accuracy against training cost: a two-objective sweep and its Pareto front.

A random forest on the digits data set, scored on two things at once: held-out accuracy
(maximize) and the seconds one ``fit`` took (minimize). The objective returns both, in the
order of ``directions``:

    study = sweeper.optimize(objective, n_trials=30, n_jobs=2,
                             directions=["maximize", "minimize"],
                             metric_names=["accuracy", "fit_time_s"])

There is no single best trial, so the script prints ``study.best_trials``: the Pareto front,
the trials no other trial beats on both objectives at once. ``metric_names`` names the values
in the study and in MLflow: each child run gets the metrics ``accuracy`` and ``fit_time_s``
(instead of ``value_0`` and ``value_1``), so the MLflow UI can plot one against the other.

Fit times are measured in a worker process that shares the machine with the other workers,
so they are noisy with more workers than cores; the front still shows the shape of the
trade-off (a few shallow trees are fast and worse, many deep trees are slow and better).

    python experiments/multi_objective.py --n-trials 30 --n-jobs 2
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any

import optuna
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import sweeper


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[Any, Any, Any, Any]:
    """Train/test split of digits, once per worker process."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def objective(trial: optuna.Trial) -> tuple[float, float]:
    """(held-out accuracy, fit time in seconds) of one random forest."""
    X_train, X_test, y_train, y_test = load_data()
    model = RandomForestClassifier(
        n_estimators=trial.suggest_int("n_estimators", 5, 200, log=True),
        max_depth=trial.suggest_int("max_depth", 2, 24, log=True),
        max_features=trial.suggest_categorical("max_features", ["sqrt", "log2"]),
        n_jobs=1,  # one core per trial: sweeper runs the trials in parallel
        random_state=0,
    )
    started = time.perf_counter()
    model.fit(X_train, y_train)
    fit_time_s = time.perf_counter() - started
    trial.set_user_attr("n_nodes", int(sum(tree.tree_.node_count for tree in model.estimators_)))
    return float(model.score(X_test, y_test)), fit_time_s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (-1: all cores)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLflow's default, ./mlflow.db)")
    parser.add_argument("--experiment", default="multi-objective", help="MLflow experiment name")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> optuna.Study:
    args = parse_args(argv)
    study = sweeper.optimize(
        objective,
        n_trials=args.n_trials,
        n_jobs=args.n_jobs,
        directions=["maximize", "minimize"],
        metric_names=["accuracy", "fit_time_s"],
        sampler=optuna.samplers.NSGAIISampler(seed=args.seed, population_size=10),
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
    )
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    print(f"Pareto front: {len(front)} of {len(study.trials)} trials")
    print(f"{'trial':>5}  {'accuracy':>8}  {'fit_time_s':>10}  {'nodes':>6}  params")
    for t in front:
        accuracy, fit_time_s = t.values
        print(f"{t.number:>5}  {accuracy:>8.4f}  {fit_time_s:>10.3f}  "
              f"{t.user_attrs.get('n_nodes', 0):>6}  {t.params}")
    return study


if __name__ == "__main__":
    main()
