"""Turns declared search spaces and sampler/pruner names into Optuna objects.

``suggest_on`` works on both an ``optuna.Trial`` (the coordinator pre-sampling a declared
space) and a ``sweeper.Trial`` (the built-in objective re-reading those values in a worker),
because both speak the same ``suggest_*`` methods. Optuna is imported inside functions only.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigError, ConfigProblem

SAMPLERS = ("grid", "random", "tpe", "cmaes", "qmc", "nsgaii", "gp", "bruteforce")
PRUNERS = (
    "none", "median", "percentile", "successive_halving", "hyperband", "wilcoxon", "threshold",
)


def suggest_on(trial: Any, spec: Any) -> Any:
    """Ask ``trial`` for one declared parameter (``spec`` is a ``config.ParamSpec`` or its dict)."""
    get = spec.get if isinstance(spec, Mapping) else lambda k, d=None: getattr(spec, k, d)
    name, kind = get("name"), get("type")
    if kind == "categorical":
        return trial.suggest_categorical(name, list(get("choices")))
    if kind == "int":
        step = get("step")
        return trial.suggest_int(
            name, int(get("low")), int(get("high")), step=int(step or 1), log=bool(get("log"))
        )
    step = get("step")
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


def make_sampler(
    name: str | Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> Any:
    """Build an Optuna sampler from its short name; an Optuna sampler object passes through."""
    import optuna

    if not isinstance(name, str):
        return name
    kwargs = dict(kwargs or {})
    if seed is not None and name not in ("bruteforce",):
        kwargs.setdefault("seed", seed)
    samplers = optuna.samplers
    if name == "grid":
        if grid is None:
            raise _unknown("sampler", name, "a declared search space for the grid sampler")
        return samplers.GridSampler(dict(grid), **kwargs)
    factories = {
        "random": samplers.RandomSampler,
        "tpe": samplers.TPESampler,
        "cmaes": samplers.CmaEsSampler,
        "qmc": samplers.QMCSampler,
        "nsgaii": samplers.NSGAIISampler,
        "gp": samplers.GPSampler,
        "bruteforce": samplers.BruteForceSampler,
    }
    if name not in factories:
        raise _unknown("sampler", name, f"one of {', '.join(SAMPLERS)}")
    if name == "bruteforce" and seed is not None:
        kwargs.setdefault("seed", seed)
    return factories[name](**kwargs)


def make_pruner(name: str | Any | None, kwargs: Mapping[str, Any] | None = None) -> Any:
    """Build an Optuna pruner from its short name; ``None``/"none" gives ``NopPruner``."""
    import optuna

    pruners = optuna.pruners
    if name is None or name == "none":
        return pruners.NopPruner()
    if not isinstance(name, str):
        return name
    factories = {
        "median": pruners.MedianPruner,
        "percentile": pruners.PercentilePruner,
        "successive_halving": pruners.SuccessiveHalvingPruner,
        "hyperband": pruners.HyperbandPruner,
        "wilcoxon": pruners.WilcoxonPruner,
        "threshold": pruners.ThresholdPruner,
    }
    if name not in factories:
        raise _unknown("pruner", name, f"one of {', '.join(PRUNERS)}")
    return factories[name](**dict(kwargs or {}))


def _unknown(key: str, got: str, expected: str) -> ConfigError:
    close = difflib.get_close_matches(got, SAMPLERS + PRUNERS, n=1)
    hint = f"did you mean {close[0]!r}?" if close else None
    return ConfigError(None, [ConfigProblem(key, expected, repr(got), hint=hint)])
