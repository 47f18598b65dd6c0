"""An objective written for plain MLflow: its module imports mlflow, which tells the worker to
point ``mlflow.log_*`` at the trial's child run. Kept apart from ``_objectives`` so other tests'
workers do not pay mlflow's 3 s import."""

from __future__ import annotations

import mlflow


def uses_mlflow_directly(trial):
    x = trial.suggest_float("x", 0, 1)
    mlflow.log_metric("plain_metric", x * 10)
    mlflow.set_tag("plain_tag", f"t{trial.number}")
    return x
