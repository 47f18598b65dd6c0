"""The sweep config's shape: frozen dataclasses whose fields ARE the table of options.

Each option is declared once, as a field carrying its rule, help and example in
``field(metadata=...)``: the field's default is the option's default, ``build`` checks values
with the rule (YAML files, ``--set`` and ``sweeper.optimize()`` alike), and ``reference()``
renders README's "Config reference" from the same fields (``python -m sweeper.config``),
so adding an option is one edit here. Stdlib only.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal, TypeVar

from .._redact import redact_uri
from .rules import (
    Flag,
    Fraction,
    Integer,
    ModuleList,
    Rule,
    Seconds,
    Section,
    Seed,
    Text,
    TextList,
    Workers,
)
from .space import MAX_GRID_POINTS, PRUNER_CLASSES, SAMPLER_CLASSES

__all__ = [
    "DataSpec",
    "EvaluationSpec",
    "ModelSpec",
    "Option",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SweepConfig",
    "TrackingSpec",
    "keys_of",
    "option_of",
    "options",
    "reference",
]

Direction = Literal["minimize", "maximize"]
ParamType = Literal["float", "int", "categorical"]
Scalar = None | bool | int | float | str

#: The holdout fraction ``partial_fit_epochs`` scores on when none is given.
DEFAULT_HOLDOUT = 0.2
#: Most values the built-in objective may generate with a ``make_*`` loader (800 MB of float64).
MAX_DATA_VALUES = 100_000_000

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
NAME_EXPECTED = "a sweep name of letters, digits, '_', '.', '-' (not starting with '.' or '-')"
#: A Dask scheduler address, or ``local:N`` for a local cluster of N workers.
CLUSTER_RE = re.compile(r"^(?:(?:tcp|tls|ws|wss|ucx)://[^\s/]+(?::\d+)?/?|local:[1-9][0-9]{0,3})\Z")

_OPTION = "sweeper.option"
T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """One row of the table: how a key is checked and how the reference describes it."""

    rule: Rule
    help: str
    example: str | None = None  # YAML after "key: " in the reference; None: the section's keys follow
    embedded: bool = True  # also a keyword option of sweeper.optimize()
    default_text: str | None = None  # the default in words, when the field's default does not say it
    heading: str | None = None  # a comment line above the key in the reference
    commented: bool = False  # shown commented out (an alternative to the key above it)
    more: tuple[str, ...] = ()  # reference lines under the key (nested examples)


def option(default: T, rule: Rule, help: str, **extra: Any) -> T:
    """A dataclass field that is an option: ``default``, checked by ``rule``, described by ``help``."""
    made: T = field(default=default, metadata={_OPTION: Option(rule, help, **extra)})
    return made


def section(factory: Callable[[], T], rule: Rule, help: str, **extra: Any) -> T:
    """An option whose default is built fresh for each config (a nested spec or a mapping)."""
    made: T = field(default_factory=factory, metadata={_OPTION: Option(rule, help, **extra)})
    return made


def option_of(spec: Field[Any]) -> Option | None:
    found = spec.metadata.get(_OPTION)
    return found if isinstance(found, Option) else None


def options(cls: type) -> Iterator[tuple[Field[Any], Option]]:
    """The fields of a spec class that are options, in declaration order."""
    for spec in fields(cls):
        found = option_of(spec)
        if found is not None:
            yield spec, found


def keys_of(cls: type) -> tuple[str, ...]:
    """The keys a section accepts: its option fields (all fields when none carries an option)."""
    keys = tuple(spec.name for spec, _ in options(cls))
    return keys or tuple(spec.name for spec in fields(cls) if spec.name != "name")


def default_of(spec: Field[Any]) -> Any:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return MISSING


# --- the sections ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One searched hyperparameter, with the same rules as Optuna's distributions."""

    name: str
    type: ParamType
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Scalar, ...] | None = None

    @property
    def is_discrete(self) -> bool:
        """True when the values can be listed (what a grid needs)."""
        return self.type != "float" or self.step is not None

    def describe(self) -> str:
        """One line for ``sweeper validate``: ``float in [0.1, 100], log``."""
        if self.type == "categorical":
            return f"one of {list(self.choices or ())}"
        text = f"{self.type} in [{self.low}, {self.high}]"
        if self.log:
            text += ", log"
        if self.step is not None:
            text += f", step {self.step}"
        return text


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A scikit-learn style estimator by import path, plus hyperparameters fixed for every trial."""

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataSpec:
    """Where the built-in objective gets ``X, y``: a ``sklearn.datasets`` function or a file."""

    loader: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    file: str | None = None  # absolute path (resolved against the config file's directory)
    target: str | None = None


@dataclass(frozen=True, slots=True)
class EvaluationSpec:
    """How the built-in objective scores a trial: k-fold CV or one holdout split."""

    cv: int | None = option(
        5, Integer(minimum=2, expected="an integer number of folds >= 2"), "folds >= 2 ...", example="5"
    )
    holdout: float | None = option(
        None, Fraction(), "... or one holdout fraction in (0, 1), not both", example="0.2"
    )
    scoring: str | None = option(
        None,
        Text(expected="a sklearn scorer name (e.g. accuracy)"),
        "sklearn scorer name",
        example="accuracy",
        default_text="estimator.score",
    )
    shuffle: bool = option(
        True, Flag(), "shuffled (stratified for classifiers) folds, seeded by `seed`", example="true"
    )
    partial_fit_epochs: int | None = option(
        None,
        Integer(minimum=1),
        f"train with partial_fit epoch by epoch on a holdout split (default fraction {DEFAULT_HOLDOUT})",
        example="10",
    )


@dataclass(frozen=True, slots=True)
class SamplerSpec:
    """An Optuna sampler by short name, with its constructor arguments (``seed`` is top level)."""

    name: str = "tpe"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PrunerSpec:
    """An Optuna pruner by short name, with its constructor arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrackingSpec:
    """MLflow store and experiment. ``uri`` may hold credentials: show it via ``redact_uri``."""

    uri: str | None = option(
        None,
        Text(expected="an MLflow tracking URI (e.g. sqlite:///mlflow.db)"),
        "MLflow store",
        example="sqlite:///mlflow.db",
        default_text="$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory",
    )
    experiment: str | None = option(
        None,
        Text(expected="an experiment name", max_length=500),
        "MLflow experiment (at most 500 characters)",
        example="my_exp",
        default_text="the sweep name",
    )
    required: bool = option(
        True,
        Flag(),
        "false: an unreachable store is a warning; runs are spooled to .sweeper/<name>/spool.jsonl",
        example="true",
    )


# --- the sweep ------------------------------------------------------------------------------

_SAMPLERS = "|".join(SAMPLER_CLASSES)
_PRUNERS = "|".join(PRUNER_CLASSES)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep. Build it with ``load_config``, ``config_from_dict`` or
    ``options_from_kwargs``, never by hand.

    ``direction`` is already resolved when ``directions`` is None: ``maximize`` for the built-in
    objective (sklearn scorers are greater-is-better), ``minimize`` for a user objective.
    ``pruner`` None means no pruning (not Optuna's MedianPruner default). ``n_jobs`` None means
    all cores. ``n_trials`` None means "until ``timeout``" (a grid defaults to its size).
    """

    name: str = field(  # no field default: every builder gives one
        metadata={
            _OPTION: Option(
                Text(expected=NAME_EXPECTED, pattern=NAME_RE),
                "letters, digits, '_', '.', '-'",
                example="my_sweep",
                default_text="the file name without .yaml (sweeper.optimize(): sweep-<date>-<time>)",
            )
        }
    )
    source: str | None = None  # where the config came from (a file path); not an option
    objective: str | None = option(
        None,
        Section(expected='"package.module:function"'),
        '"module.path:function" taking a trial; not a standard-library module',
        example="mypkg.train:objective",
        embedded=False,
        heading="What to optimize: EITHER a user objective ...",
    )
    objective_kwargs: dict[str, Any] = section(
        dict, Section(expected="a mapping of keyword arguments"), "only with objective",
        example="{epochs: 3}", embedded=False,
    )
    model: ModelSpec | None = option(
        None,
        Section(expected="an estimator class path, or {estimator: ..., params: {...}}"),
        "or {estimator: sklearn.svm.SVC, params: {...fixed hyperparameters}}",
        example="sklearn.svm.SVC",
        embedded=False,
        heading="... OR the built-in scikit-learn objective (model + data)",
    )
    data: DataSpec | None = option(
        None,
        Section(expected="a loader name, {loader: ..., kwargs: {...}} or {file: ..., target: ...}"),
        "or {loader: make_classification, kwargs: {n_samples: 500}} or {file: train.csv, target: label} "
        f"(.csv/.parquet, relative to this file); fetch_* loaders are refused (network); make_* "
        f"loaders make at most {MAX_DATA_VALUES:,} values",
        example="load_digits",
        embedded=False,
    )
    evaluation: EvaluationSpec = section(
        EvaluationSpec, Section(expected="a mapping"), "built-in objective only", embedded=False
    )
    search_space: tuple[ParamSpec, ...] = option(
        (),
        Section(expected="a mapping of parameter name -> distribution"),
        "in order; names must be estimator params (Pipeline step__param works)",
        embedded=False,
        more=(
            "C: {type: float, low: 0.1, high: 100, log: true}",
            "max_depth: {type: int, low: 2, high: 10, step: 2}",
            "frac: {low: 0.0, high: 1.0, step: 0.25}   # no type: int if both bounds (and step) are ints, else float",
            "kernel: [rbf, linear]            # a list = categorical; scalars only (null allowed), no duplicates",
            f"# at most 2**53 values per numeric parameter; a grid at most {MAX_GRID_POINTS:,} points",
        ),
    )
    direction: Direction | None = option(
        "minimize",
        Section(expected="one of minimize, maximize"),
        "maximize or minimize",
        example="maximize",
        default_text="maximize for model (sklearn scorers), minimize for objective",
    )
    directions: tuple[Direction, ...] | None = option(
        None,
        Section(expected="a non-empty list of minimize/maximize"),
        "multi-objective (user objective only), instead of direction",
        example="[minimize, maximize]",
        commented=True,
    )
    metric_names: tuple[str, ...] | None = option(
        None,
        TextList(),
        "names of the objective values, one per direction",
        example="[loss, accuracy]",
        commented=True,
    )
    sampler: SamplerSpec = section(
        SamplerSpec,
        Section(expected="a sampler name or {name: ..., <arguments>}"),
        f"{_SAMPLERS}, or {{name: tpe, n_startup_trials: 5}}; grid: every parameter discrete "
        "(choices, int, float with step)",
        example="tpe",
        default_text="tpe",
    )
    pruner: PrunerSpec | None = option(
        None,
        Section(expected="a pruner name or {name: ..., <arguments>}"),
        f"{_PRUNERS}, or {{name: median, n_warmup_steps: 2}}",
        example="median",
        default_text="none",
    )
    n_trials: int | None = option(
        None,
        Integer(minimum=1),
        "total for the sweep; required unless sampler is grid (default: grid size) or timeout is set",
        example="50",
    )
    timeout: float | None = option(
        None, Seconds(), "sweep wall clock in seconds: no trial starts after it", example="600"
    )
    trial_timeout: float | None = option(
        None, Seconds(), 'per trial, seconds: killed and failed with reason "timeout"', example="60"
    )
    n_jobs: int | None = option(
        None, Workers(), "worker processes; -1 or null = all cores", example="2", default_text="all cores"
    )
    cluster: str | None = option(
        None,
        Text(expected="a Dask scheduler address (tcp://host:8786) or local:N", pattern=CLUSTER_RE),
        "run workers on a Dask cluster: a scheduler address, or local:N for N local workers",
        example="tcp://scheduler:8786",
        default_text="null (worker processes on this machine)",
        commented=True,
    )
    seed: int | None = option(None, Seed(), "sampler seed and CV shuffling", example="42")
    tracking: TrackingSpec = section(TrackingSpec, Section(expected="a mapping"), "MLflow tracking")
    storage_dir: str | None = option(
        None, Text(expected="a directory path"), "where the study journal goes", example=".sweeper",
        default_text=".sweeper",
    )
    allow_imports: tuple[str, ...] = option(
        (),
        ModuleList(),
        "extra module prefixes model.estimator may come from (default: sklearn only)",
        example="[mypkg]",
        embedded=False,
    )
    max_retries: int = option(
        0,
        Integer(minimum=0, nullable=False),
        "re-run a crashed or timed-out trial's params this many times",
        example="0",
    )
    retry_exceptions: bool = option(
        False,
        Flag(),
        "... and trials whose objective raised (retries do not use up n_trials)",
        example="false",
    )
    max_consecutive_failures: int | None = option(
        10,
        Integer(minimum=1),
        "stop the sweep after this many failures in a row (null: never); exit 1",
        example="10",
    )
    fail_fast: bool = option(False, Flag(), "true: stop at the first failed trial; exit 1", example="false")
    max_trials_per_worker: int | None = option(
        None, Integer(minimum=1), "recycle a worker process after this many trials", example="null"
    )
    max_worker_memory_mb: int | None = option(
        None,
        Integer(minimum=1),
        "recycle a worker after a trial that left it bigger than this",
        example="null",
    )
    capture_output: bool = option(
        True,
        Flag(),
        "each trial's stdout/stderr (C and faulthandler too) -> output.txt on its run",
        example="true",
    )
    show_progress_bar: bool = option(
        False, Flag(), "a progress bar while the sweep runs (the CLI always shows progress)", example="false"
    )
    report: bool = option(
        True,
        Flag(),
        "end-of-sweep plots, trials.csv and best model (adds ~3-5 s; false skips)",
        example="true",
    )

    # Not fields (so asdict/logging never see them) and not slotted (so they can exist at all):
    # where each key was in the file, and which keys --set changed (keys only: values may hold
    # credentials). check_config uses them to name lines; dataclasses.replace drops them.

    @property
    def key_lines(self) -> Mapping[str, int]:
        """Key path -> line in ``source`` (empty when not loaded from a file)."""
        lines: Mapping[str, int] = getattr(self, "_key_lines", {})
        return lines

    @property
    def overridden_keys(self) -> tuple[str, ...]:
        """Key paths set by ``--set`` overrides."""
        keys: tuple[str, ...] = getattr(self, "_overridden_keys", ())
        return keys

    @property
    def study_directions(self) -> tuple[Direction, ...]:
        """What to pass to ``optuna.create_study(directions=...)``."""
        if self.directions is not None:
            return self.directions
        return (self.direction or "minimize",)

    @property
    def is_multi_objective(self) -> bool:
        return len(self.study_directions) > 1

    def as_dict(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain data for logging the resolved config; ``tracking.uri`` credentials masked."""
        data = asdict(self)
        if redact and self.tracking.uri is not None:
            data["tracking"]["uri"] = redact_uri(self.tracking.uri)
        return data


# --- the reference --------------------------------------------------------------------------

_COMMENT_COLUMN = 35
_WIDTH = 118


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lines_for(key: str, opt: Option, default: Any, indent: str) -> list[str]:
    text = opt.help
    shown_default = opt.default_text
    if shown_default is None and default is not MISSING and isinstance(default, (bool, int, float, str)):
        shown_default = _yaml_scalar(default)
    if shown_default is not None:
        glued = shown_default if len(shown_default) > 24 else shown_default.replace(" ", "\xa0")
        text += f"; default:\xa0{glued}"  # a short default stays on the line of its "default:"
    head = f"{indent}{'# ' if opt.commented else ''}{key}:" + (f" {opt.example}" if opt.example else "")
    column = max(_COMMENT_COLUMN, len(head) + 1)
    chunks = textwrap.wrap(text, width=_WIDTH - column - 2, break_on_hyphens=False) or [""]
    lines = [head.ljust(column) + "# " + chunks[0]]
    lines += [" " * column + "# " + chunk for chunk in chunks[1:]]
    return [line.replace("\xa0", " ") for line in lines]


def reference() -> str:
    """README's "Config reference" block: every option with an example, its help and default."""
    lines: list[str] = []
    for spec, opt in options(SweepConfig):
        if opt.heading:
            lines.append(f"# {opt.heading}")
        default = default_of(spec)
        lines += _lines_for(spec.name, opt, default, "")
        if opt.example is None and is_dataclass(default):
            for sub_spec, sub_opt in options(type(default)):
                lines += _lines_for(sub_spec.name, sub_opt, default_of(sub_spec), "  ")
        lines += [f"  {line}" for line in opt.more]
    return "\n".join(lines) + "\n"
