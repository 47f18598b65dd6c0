"""Move an existing Optuna objective onto worker processes by changing one line.

The objective below is ordinary Optuna code: define-by-run, with parameters that exist only
for one branch (``svc_*`` when the classifier is an SVC, ``rf_*`` for a random forest). Nothing
in it knows about sweeper. The only change is the call that runs it:

    before:  study = optuna.create_study(direction="maximize")
             study.optimize(objective, n_trials=30)
    after:   study = sweeper.optimize(objective, n_trials=30, n_jobs=2, direction="maximize")

and what you get back is the same ``optuna.Study`` (``best_params``, ``best_value``,
``trials_dataframe()``). What changes: each trial runs in a worker process (real parallelism
for CPU-bound scikit-learn code, and a crashing trial fails only itself), and every trial is an
MLflow child run under one parent run for the sweep.

Run it:

    python experiments/optuna_one_line.py --n-trials 30 --n-jobs 2
    python experiments/optuna_one_line.py --plain-optuna     # the "before", for comparison
    mlflow ui --backend-store-uri sqlite:///mlflow.db       # then open experiment "optuna-one-line"

Worker processes do not import this file: ``objective`` (and the cached ``load_data`` it
calls) reach them by value, pickled once. The ``if __name__ == "__main__":`` guard is there so
the file can be imported, not because workers need it.
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import optuna
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import sweeper


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[Any, Any]:
    """Once per worker process, not once per trial."""
    return load_digits(return_X_y=True)


def objective(trial: optuna.Trial) -> float:
    """Mean 3-fold accuracy of an SVC or a random forest on the digits data set."""
    X, y = load_data()
    classifier = trial.suggest_categorical("classifier", ["svc", "random_forest"])
    if classifier == "svc":
        model = make_pipeline(
            StandardScaler(),
            SVC(
                C=trial.suggest_float("svc_c", 1e-2, 1e2, log=True),
                gamma=trial.suggest_float("svc_gamma", 1e-4, 1e-1, log=True),
            ),
        )
    else:
        model = RandomForestClassifier(
            n_estimators=trial.suggest_int("rf_n_estimators", 10, 100, log=True),
            max_depth=trial.suggest_int("rf_max_depth", 2, 32, log=True),
            n_jobs=1,  # sweeper already runs one trial per core
            random_state=0,
        )
    return float(cross_val_score(model, X, y, cv=3, n_jobs=1).mean())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (-1: all cores)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLflow's default, ./mlflow.db)")
    parser.add_argument("--experiment", default="optuna-one-line", help="MLflow experiment name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain-optuna", action="store_true",
                        help="run the 'before' version: plain Optuna, one process, no MLflow")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> optuna.Study:
    args = parse_args(argv)
    sampler = optuna.samplers.TPESampler(seed=args.seed)
    if args.plain_optuna:
        # before:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=args.n_trials)
    else:
        # after (the one changed line; tracking_uri/experiment are optional):
        study = sweeper.optimize(objective, n_trials=args.n_trials, n_jobs=args.n_jobs, direction="maximize",
                                 sampler=sampler, tracking_uri=args.tracking_uri, experiment=args.experiment)
    print(f"best accuracy: {study.best_value:.4f} (trial {study.best_trial.number})")
    print(f"best params:   {study.best_params}")
    if "mlflow_parent_run_id" in study.user_attrs:
        print(f"MLflow parent run: {study.user_attrs['mlflow_parent_run_id']}")
    return study


if __name__ == "__main__":
    main()
