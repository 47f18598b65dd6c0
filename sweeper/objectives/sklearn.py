"""The built-in objective: a scikit-learn estimator, a dataset and a CV or holdout score.

Runs inside workers. Scores equal ``cross_val_score`` with the same splitter, scorer and
params, but fold by fold, so each fold's running mean is reported and a pruner can stop a
bad configuration after its first folds. Datasets load once per worker and stay cached while
the worker is reused. scikit-learn is imported inside functions (workers preload it).
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..config.space import suggest_on
from ..errors import TrialPruned

_DATASETS: dict[str, tuple[Any, Any]] = {}


def sklearn_objective(
    trial: Any,
    *,
    estimator: str,
    fixed_params: Mapping[str, Any],
    data: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    space: Sequence[Mapping[str, Any]],
    inner_threads: int | None = None,
    seed: int | None = None,
    prune: bool = False,
) -> float:
    """Score one configuration; the trial's params come from the declared ``space``."""
    from threadpoolctl import threadpool_limits

    sampled = {spec["name"]: suggest_on(trial, spec) for spec in space}
    model = build_estimator(estimator, {**fixed_params, **sampled}, cap_n_jobs="n_jobs" not in fixed_params)
    X, y = load_dataset(data)
    with threadpool_limits(limits=inner_threads):
        epochs = evaluation.get("partial_fit_epochs")
        if epochs:
            return _score_partial_fit(trial, model, X, y, evaluation, int(epochs), seed, prune)
        if evaluation.get("holdout"):
            return _score_holdout(trial, model, X, y, evaluation, seed)
        return _score_cv(trial, model, X, y, evaluation, seed, prune)


def build_estimator(path: str, params: Mapping[str, Any], *, cap_n_jobs: bool = True) -> Any:
    """An estimator from an import path: a class, a factory function, or an estimator object."""
    from sklearn.base import clone

    target = import_path(path)
    if isinstance(target, type) or (callable(target) and not hasattr(target, "get_params")):
        model = target()  # an estimator class, or a factory returning e.g. a Pipeline
    else:
        model = clone(target)  # a module-level estimator object
    model.set_params(**params)
    if cap_n_jobs and "n_jobs" in model.get_params(deep=False) and "n_jobs" not in params:
        # workers x inner jobs must not oversubscribe the cores: the sweep is the parallelism
        model.set_params(n_jobs=1)
    return model


def import_path(path: str) -> Any:
    """``"pkg.mod.Name"`` or ``"pkg.mod:Name"``; the allowlist was checked by the coordinator."""
    if ":" in path:
        module_name, _, qualname = path.partition(":")
    else:
        module_name, _, qualname = path.rpartition(".")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def load_dataset(data: Mapping[str, Any], *, cache: bool = True) -> tuple[Any, Any]:
    """(X, y) from a ``sklearn.datasets`` loader/generator or a CSV/Parquet file, cached.
    Arrays the coordinator published in shared memory arrive as ``data["X"]``/``data["y"]``."""
    if "X" in data:
        return data["X"], data["y"]
    key = json.dumps(data, sort_keys=True, default=str)
    if key not in _DATASETS or not cache:
        if data.get("loader"):
            import sklearn.datasets

            loader = getattr(sklearn.datasets, data["loader"])
            kwargs = dict(data.get("kwargs") or {})
            if data["loader"].startswith("load_"):
                kwargs.setdefault("return_X_y", True)
            X, y = loader(**kwargs)[:2]
        else:
            import pandas as pd

            path = os.fspath(data["file"])
            frame = pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)
            target = data["target"]
            y = frame[target].to_numpy()
            X = frame.drop(columns=[target])
        if not cache:
            return X, y
        _DATASETS[key] = (X, y)
    return _DATASETS[key]


def make_splitter(model: Any, y: Any, evaluation: Mapping[str, Any], seed: int | None) -> Any:
    from sklearn.base import is_classifier
    from sklearn.model_selection import KFold, StratifiedKFold, check_cv

    n_splits = int(evaluation.get("cv") or 5)
    if evaluation.get("shuffle", True):
        splitter = StratifiedKFold if is_classifier(model) else KFold
        return splitter(n_splits=n_splits, shuffle=True, random_state=seed if seed is not None else 0)
    return check_cv(n_splits, y, classifier=is_classifier(model))


def _score_cv(trial: Any, model: Any, X: Any, y: Any, evaluation: Mapping[str, Any],
              seed: int | None, prune: bool) -> float:
    from sklearn.base import clone
    from sklearn.metrics import check_scoring

    splitter = make_splitter(model, y, evaluation, seed)
    scorer = check_scoring(model, scoring=evaluation.get("scoring"))
    scores: list[float] = []
    fit_times: list[float] = []
    folds = list(splitter.split(X, y))
    for fold, (train, test) in enumerate(folds):
        fold_model = clone(model)
        started = time.perf_counter()
        fold_model.fit(_rows(X, train), _rows(y, train))
        fit_times.append(time.perf_counter() - started)
        score = float(scorer(fold_model, _rows(X, test), _rows(y, test)))
        scores.append(score)
        trial.log_metrics({"fold_score": score, "fold_fit_time_s": fit_times[-1]}, step=fold)
        running_mean = sum(scores) / len(scores)
        trial.report(running_mean, fold)
        if prune and fold < len(folds) - 1 and trial.should_prune():
            raise TrialPruned(f"pruned after fold {fold}")
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    trial.log_metrics({"cv_mean": mean, "cv_std": std, "fit_time_s": sum(fit_times) / len(fit_times)})
    return mean


def _holdout_split(model: Any, X: Any, y: Any, test_size: float, seed: int | None) -> tuple[Any, ...]:
    from sklearn.base import is_classifier
    from sklearn.model_selection import train_test_split

    return tuple(train_test_split(
        X, y, test_size=test_size, random_state=seed if seed is not None else 0,
        stratify=y if is_classifier(model) else None,
    ))


def _score_holdout(trial: Any, model: Any, X: Any, y: Any, evaluation: Mapping[str, Any],
                   seed: int | None) -> float:
    from sklearn.metrics import check_scoring

    X_train, X_test, y_train, y_test = _holdout_split(model, X, y, float(evaluation["holdout"]), seed)
    started = time.perf_counter()
    model.fit(X_train, y_train)
    fit_time = time.perf_counter() - started
    score = float(check_scoring(model, scoring=evaluation.get("scoring"))(model, X_test, y_test))
    trial.log_metrics({"holdout_score": score, "fit_time_s": fit_time})
    trial.report(score, 0)
    return score


def _score_partial_fit(trial: Any, model: Any, X: Any, y: Any, evaluation: Mapping[str, Any],
                       epochs: int, seed: int | None, prune: bool) -> float:
    import numpy as np
    from sklearn.base import is_classifier
    from sklearn.metrics import check_scoring

    X_train, X_test, y_train, y_test = _holdout_split(
        model, X, y, float(evaluation.get("holdout") or 0.25), seed
    )
    scorer = check_scoring(model, scoring=evaluation.get("scoring"))
    fit_kwargs = {"classes": np.unique(y)} if is_classifier(model) else {}
    score = float("nan")
    for epoch in range(epochs):
        model.partial_fit(X_train, y_train, **fit_kwargs)
        score = float(scorer(model, X_test, y_test))
        trial.log_metrics({"epoch_score": score}, step=epoch)
        trial.report(score, epoch)
        if prune and epoch < epochs - 1 and trial.should_prune():
            raise TrialPruned(f"pruned after epoch {epoch}")
    return score


def _rows(data: Any, indices: Any) -> Any:
    """The rows of a NumPy array or a pandas frame/series at ``indices`` (what scikit-learn's
    cross-validation takes, without its private helper)."""
    return data.iloc[indices] if hasattr(data, "iloc") else data[indices]
