"""Search spaces and sampler/pruner names -> Optuna objects.

``suggest_on`` works on both an ``optuna.Trial`` (the coordinator pre-sampling a declared
space) and a ``sweeper.Trial`` (the built-in objective re-reading those values in a worker),
because both speak the same ``suggest_*`` methods. Optuna is imported inside functions only.
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SweeperError

#: Sampler name in YAML (and ``optimize(sampler=...)``) -> class in ``optuna.samplers``.
SAMPLER_CLASSES: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "nsgaii": "NSGAIISampler",
    "gp": "GPSampler",
    "bruteforce": "BruteForceSampler",
}
#: Pruner name -> class in ``optuna.pruners`` ("none" is no pruning).
PRUNER_CLASSES: dict[str, str] = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "wilcoxon": "WilcoxonPruner",
    "threshold": "ThresholdPruner",
}


#: Arguments a pruner needs that a bare name cannot give (``percentile`` has no default).
PRUNER_DEFAULTS: dict[str, dict[str, Any]] = {"percentile": {"percentile": 25.0}}


def suggest_on(trial: Any, spec: Any) -> Any:
    """Ask ``trial`` for one declared parameter (``spec`` is a ``config.ParamSpec`` or its dict)."""
    get: Callable[..., Any] = spec.get if isinstance(spec, Mapping) else lambda k, d=None: getattr(spec, k, d)
    name, kind = get("name"), get("type")
    if kind == "categorical":
        return trial.suggest_categorical(name, list(get("choices")))
    step = get("step")
    if kind == "int":
        return trial.suggest_int(
            name, int(get("low")), int(get("high")), step=int(step or 1), log=bool(get("log"))
        )
    return trial.suggest_float(
        name, float(get("low")), float(get("high")),
        step=None if step is None else float(step), log=bool(get("log")),
    )


def suggest_from_json(trial: Any, name: str, distribution_json: str) -> Any:
    """Answer a worker's define-by-run ``Suggest`` on the coordinator's live ``optuna.Trial``."""
    data = json.loads(distribution_json)
    attrs = data["attributes"]
    kind = data["name"]
    if kind == "CategoricalDistribution":
        return trial.suggest_categorical(name, attrs["choices"])
    if kind == "IntDistribution":
        return trial.suggest_int(
            name, attrs["low"], attrs["high"], step=attrs.get("step", 1), log=attrs.get("log", False)
        )
    if kind == "FloatDistribution":
        return trial.suggest_float(
            name, attrs["low"], attrs["high"], step=attrs.get("step"), log=attrs.get("log", False)
        )
    raise ValueError(f"unknown distribution {kind!r}")


def sampler_class(name: str) -> type:
    import optuna.samplers

    return getattr(optuna.samplers, SAMPLER_CLASSES[name])  # type: ignore[no-any-return]


def pruner_class(name: str) -> type:
    import optuna.pruners

    return getattr(optuna.pruners, PRUNER_CLASSES[name])  # type: ignore[no-any-return]


def make_sampler(
    name: str | Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> Any:
    """An Optuna sampler from its short name (seeded where it takes a seed); an Optuna sampler
    object passes through. ``grid`` is the value lists the grid sampler enumerates."""
    if not isinstance(name, str):
        return name
    if name not in SAMPLER_CLASSES:
        raise SweeperError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_CLASSES)}")
    cls = sampler_class(name)
    kwargs = dict(kwargs or {})
    if name == "grid":
        if grid is None:
            raise SweeperError("the grid sampler needs a declared search space (use a YAML config)")
        kwargs["search_space"] = dict(grid)
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        kwargs.setdefault("seed", seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning on construction is noise here
        return cls(**kwargs)


def make_pruner(name: str | Any | None, kwargs: Mapping[str, Any] | None = None) -> Any:
    """An Optuna pruner from its short name; ``None`` or "none" gives ``NopPruner``."""
    if not isinstance(name, str) and name is not None:
        return name
    name = name or "none"
    if name not in PRUNER_CLASSES:
        raise SweeperError(f"unknown pruner {name!r}; expected one of {', '.join(PRUNER_CLASSES)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pruner_class(name)(**{**PRUNER_DEFAULTS.get(name, {}), **dict(kwargs or {})})
