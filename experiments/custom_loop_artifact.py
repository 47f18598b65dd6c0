"""Log a custom training loop to MLflow from inside a trial: per-epoch metrics and a plot file.

The model is a softmax regression written in numpy (mini-batch gradient descent with L2), so
every line of the training loop is yours. Inside the objective:

    trial.log_metrics({"train_loss": ..., "val_loss": ..., "val_accuracy": ...}, step=epoch)
    trial.log_artifact(plot_path)

``log_metrics`` becomes a metric history in the trial's MLflow child run (one point per epoch,
so the MLflow UI draws the curves and compares them across trials); ``log_artifact`` attaches
a file, here a PNG of the loss curves drawn with matplotlib's Agg backend (no display needed).
The worker process never talks to MLflow itself: it sends the values and the file path to the
coordinator, which writes them. So the file must still exist when the sweep finishes: write
one file per trial (the trial number in its name) into a directory that outlives the trial.
This script makes a temporary directory, passes it to the objective with ``objective_kwargs``,
and deletes it after ``sweeper.optimize`` returns (use ``--plot-dir`` to keep the files).

    python experiments/custom_loop_artifact.py --n-trials 12 --n-jobs 2
    mlflow ui --backend-store-uri sqlite:///mlflow.db   # a child run > Artifacts > loss_curve.png
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import optuna
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import sweeper


@functools.lru_cache(maxsize=1)
def load_data() -> tuple[Any, Any, Any, Any]:
    """Scaled train/validation split of digits, once per worker process."""
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_val), y_train, y_val


def softmax_loss(W: Any, b: Any, X: Any, y: Any) -> tuple[float, Any]:
    """Mean cross-entropy and the class probabilities."""
    logits = X @ W + b
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(len(y)), y] + 1e-12).mean()
    return float(loss), probs


def plot_curves(history: dict[str, list[float]], title: str, path: str) -> None:
    """Save the loss curves as a PNG; a Figure of its own, so no pyplot global state."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend: renders to files, needs no display
    ax = fig.add_subplot()
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="train")
    ax.plot(epochs, history["val_loss"], label="validation")
    ax.set(xlabel="epoch", ylabel="cross-entropy", title=title)
    ax.legend()
    fig.savefig(path, dpi=80)


def objective(trial: sweeper.Trial, plot_dir: str, epochs: int = 15) -> float:
    """Validation loss of a numpy softmax regression after ``epochs`` of mini-batch descent."""
    X_train, X_val, y_train, y_val = load_data()
    lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
    l2 = trial.suggest_float("l2", 1e-6, 1e-1, log=True)
    batch_size = trial.suggest_categorical("batch_size", [16, 64, 256])

    rng = np.random.default_rng(trial.number)
    n_features, n_classes = X_train.shape[1], int(y_train.max()) + 1
    W = rng.normal(scale=0.01, size=(n_features, n_classes))
    b = np.zeros(n_classes)
    onehot = np.eye(n_classes)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
    val_loss = float("inf")
    for epoch in range(epochs):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            _, probs = softmax_loss(W, b, X_train[idx], y_train[idx])
            grad = (probs - onehot[y_train[idx]]) / len(idx)
            W -= lr * (X_train[idx].T @ grad + l2 * W)
            b -= lr * grad.sum(axis=0)
        train_loss, _ = softmax_loss(W, b, X_train, y_train)
        val_loss, val_probs = softmax_loss(W, b, X_val, y_val)
        val_accuracy = float((val_probs.argmax(axis=1) == y_val).mean())
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        trial.log_metrics(
            {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy}, step=epoch
        )

    # One file per trial: the coordinator uploads it after the trial ends, so it must not be
    # overwritten by the next trial or deleted before the sweep finishes.
    path = os.path.join(plot_dir, f"trial-{trial.number:04d}", "loss_curve.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    plot_curves(history, f"trial {trial.number}: lr={lr:.3g}, l2={l2:.2g}, batch={batch_size}", path)
    trial.log_artifact(path)
    trial.set_user_attr("final_val_accuracy", val_accuracy)
    return val_loss


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument("--n-jobs", type=int, default=2, help="worker processes (-1: all cores)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLflow's default, ./mlflow.db)")
    parser.add_argument("--experiment", default="custom-loop-artifact", help="MLflow experiment name")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--plot-dir", default=None,
                        help="keep the per-trial plots here (default: a temporary directory, deleted)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> optuna.Study:
    args = parse_args(argv)
    plot_dir = args.plot_dir or tempfile.mkdtemp(prefix="sweeper-plots-")
    try:
        study = sweeper.optimize(
            objective,
            n_trials=args.n_trials,
            n_jobs=args.n_jobs,
            direction="minimize",
            seed=args.seed,
            objective_kwargs={"plot_dir": os.path.abspath(plot_dir), "epochs": args.epochs},
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
        )
    finally:
        # optimize returns only after every MLflow write (the plots included) is done.
        if args.plot_dir is None:
            shutil.rmtree(plot_dir, ignore_errors=True)
    best = study.best_trial
    print(f"best validation loss: {best.value:.4f} "
          f"(accuracy {best.user_attrs.get('final_val_accuracy', float('nan')):.4f}, trial {best.number})")
    print(f"best params: {best.params}")
    print(f"MLflow parent run: {study.user_attrs.get('mlflow_parent_run_id')}; "
          "each child run has the metric curves and artifact loss_curve.png")
    return study


if __name__ == "__main__":
    main()
