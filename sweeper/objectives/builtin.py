"""How the built-in objective's arguments come from a config: the estimator, its fixed params,
the dataset (loaded once here and shared with the workers), the evaluation, and each trial's
share of the cores for the estimator's own threads and jobs (``workers.nested.core_share``,
the same share every worker's nested parallelism gets)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..workers.nested import core_share, cores

logger = logging.getLogger("sweeper")

#: Where workers find the built-in objective.
OBJECTIVE = "sweeper.objectives.sklearn:sklearn_objective"

__all__ = ["OBJECTIVE", "builtin_kwargs", "cores", "spec_dict"]


def builtin_kwargs(cfg: Any, workers: int, share: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The keyword arguments of ``sklearn_objective`` for ``cfg``. The dataset goes through the
    backend's ``share``, whatever its size (read once by every worker, not sent with every trial)."""
    import numpy as np

    from .sklearn import load_dataset

    assert cfg.model is not None and cfg.data is not None
    data: dict[str, Any] = {
        "loader": cfg.data.loader, "kwargs": dict(cfg.data.kwargs), "file": cfg.data.file, "target": cfg.data.target,
    }
    X, y = load_dataset(data, cache=False)  # once, here; workers map it from shared memory
    if isinstance(X, np.ndarray) and isinstance(y, np.ndarray):
        data = share({"X": X, "y": y}, min_bytes=0)
        del X, y
    evaluation = {
        "cv": cfg.evaluation.cv, "holdout": cfg.evaluation.holdout, "scoring": cfg.evaluation.scoring,
        "shuffle": cfg.evaluation.shuffle, "partial_fit_epochs": cfg.evaluation.partial_fit_epochs,
    }
    available, per_worker = cores(), core_share(workers)  # what a worker's own processes get too
    fixed = dict(cfg.model.params)
    inner = fixed.get("n_jobs")
    if isinstance(inner, int) and (inner < 0 or inner * workers > available):
        # workers x inner jobs must fit the cores; the sweep itself is the parallelism
        fixed["n_jobs"] = per_worker
        logger.warning("model.params.n_jobs=%s with %d workers on %d cores would oversubscribe; using n_jobs=%d",
                       inner, workers, available, fixed["n_jobs"])
    return {
        "estimator": cfg.model.estimator,
        "fixed_params": fixed,
        "data": data,
        "evaluation": evaluation,
        "space": [spec_dict(p) for p in cfg.search_space],
        "inner_threads": per_worker,
        "seed": cfg.seed,
        "prune": cfg.pruner is not None and cfg.pruner.name != "none",
    }


def spec_dict(param: Any) -> dict[str, Any]:
    """A declared parameter as plain data (what a worker needs to ask for it again)."""
    return {
        "name": param.name, "type": param.type, "low": param.low, "high": param.high,
        "log": param.log, "step": param.step,
        "choices": None if param.choices is None else list(param.choices),
    }
