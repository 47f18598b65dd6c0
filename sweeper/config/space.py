"""Search spaces and sampler/pruner names -> Optuna objects, and the size of a grid.

``suggest_on`` works on both an ``optuna.Trial`` (the coordinator pre-sampling a declared
space) and a ``sweeper.Trial`` (the built-in objective re-reading those values in a worker),
because both speak the same ``suggest_*`` methods. Points are counted in ``Decimal`` with room
for any float, so a degenerate step is a number to refuse, not an exception. Optuna is
imported inside functions only.
"""

from __future__ import annotations

import decimal
import inspect
import json
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import SweeperError

if TYPE_CHECKING:
    from .schema import ParamSpec

#: Most points a grid may have (every point is one trial).
MAX_GRID_POINTS = 1_000_000
#: Most values one numeric parameter may take, and the largest magnitude of an int bound: 2**53,
#: what a float holds exactly (Optuna's samplers compute in floats). A finer step (1e-300) is a
#: continuous range in disguise, and Optuna's own step arithmetic fails on it.
MAX_PARAM_POINTS = 2**53

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


@contextmanager
def _exact() -> Iterator[None]:
    """Decimal arithmetic wide enough for any two floats' ratio (about 632 digits)."""
    with decimal.localcontext() as context:
        context.prec = 1000
        context.traps[decimal.Inexact] = False
        yield


def param_points(param: ParamSpec) -> int | None:
    """How many values ``param`` can take; None when it is continuous (float without step)."""
    if param.type == "categorical":
        return len(param.choices or ())
    if not param.is_discrete:
        return None
    assert param.low is not None and param.high is not None
    with _exact():
        step = Decimal(str(param.step if param.step is not None else 1))
        return int((Decimal(str(param.high)) - Decimal(str(param.low))) // step) + 1


def grid_size(space: Sequence[ParamSpec]) -> int | None:
    """Number of points in the full grid, or None if a parameter is continuous.

    Example:
        >>> grid_size((ParamSpec("k", "categorical", choices=("a", "b")), ParamSpec("n", "int", 1, 3)))
        6
    """
    total = 1
    for param in space:
        count = param_points(param)
        if count is None:
            return None
        total *= count
    return total


def grid_values(space: Sequence[ParamSpec]) -> dict[str, list[Any]]:
    """The values of each parameter, as ``optuna.samplers.GridSampler(search_space=...)`` wants.

    Float steps are counted in ``Decimal`` so ``0.1`` steps land on 0.3, not 0.30000000000000004.

    Raises:
        ValueError: a parameter is continuous (float without step), or has more than
            ``MAX_GRID_POINTS`` values (a validated config never has).
    """
    values: dict[str, list[Any]] = {}
    for param in space:
        if param.type == "categorical":
            values[param.name] = list(param.choices or ())
            continue
        count = param_points(param)
        if count is None:
            raise ValueError(f"search_space.{param.name} is continuous; a grid needs step or choices")
        if count > MAX_GRID_POINTS:
            raise ValueError(f"search_space.{param.name} has {count:,} values; a grid has at most {MAX_GRID_POINTS:,}")
        if param.type == "int":
            assert isinstance(param.low, int)
            int_step = int(param.step or 1)
            values[param.name] = [param.low + k * int_step for k in range(count)]
        else:
            with _exact():
                low, step = Decimal(str(param.low)), Decimal(str(param.step))
                values[param.name] = [float(low + k * step) for k in range(count)]
    return values
