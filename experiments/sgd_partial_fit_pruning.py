"""Stop unpromising trials early: epoch-by-epoch training with Optuna pruning, in worker processes.

An ``SGDClassifier`` learns the digits data set one epoch at a time (``partial_fit``). After
each epoch the objective reports the validation accuracy and asks whether to stop:

    trial.report(accuracy, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned()

That is the plain Optuna idiom, unchanged. Under sweeper the objective runs in a worker
process; ``report`` and ``should_prune`` travel to the coordinator, which owns the study and
its pruner, so a worker's trial is compared with the trials every other worker has finished.
Pruned trials end as PRUNED in the study and as MLflow child runs tagged
``sweeper.state = pruned``, with their per-epoch ``intermediate_value`` curve.

The script prints how many trials were pruned and how many epochs that saved.

    python experiments/sgd_partial_fit_pruning.py --n-trials 40 --n-jobs 2
    python experiments/sgd_partial_fit_pruning.py --pruner hyperband
    python experiments/sgd_partial_fit_pruning.py --pruner none          # every trial runs all epochs
"""

from __future__ import annotations

import argparse
import functools
from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sweeper


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[Any, Any, Any, Any, Any]:
    """Scaled train/validation split of digits, once per worker process."""
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val, np.unique(y)


def objective(trial: optuna.Trial, epochs: int = 20) -> float:
    """Validation accuracy after ``epochs`` passes of SGD (or fewer, if pruned)."""
    X_train, X_val, y_train, y_val, classes = load_data()
    learning_rate = trial.suggest_categorical("learning_rate", ["optimal", "constant", "invscaling"])
    # eta0 exists only for the schedules that use it (define-by-run); "optimal" ignores it.
    eta0 = 0.01 if learning_rate == "optimal" else trial.suggest_float("eta0", 1e-5, 1.0, log=True)
    model = SGDClassifier(
        loss=trial.suggest_categorical("loss", ["hinge", "log_loss", "modified_huber"]),
        alpha=trial.suggest_float("alpha", 1e-6, 1.0, log=True),
        learning_rate=learning_rate,
        eta0=eta0,
        random_state=trial.number,
    )
    rng = np.random.default_rng(trial.number)
    accuracy = 0.0
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        model.partial_fit(X_train[order], y_train[order], classes=classes)
        accuracy = float(model.score(X_val, y_val))
        trial.report(accuracy, epoch)
        if epoch < epochs - 1 and trial.should_prune():  # after the last epoch it saves nothing
            raise optuna.TrialPruned()
    return accuracy


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    if name == "median":
        # Compare from epoch 2 on, once 3 trials have completed.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=2, max_resource="auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=40)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (-1: all cores)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLflow's default, ./mlflow.db)")
    parser.add_argument("--experiment", default="sgd-partial-fit-pruning", help="MLflow experiment name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--pruner", choices=["median", "hyperband", "none"], default="median")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> optuna.Study:
    args = parse_args(argv)
    study = sweeper.optimize(
        objective,
        n_trials=args.n_trials,
        n_jobs=args.n_jobs,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=make_pruner(args.pruner),
        objective_kwargs={"epochs": args.epochs},
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
    )
    states = optuna.trial.TrialState
    pruned = study.get_trials(deepcopy=False, states=(states.PRUNED,))
    complete = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    epochs_run = sum(len(t.intermediate_values) for t in pruned + complete)
    epochs_max = max(1, len(pruned + complete) * args.epochs)
    print(f"trials: {len(complete)} complete, {len(pruned)} pruned (pruner: {args.pruner})")
    print(f"epochs run: {epochs_run} of {epochs_max} "
          f"({1 - epochs_run / epochs_max:.0%} saved by pruning)")
    if complete:
        print(f"best accuracy: {study.best_value:.4f} with {study.best_params}")
    return study


if __name__ == "__main__":
    main()
