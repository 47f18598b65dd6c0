"""The checks that need the libraries: a config's names and values against scikit-learn and Optuna.

``build`` already checked shapes and types without importing anything; this stage imports
sklearn/optuna (inside functions: importing ``sweeper.config`` stays light) to find out whether
the estimator, its parameters, the scorer, the loader and the sampler/pruner arguments exist,
and whether each value is one the estimator or loader declares it accepts, so ``sweeper
validate`` catches what ``fit`` would reject, without fitting. Every problem at once.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._compat import parameter_constraints, unmet_constraint
from ..errors import ConfigError, ConfigProblem
from .imports import DEFAULT_ALLOWED_IMPORTS, objective_refusal, resolve_import_path
from .rules import count_text, did_you_mean, in_file_order, is_number, line_of, show
from .schema import MAX_DATA_VALUES, DataSpec, PrunerSpec, SweepConfig
from .space import grid_values, make_pruner, make_sampler, pruner_class, sampler_class

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

__all__ = ["check_config"]

#: Optional packages some samplers need at sampling time; checked early so trial 11 does not fail.
_SAMPLER_NEEDS = {"cmaes": ("cmaes", "pip install cmaes"), "gp": ("torch", "pip install torch")}
# sklearn.datasets functions that are not ``X, y`` loaders or need a path of their own.
_NOT_LOADERS = {"load_files", "load_sample_image", "load_sample_images", "load_svmlight_file", "load_svmlight_files"}
#: Arguments of ``make_*`` generators that size the data they make.
_SIZE_ARGS = ("n_samples", "n_features", "n_dim")

Add = Callable[..., None]


def check_config(cfg: SweepConfig) -> None:
    """Check the names in ``cfg`` against the libraries: estimator, its params and their values,
    scorer, loader and its arguments, sampler/pruner arguments, and the user objective.
    Imports sklearn/optuna, so it is slow-ish.

    The user ``objective`` needs no ``allow_imports``: the user named their own code in their own
    config. It is still imported here (running its module) so a typo fails now, not in trial 1;
    stdlib modules and objects defined outside the named module are refused (as strings first).

    Raises:
        ConfigError: every problem found.

    Example:
        >>> check_config(load_config("configs/digits_svc_grid.yaml"))
    """
    problems: list[ConfigProblem] = []

    def add(key: str, expected: str, got: str | None = None, hint: str | None = None) -> None:
        problems.append(ConfigProblem(key, expected, got, line_of(cfg.key_lines, key), hint))

    def take(error: ConfigError) -> None:
        for p in error.problems:
            add(p.key, p.expected, p.got, p.hint)

    if cfg.model is not None:
        _check_model(cfg, add, take)
    if cfg.data is not None:
        _check_data(cfg.data, add)
    if cfg.evaluation.scoring is not None and cfg.model is not None:
        from sklearn.metrics import get_scorer_names

        names = sorted(get_scorer_names())
        if cfg.evaluation.scoring not in names:
            add(
                "evaluation.scoring",
                "a sklearn scorer name",
                show(cfg.evaluation.scoring),
                did_you_mean(cfg.evaluation.scoring, names, n=3),
            )
    if cfg.objective is not None:
        _check_objective(cfg, add, take)
    _check_optuna(cfg, add)
    if problems:
        raise ConfigError(cfg.source, in_file_order(problems))


def _check_model(cfg: SweepConfig, add: Add, take: Callable[[ConfigError], None]) -> None:
    assert cfg.model is not None
    from sklearn.base import BaseEstimator

    try:
        cls = resolve_import_path(cfg.model.estimator, DEFAULT_ALLOWED_IMPORTS + cfg.allow_imports, key="model.estimator")
    except ConfigError as exc:
        take(exc)
        return
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        add("model.estimator", "a class subclassing sklearn.base.BaseEstimator", show(cfg.model.estimator))
        return
    if cfg.evaluation.partial_fit_epochs is not None and not hasattr(cls, "partial_fit"):
        add("evaluation.partial_fit_epochs", "an estimator with partial_fit", show(cfg.model.estimator), "e.g. SGDClassifier")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valid = sorted(cls().get_params(deep=True))
    except Exception:  # needs constructor arguments: names are checked when a trial runs
        return
    unknown = set()
    for key, name in [(f"model.params.{n}", n) for n in cfg.model.params] + [
        (f"search_space.{p.name}", p.name) for p in cfg.search_space
    ]:
        if name not in valid:
            unknown.add(name)
            add(key, f"a parameter of {cls.__name__}", show(name), did_you_mean(name, valid, n=3))
    _check_declared_values(cfg, cls, unknown, add)


def _check_declared_values(cfg: SweepConfig, cls: type, skip: set[str], add: Add) -> None:
    """Each fixed value, choice and range bound against what the estimator declares it accepts
    (what ``fit`` checks first): ``kernel: sigmoidd`` or ``C: {low: -1}`` fail here, not in
    every trial. Parameters without a declaration (``step__param`` of a Pipeline) are skipped."""
    assert cfg.model is not None
    declared = parameter_constraints(cls)
    if not declared:
        return
    owner = cls.__name__
    for name, value in cfg.model.params.items():
        if name in declared and name not in skip:
            _judge(f"model.params.{name}", f"{owner}'s {name}", declared[name], value, add)
    for param in cfg.search_space:
        if param.name not in declared or param.name in skip:
            continue
        where = f"search_space.{param.name}"
        if param.type == "categorical":
            for index, choice in enumerate(param.choices or ()):
                _judge(f"{where}.choices.{index}", f"{owner}'s {param.name}", declared[param.name], choice, add)
        else:
            for bound in ("low", "high"):
                _judge(f"{where}.{bound}", f"{owner}'s {param.name}", declared[param.name], getattr(param, bound), add,
                       float_hint="it takes integers: use type: int with integer bounds")


def _judge(key: str, whose: str, constraints: Any, value: Any, add: Add, *, float_hint: str | None = None) -> bool:
    """Add a problem when ``value`` meets none of ``constraints``; True when it did."""
    unmet = unmet_constraint(constraints, value)
    if unmet is None:
        return False
    accepted, words = unmet
    hint = did_you_mean(value, words) if isinstance(value, str) and words else None
    if hint is None and isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        if unmet_constraint(constraints, int(value)) is None:
            hint = float_hint or f"write {int(value)}: YAML reads a number with a dot or an exponent as a float"
    add(key, f"{accepted} ({whose})", show(value), hint)
    return True


def _check_data(data: DataSpec, add: Add) -> None:
    if data.loader is not None:
        _check_loader(data, add)
    if data.file is not None and data.target is not None:
        columns = _columns(Path(data.file))
        if columns is not None and data.target not in columns:
            add(
                "data.target",
                f"a column of {Path(data.file).name}",
                show(data.target),
                did_you_mean(data.target, columns, n=3),
            )


def _check_loader(data: DataSpec, add: Add) -> None:
    assert data.loader is not None
    import sklearn.datasets

    loaders = sorted(
        n
        for n in dir(sklearn.datasets)
        if n.startswith(("load_", "make_")) and n not in _NOT_LOADERS and callable(getattr(sklearn.datasets, n))
    )
    if data.loader not in loaders:
        add("data.loader", "a dataset function in sklearn.datasets", show(data.loader), did_you_mean(data.loader, loaders, n=3))
        return
    function = getattr(sklearn.datasets, data.loader)
    parameters = inspect.signature(function).parameters
    known = {}
    for name, value in data.kwargs.items():
        if name not in parameters:
            add(
                f"data.kwargs.{name}",
                f"an argument of sklearn.datasets.{data.loader}",
                show(name),
                did_you_mean(name, list(parameters)),
            )
        else:
            known[name] = value
    too_big = _check_generated_size(data.loader, parameters, known, add)
    declared = parameter_constraints(function)
    for name, value in known.items():
        if name in declared and name not in too_big:
            _judge(f"data.kwargs.{name}", f"{data.loader}'s {name}", declared[name], value, add)


def _count(value: Any) -> int | None:
    """A size argument as a count: an int, an integral float (``1e12``), or a list of them."""
    if isinstance(value, (list, tuple)):
        counts = [_count(item) for item in value]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    if is_number(value) and float(value).is_integer():
        return int(value)
    return None


def _check_generated_size(
    loader: str, parameters: Mapping[str, inspect.Parameter], kwargs: Mapping[str, Any], add: Add
) -> set[str]:
    """Refuse a ``make_*`` call that would make more than ``MAX_DATA_VALUES`` values (a typo of
    ``n_samples: 1e12`` would fill memory in every worker); returns the keys blamed."""
    if not loader.startswith("make_"):
        return set()
    sizes = {}
    for name in _SIZE_ARGS:
        if name in parameters:
            value = kwargs.get(name, parameters[name].default)
            count = _count(value)
            if count is not None:
                sizes[name] = count
    total = sizes.get("n_samples", 1) * sizes.get("n_features", 1) if "n_samples" in sizes else 0
    total = max(total, sizes.get("n_dim", 0) ** 2)
    if total <= MAX_DATA_VALUES:
        return set()
    given = [name for name in _SIZE_ARGS if name in kwargs and name in sizes] or ["n_samples"]
    blamed = max(given, key=lambda name: sizes.get(name, 0))
    shown = " x ".join(f"{name} {count_text(sizes[name])}" for name in ("n_samples", "n_features") if name in sizes)
    if sizes.get("n_dim", 0) ** 2 == total:
        shown = f"n_dim {count_text(sizes['n_dim'])} squared"
    value = kwargs.get(blamed)
    hint = None
    if isinstance(value, float):
        hint = f"and {blamed} takes an integer: YAML reads a number with a dot or an exponent as a float"
    add(
        f"data.kwargs.{blamed}",
        f"at most {MAX_DATA_VALUES:,} generated values",
        f"{count_text(total)} ({shown})",
        hint,
    )
    return {blamed}


def _columns(path: Path) -> list[str] | None:
    """Column names from the file header; None when they cannot be read cheaply."""
    try:
        if path.suffix.lower() == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as handle:
                return next(csv.reader(handle), [])
        import pyarrow.parquet

        return list(pyarrow.parquet.read_schema(path).names)
    except Exception:
        return None


def _check_objective(cfg: SweepConfig, add: Add, take: Callable[[ConfigError], None]) -> None:
    assert cfg.objective is not None
    refusal = objective_refusal(cfg.objective, cfg.allow_imports)
    if refusal is not None:
        add("objective", *refusal)
        return
    module = cfg.objective.partition(":")[0]
    try:
        function = resolve_import_path(cfg.objective, (module, *cfg.allow_imports), key="objective")
    except ConfigError as exc:
        take(exc)
        return
    if not callable(function):
        add("objective", "a callable taking a trial", f"{type(function).__name__}")


def _check_optuna(cfg: SweepConfig, add: Add) -> None:
    need = _SAMPLER_NEEDS.get(cfg.sampler.name)
    if need is not None and importlib.util.find_spec(need[0]) is None:
        add("sampler.name", f"the {need[0]} package for the {cfg.sampler.name} sampler", "not installed", need[1])
        return
    builders: Sequence[tuple[str, Callable[[SweepConfig], Any]]] = (("sampler", _make_sampler), ("pruner", _make_pruner))
    for key, build in builders:
        spec = getattr(cfg, key)
        if spec is None:
            continue
        cls = sampler_class(spec.name) if key == "sampler" else pruner_class(spec.name)
        accepted = inspect.signature(cls).parameters
        unknown = [name for name in spec.kwargs if name not in accepted]
        for name in unknown:
            add(f"{key}.{name}", f"an argument of optuna.{key}s.{cls.__name__}", show(name), did_you_mean(name, list(accepted)))
        if unknown:
            continue
        try:
            build(cfg)
        except Exception as exc:
            add(key, f"arguments accepted by optuna.{key}s.{cls.__name__}", f"{type(exc).__name__}: {exc}")


def _make_sampler(cfg: SweepConfig) -> BaseSampler:
    grid = grid_values(cfg.search_space) if cfg.sampler.name == "grid" else None
    return make_sampler(cfg.sampler.name, cfg.sampler.kwargs, seed=cfg.seed, grid=grid)  # type: ignore[no-any-return]


def _make_pruner(cfg: SweepConfig) -> BasePruner:
    spec = cfg.pruner or PrunerSpec("none")
    return make_pruner(spec.name, spec.kwargs)  # type: ignore[no-any-return]

