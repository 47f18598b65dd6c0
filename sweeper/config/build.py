"""The sweep config: its schema, the YAML loader for it, and every check made before a run starts.

Two stages, so the CLI stays quick and ``sweeper validate`` can stop early:

    YAML file --_yaml.load_yaml--> raw dict + key lines
             --shorthands, --set overrides--> raw dict
             --config_from_dict--> SweepConfig       (pure checks: types, ranges, keys; stdlib only)
             --check_config--> ok | ConfigError      (imports sklearn/optuna lazily: names exist)

Every stage collects all problems and raises one ``ConfigError`` naming file, line, key path and
what was expected. Dotted import paths are code execution at import time, so they are checked
against an allowlist *as strings* before anything is imported (GHSA-37p2-j732-x8pj).
Module-level imports: stdlib, PyYAML and sweeper only (no sklearn/optuna/mlflow).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import os
import re
import sys
import types
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from .._redact import redact_uri
from .space import PRUNER_CLASSES, SAMPLER_CLASSES, make_pruner, make_sampler, pruner_class, sampler_class
from .yaml_loader import load_yaml, load_yaml_value
from ..errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "PRUNER_CLASSES",
    "SAMPLER_CLASSES",
    "DataSpec",
    "EvaluationSpec",
    "ModelSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SweepConfig",
    "TrackingSpec",
    "check_config",
    "config_from_dict",
    "grid_size",
    "grid_values",
    "load_config",
    "redact_uri",
    "resolve_import_path",
]

Direction = Literal["minimize", "maximize"]
ParamType = Literal["float", "int", "categorical"]
Scalar = None | bool | int | float | str

#: Optional packages some samplers need at sampling time; checked early so trial 11 does not fail.
_SAMPLER_NEEDS = {"cmaes": ("cmaes", "pip install cmaes"), "gp": ("torch", "pip install torch")}
#: Module prefixes a ``model.estimator`` may come from without ``allow_imports``.
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = ("sklearn",)

MAX_CONFIG_BYTES = 1 << 20
MAX_GRID_POINTS = 1_000_000
MANY_CHOICES = 1_000
DEFAULT_HOLDOUT = 0.2
DEFAULT_CV = 5

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_DOTTED_RE = re.compile(rf"^{_DOTTED}\Z")
_IMPORT_RE = re.compile(rf"^(?P<module>{_DOTTED})(?::(?P<attr>{_DOTTED}))?\Z")
_OBJECTIVE_RE = re.compile(rf"^{_DOTTED}:{_DOTTED}\Z")
_DATA_SUFFIXES = (".csv", ".parquet", ".pq")
# sklearn.datasets functions that are not ``X, y`` loaders or need a path of their own.
_NOT_LOADERS = {
    "load_files",
    "load_sample_image",
    "load_sample_images",
    "load_svmlight_file",
    "load_svmlight_files",
}


# --- the schema ------------------------------------------------------------------------------


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

    cv: int | None = 5
    holdout: float | None = None
    scoring: str | None = None
    shuffle: bool = True
    partial_fit_epochs: int | None = None


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

    uri: str | None = None
    experiment: str | None = None
    required: bool = True  # false: an unreachable store is a warning, runs are spooled to disk


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep. Build it with ``load_config`` or ``config_from_dict``, never by hand.

    ``direction`` is already resolved when ``directions`` is None: ``maximize`` for the built-in
    objective (sklearn scorers are greater-is-better), ``minimize`` for a user objective.
    ``pruner`` None means no pruning (not Optuna's MedianPruner default). ``n_jobs`` None means
    all cores. ``n_trials`` is always set after loading (a grid defaults to its size).
    """

    name: str
    source: str | None = None
    objective: str | None = None
    objective_kwargs: dict[str, Any] = field(default_factory=dict)
    model: ModelSpec | None = None
    data: DataSpec | None = None
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    search_space: tuple[ParamSpec, ...] = ()
    direction: Direction | None = "minimize"
    directions: tuple[Direction, ...] | None = None
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec | None = None
    n_trials: int | None = None
    timeout: float | None = None
    trial_timeout: float | None = None
    n_jobs: int | None = None
    seed: int | None = None
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    storage_dir: str | None = None
    allow_imports: tuple[str, ...] = ()
    max_retries: int = 0
    max_consecutive_failures: int | None = 10
    fail_fast: bool = False
    max_trials_per_worker: int | None = None  # recycle a worker after this many trials
    max_worker_memory_mb: int | None = None  # recycle a worker whose RSS grew past this
    capture_output: bool = True  # each trial's stdout/stderr -> its child run's output.txt
    retry_exceptions: bool = False  # max_retries also re-runs trials whose objective raised
    report: bool = True  # end-of-sweep plots, trials table and best model on the parent run

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


# --- loading ---------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> SweepConfig:
    """Read, parse and validate a sweep config file (no sklearn/optuna imports; see check_config).

    Args:
        path: the YAML file; relative ``data.file`` paths are resolved against its directory.
        overrides: ``"key.path=value"`` strings (value parsed as YAML), applied before validation.

    Returns:
        The frozen, validated ``SweepConfig``.

    Raises:
        ConfigError: every problem found, each with file, line, key path and what was expected.

    Example:
        >>> cfg = load_config("configs/digits_rf_tpe.yaml", ["n_trials=5"])
        >>> cfg.n_trials
        5
    """
    source = os.fspath(path)
    file_path = Path(source)
    try:
        with open(file_path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            source, [ConfigProblem("(file)", "an existing config file", "no such file")]
        ) from None
    except IsADirectoryError:
        raise ConfigError(source, [ConfigProblem("(file)", "a config file", "a directory")]) from None
    except OSError as exc:
        raise ConfigError(source, [ConfigProblem("(file)", "a readable config file", exc.strerror)]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source,
            [
                ConfigProblem(
                    "(file)", f"a config file of at most {MAX_CONFIG_BYTES:,} bytes", "a larger file"
                )
            ],
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            source, [ConfigProblem("(file)", "UTF-8 text", f"undecodable byte at offset {exc.start}", line)]
        ) from None
    data, lines = load_yaml(text, source)
    return config_from_dict(data, source=source, overrides=overrides, base_dir=file_path.parent, lines=lines)


def config_from_dict(
    data: Mapping[str, Any],
    source: str | None = None,
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
    lines: Mapping[str, int] | None = None,
) -> SweepConfig:
    """Validate an already-parsed config (what ``load_config`` does after reading YAML).

    Args:
        data: the raw mapping; it is never modified.
        source: shown in errors and used for the default ``name`` (its stem).
        overrides: ``"key.path=value"`` strings, applied to ``data`` before validation.
        base_dir: directory for relative ``data.file`` paths (default: the current directory).
        lines: key path -> line, from ``_yaml.load_yaml``.

    Raises:
        ConfigError: every problem found at once.
    """
    line_map = dict(lines or {})
    if not isinstance(data, Mapping):
        raise ConfigError(source, [ConfigProblem("(top level)", "a mapping of config keys", _show(data))])
    raw = _expand_shorthands(dict(data))
    problems: list[ConfigProblem] = []
    overridden: list[str] = []
    for text in overrides:
        raw = _apply_override(raw, text, overridden, problems)
    raw = _expand_shorthands(raw)
    for key in overridden:
        for path in [p for p in line_map if p == key or p.startswith(key + ".")]:
            del line_map[path]
    builder = _Builder(source, line_map, tuple(overridden), base_dir or Path.cwd())
    builder.problems.extend(builder.placed(p) for p in problems)
    cfg = builder.build(raw)
    if builder.problems or cfg is None:
        raise ConfigError(source, _in_file_order(builder.problems))
    return cfg


# Shorthand forms and their long forms; expanded before --set so "sampler.seed=1" works on "sampler: tpe".
_SHORTHAND_KEY = {"sampler": "name", "pruner": "name", "model": "estimator", "data": "loader"}


def _expand_one(path: str, value: Any) -> Any:
    if path in _SHORTHAND_KEY and isinstance(value, str):
        return {_SHORTHAND_KEY[path]: value}
    if path.startswith("search_space.") and path.count(".") == 1 and isinstance(value, list):
        return {"type": "categorical", "choices": value}
    return value


def _expand_shorthands(raw: dict[str, Any]) -> dict[str, Any]:
    out = {key: _expand_one(key, value) if isinstance(key, str) else value for key, value in raw.items()}
    space = out.get("search_space")
    if isinstance(space, dict):
        out["search_space"] = {
            name: _expand_one(f"search_space.{name}", spec) for name, spec in space.items()
        }
    return out


def _apply_override(
    raw: dict[str, Any], text: str, overridden: list[str], problems: list[ConfigProblem]
) -> dict[str, Any]:
    """Copy-on-write ``raw`` with ``key.path=value`` applied; problems appended, never raised."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or any(not part for part in parts):
        problems.append(
            ConfigProblem("--set", "key.path=value (e.g. n_trials=50)", _show(text.partition("=")[0]))
        )
        return raw
    try:
        value = load_yaml_value(value_text)
    except ValueError as exc:
        problems.append(
            ConfigProblem(key, "a YAML value after '='", f"unparsable value ({exc})", hint="from --set")
        )
        return raw
    root = dict(raw)
    node = root
    for depth, part in enumerate(parts[:-1]):
        path = ".".join(parts[: depth + 1])
        child = _expand_one(path, node.get(part))
        if child is None:
            child = {}
        if not isinstance(child, dict):
            problems.append(
                ConfigProblem(
                    path, f"a mapping to set '{parts[depth + 1]}' in", _show(child), hint="from --set"
                )
            )
            return raw
        child = dict(child)
        node[part] = child
        node = child
    node[parts[-1]] = value
    overridden.append(key)
    return root


# --- validation ------------------------------------------------------------------------------

_MISSING: Any = object()
_TOP_KEYS = (
    "name", "objective", "objective_kwargs", "model", "data", "evaluation", "search_space",
    "direction", "directions", "sampler", "pruner", "n_trials", "timeout", "trial_timeout",
    "n_jobs", "seed", "tracking", "storage_dir", "allow_imports", "max_retries",
    "max_consecutive_failures", "fail_fast", "max_trials_per_worker", "max_worker_memory_mb",
    "capture_output", "retry_exceptions", "report",
)  # fmt: skip
_PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")
_MODEL_KEYS = ("estimator", "params")
_DATA_KEYS = ("loader", "kwargs", "file", "target")
_EVALUATION_KEYS = ("cv", "holdout", "scoring", "shuffle", "partial_fit_epochs")
_TRACKING_KEYS = ("uri", "experiment", "required")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _show(value: Any) -> str:
    """How a found value reads in an error: short, YAML-flavoured, credentials masked."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        text = redact_uri(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _did_you_mean(word: str, options: Sequence[str], *, n: int = 1) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=n, cutoff=0.6)
    if not matches:
        lowered = {option.lower(): option for option in options}
        matches = [
            lowered[m] for m in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
        ]
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(m) for m in matches) + "?"


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Turns the raw dict into a SweepConfig, collecting every problem instead of stopping."""

    def __init__(
        self, source: str | None, lines: dict[str, int], overridden: tuple[str, ...], base_dir: Path
    ):
        self.source = source
        self.lines = lines
        self.overridden = overridden
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []

    # -- reporting --

    def placed(self, problem: ConfigProblem) -> ConfigProblem:
        """Attach the line (of the key, else its nearest ancestor) and any --set origin."""
        line = problem.line if problem.line is not None else _line_of(self.lines, problem.key)
        hint = problem.hint
        origins = [k for k in self.overridden if _related(k, problem.key)]
        if origins and (hint is None or "--set" not in hint):
            note = "after --set " + ", ".join(dict.fromkeys(origins))
            hint = f"{hint}; {note}" if hint else note
        return ConfigProblem(problem.key, problem.expected, problem.got, line, hint)

    def add(self, key: str, expected: str, got: str | None = None, hint: str | None = None) -> None:
        self.problems.append(self.placed(ConfigProblem(key, expected, got, None, hint)))

    def keys(self, data: Mapping[Any, Any], path: str, known: Sequence[str]) -> None:
        for key in data:
            if not isinstance(key, str):
                self.add(_join(path, key), "string keys", _show(key))
            elif key not in known:
                hint = _did_you_mean(key, known)
                if hint is None and path and key in _TOP_KEYS:
                    hint = f"'{key}' is a top-level key; check the indentation"
                if hint is None:
                    hint = "known keys: " + ", ".join(known)
                self.add(_join(path, key), "a known key", None, hint)

    def mapping(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.add(_join(path, key), "a mapping", _show(value))
            return None
        return dict(value)

    def str_keyed(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        """A free-form mapping passed on as keyword arguments (keys must be strings)."""
        value = self.mapping(data, key, path)
        if value is None:
            return {}
        for name in value:
            if not isinstance(name, str) or not name.isidentifier():
                self.add(_join(_join(path, key), name), "keyword names (identifiers)", _show(name))
        return value

    # -- typed fields: absent -> default; null -> None when nullable --

    def integer(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: int | None,
        minimum: int,
        nullable: bool = True,
        expected: str | None = None,
        hint: str | None = None,
    ) -> int | None:
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if value is None and nullable:
            return None
        if not _is_int(value) or value < minimum:
            self.add(_join(path, key), expected or f"an integer >= {minimum}", _show(value), hint)
            return default
        return int(value)

    def seconds(self, data: Mapping[str, Any], key: str, path: str) -> float | None:
        value = data.get(key)
        if value is None:
            return None
        if not _is_number(value) or value <= 0:
            self.add(_join(path, key), "a number of seconds > 0", _show(value))
            return None
        return float(value)

    def boolean(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.add(_join(path, key), "true or false", _show(value))
            return default
        return value

    def string(
        self,
        data: Mapping[str, Any],
        key: str,
        path: str,
        *,
        expected: str = "a non-empty string",
        pattern: re.Pattern[str] | None = None,
        hint: str | None = None,
    ) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if (
            not isinstance(value, str)
            or not value.strip()
            or (pattern is not None and not pattern.match(value))
        ):
            self.add(_join(path, key), expected, _show(value), hint)
            return None
        return value

    def choice(self, data: Mapping[str, Any], key: str, path: str, options: Sequence[str]) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.lower() in options:
            return value.lower()
        hint = _did_you_mean(value, options) if isinstance(value, str) else None
        self.add(_join(path, key), "one of " + ", ".join(options), _show(value), hint)
        return None

    # -- the whole config --

    def build(self, raw: dict[str, Any]) -> SweepConfig | None:
        self.keys(raw, "", _TOP_KEYS)
        name = self.name(raw)
        objective = self.string(
            raw,
            "objective",
            "",
            expected='"package.module:function"',
            pattern=_OBJECTIVE_RE,
            hint="the function that takes a trial and returns a score",
        )
        has_objective = raw.get("objective") is not None
        model = self.model(raw) if raw.get("model") is not None else None
        data = self.data(raw) if raw.get("data") is not None else None
        self.sections(raw, has_objective)

        objective_kwargs = self.str_keyed(raw, "objective_kwargs", "")
        if objective_kwargs and not has_objective:
            self.add("objective_kwargs", "objective_kwargs only with 'objective'")
        if has_objective and raw.get("evaluation") is not None:
            self.add(
                "evaluation", "no 'evaluation' with 'objective'", hint="a user objective evaluates itself"
            )
            evaluation = EvaluationSpec()
        else:
            evaluation = self.evaluation(raw)

        space = self.search_space(raw, requires_params=raw.get("model") is not None)
        if model is not None:
            for param in space:
                if param.name in model.params:
                    self.add(
                        f"search_space.{param.name}",
                        "a name not also fixed in model.params",
                        _show(param.name),
                        "remove it from one of the two",
                    )

        direction, directions = self.directions(
            raw, builtin=raw.get("model") is not None and not has_objective
        )
        sampler = self.sampler(raw)
        pruner = self.pruner(raw)
        self.compatibility(space, sampler, pruner, directions)

        n_trials = self.integer(raw, "n_trials", "", default=None, minimum=1)
        if n_trials is None and "n_trials" not in _bad_keys(self.problems):
            size = grid_size(space) if sampler is not None and sampler.name == "grid" else None
            if size is not None and size <= MAX_GRID_POINTS:
                n_trials = size
            elif sampler is None or sampler.name != "grid":
                self.add("n_trials", "an integer >= 1", "nothing", "required unless the sampler is grid")

        n_jobs = self.integer(
            raw,
            "n_jobs",
            "",
            default=None,
            minimum=-1,
            expected="an integer >= 1, or -1 / null for all cores",
        )
        if n_jobs == 0:
            self.add("n_jobs", "an integer >= 1, or -1 / null for all cores", "0", "n_jobs=0 has no meaning")
        seed = self.integer(raw, "seed", "", default=None, minimum=0, expected="an integer in [0, 2**32)")
        if seed is not None and seed >= 2**32:
            self.add("seed", "an integer in [0, 2**32)", _show(seed))
        tracking = self.tracking(raw, name)
        storage_dir = self.string(raw, "storage_dir", "", expected="a directory path")
        allow_imports = self.allow_imports(raw)
        max_retries = self.integer(raw, "max_retries", "", default=0, minimum=0, nullable=False)
        max_failures = self.integer(raw, "max_consecutive_failures", "", default=10, minimum=1)
        fail_fast = self.boolean(raw, "fail_fast", "", False)
        max_trials_per_worker = self.integer(raw, "max_trials_per_worker", "", default=None, minimum=1)
        max_worker_memory_mb = self.integer(raw, "max_worker_memory_mb", "", default=None, minimum=1)
        capture_output = self.boolean(raw, "capture_output", "", True)
        retry_exceptions = self.boolean(raw, "retry_exceptions", "", False)
        report = self.boolean(raw, "report", "", True)
        timeout = self.seconds(raw, "timeout", "")
        trial_timeout = self.seconds(raw, "trial_timeout", "")

        if self.problems or name is None:
            return None
        cfg = SweepConfig(
            name=name,
            source=self.source,
            objective=objective,
            objective_kwargs=objective_kwargs,
            model=model,
            data=data,
            evaluation=evaluation,
            search_space=space,
            direction=direction,
            directions=directions,
            sampler=sampler or SamplerSpec(),
            pruner=pruner,
            n_trials=n_trials,
            timeout=timeout,
            trial_timeout=trial_timeout,
            n_jobs=None if n_jobs == -1 else n_jobs,
            seed=seed,
            tracking=tracking,
            storage_dir=storage_dir,
            allow_imports=allow_imports,
            max_retries=max_retries or 0,
            max_consecutive_failures=max_failures,
            fail_fast=fail_fast,
            max_trials_per_worker=max_trials_per_worker,
            max_worker_memory_mb=max_worker_memory_mb,
            capture_output=capture_output,
            retry_exceptions=retry_exceptions,
            report=report,
        )
        object.__setattr__(cfg, "_key_lines", dict(self.lines))
        object.__setattr__(cfg, "_overridden_keys", self.overridden)
        return cfg

    def name(self, raw: dict[str, Any]) -> str | None:
        expected = "a sweep name of letters, digits, '_', '.', '-' (not starting with '.' or '-')"
        if raw.get("name") is not None:
            return self.string(raw, "name", "", expected=expected, pattern=_NAME_RE)
        if self.source is None:
            self.add("name", expected, "nothing", "required when the config does not come from a file")
            return None
        stem = Path(self.source).stem
        if not _NAME_RE.match(stem):
            self.add("name", expected, f"{stem!r} (the file name)", "set 'name:' in the config")
            return None
        return stem

    def sections(self, raw: dict[str, Any], has_objective: bool) -> None:
        """Either a user objective, or the built-in one (model + data); never both, never neither."""
        has_model, has_data = raw.get("model") is not None, raw.get("data") is not None
        if has_objective and (has_model or has_data):
            self.add(
                "objective", "either 'objective' or 'model' + 'data', not both", hint="remove one of them"
            )
        elif not has_objective:
            if not has_model and not has_data:
                self.add(
                    "objective",
                    "an 'objective' (\"package.module:function\") or 'model' and 'data' sections",
                    "neither",
                )
            elif not has_data:
                self.add(
                    "data", "a 'data' section (the built-in objective needs data for 'model')", "nothing"
                )
            elif not has_model:
                self.add(
                    "model", "a 'model' section (the built-in objective needs a model for 'data')", "nothing"
                )

    def model(self, raw: dict[str, Any]) -> ModelSpec | None:
        section = self.mapping(raw, "model", "")
        if section is None:
            return None
        self.keys(section, "model", _MODEL_KEYS)
        before = len(self.problems)
        estimator = section.get("estimator")
        if estimator is None:
            self.add("model.estimator", "an estimator class path like sklearn.svm.SVC", "nothing")
        elif not isinstance(estimator, str):
            self.add("model.estimator", "an estimator class path like sklearn.svm.SVC", _show(estimator))
        else:
            refusal = _refuse_import_path(estimator, DEFAULT_ALLOWED_IMPORTS + _allowed_in(raw))
            if refusal is not None:
                self.add("model.estimator", *refusal)
        params = self.str_keyed(section, "params", "model")
        if params.get("n_jobs") == 0 and not isinstance(params.get("n_jobs"), bool):
            self.add("model.params.n_jobs", "an integer >= 1 or -1", "0", "n_jobs=0 has no meaning")
        if len(self.problems) > before or not isinstance(estimator, str):
            return None
        return ModelSpec(estimator=estimator, params=params)

    def data(self, raw: dict[str, Any]) -> DataSpec | None:
        section = self.mapping(raw, "data", "")
        if section is None:
            return None
        self.keys(section, "data", _DATA_KEYS)
        before = len(self.problems)
        loader = self.string(
            section,
            "loader",
            "data",
            expected="a function name in sklearn.datasets (e.g. load_digits)",
            pattern=re.compile(rf"^{_IDENT}\Z"),
        )
        kwargs = self.str_keyed(section, "kwargs", "data")
        file_text = self.string(section, "file", "data", expected="a path to a .csv or .parquet file")
        target = self.string(section, "target", "data", expected="the name of the target column")
        has_loader, has_file = section.get("loader") is not None, section.get("file") is not None
        if has_loader == has_file:
            self.add(
                "data",
                "exactly one of 'loader' or 'file'",
                "both" if has_loader else "neither",
            )
        if loader is not None and loader.startswith("fetch_"):
            self.add(
                "data.loader",
                "a local loader (load_* or make_*)",
                _show(loader),
                "fetch_* downloads from the network; save the data once and use data.file",
            )
        if has_loader and section.get("target") is not None:
            self.add("data.target", "no 'target' with 'loader'", hint="loaders return X and y already")
        if has_file and kwargs:
            self.add("data.kwargs", "no 'kwargs' with 'file'", hint="kwargs are passed to the loader")
        resolved: str | None = None
        if file_text is not None:
            path = (self.base_dir / Path(file_text).expanduser()).resolve()
            if path.suffix.lower() not in _DATA_SUFFIXES:
                self.add("data.file", "a .csv or .parquet file", _show(file_text))
            elif not path.is_file():
                self.add(
                    "data.file",
                    "an existing data file",
                    f"{str(path)!r} (not found)",
                    "relative paths are resolved against the config file's directory",
                )
            resolved = str(path)
            if section.get("target") is None:
                self.add("data.target", "the name of the target column (required with 'file')", "nothing")
        if len(self.problems) > before:
            return None
        return DataSpec(loader=loader, kwargs=kwargs, file=resolved, target=target)

    def evaluation(self, raw: dict[str, Any]) -> EvaluationSpec:
        section = self.mapping(raw, "evaluation", "") or {}
        self.keys(section, "evaluation", _EVALUATION_KEYS)
        path = "evaluation"
        epochs = self.integer(section, "partial_fit_epochs", path, default=None, minimum=1)
        holdout_value = section.get("holdout")
        holdout: float | None = None
        if holdout_value is not None:
            if not _is_number(holdout_value) or not 0 < holdout_value < 1:
                self.add("evaluation.holdout", "a fraction between 0 and 1 (exclusive)", _show(holdout_value))
            else:
                holdout = float(holdout_value)
        cv_given = section.get("cv") is not None
        cv = self.integer(
            section, "cv", path, default=None, minimum=2, expected="an integer number of folds >= 2"
        )
        if cv_given and holdout_value is not None:
            self.add("evaluation.holdout", "either cv or holdout, not both", hint="remove one of them")
        elif cv_given and section.get("partial_fit_epochs") is not None:
            self.add(
                "evaluation.cv",
                "no cv with partial_fit_epochs",
                hint="epochs are scored on a holdout split (evaluation.holdout, default 0.2)",
            )
        elif "cv" in section and not cv_given and holdout_value is None and epochs is None:
            self.add("evaluation.cv", "an integer number of folds >= 2, or a holdout fraction", "null")
        if epochs is not None and holdout is None and holdout_value is None:
            holdout = DEFAULT_HOLDOUT
        if cv is None and holdout is None and holdout_value is None:
            cv = DEFAULT_CV
        return EvaluationSpec(
            cv=cv if holdout is None else None,
            holdout=holdout,
            scoring=self.string(section, "scoring", path, expected="a sklearn scorer name (e.g. accuracy)"),
            shuffle=self.boolean(section, "shuffle", path, True),
            partial_fit_epochs=epochs,
        )

    def search_space(self, raw: dict[str, Any], *, requires_params: bool) -> tuple[ParamSpec, ...]:
        value = raw.get("search_space")
        if value is None:
            if requires_params:
                self.add("search_space", "at least one parameter to search", "nothing")
            return ()
        if not isinstance(value, Mapping):
            self.add("search_space", "a mapping of parameter name -> distribution", _show(value))
            return ()
        if not value and requires_params:
            self.add("search_space", "at least one parameter to search", "an empty mapping")
        specs = []
        for name, spec in value.items():
            param = self.param(name, spec)
            if param is not None:
                specs.append(param)
        return tuple(specs)

    def param(self, name: Any, spec: Any) -> ParamSpec | None:
        path = f"search_space.{name}"
        if not isinstance(name, str) or not name:
            self.add(path, "a parameter name (a string)", _show(name))
            return None
        if not isinstance(spec, Mapping):
            hint = "e.g. {type: float, low: 0.1, high: 10} or a list of choices"
            if name in _TOP_KEYS:
                hint = f"'{name}' is a top-level key; check the indentation"
            self.add(path, "a distribution mapping or a list of choices", _show(spec), hint)
            return None
        self.keys(spec, path, _PARAM_KEYS)
        before = len(self.problems)
        kind = spec.get("type")
        if kind is None:
            if "choices" in spec:
                kind = "categorical"
            elif "low" in spec or "high" in spec:
                bounds_int = _is_int(spec.get("low")) and _is_int(spec.get("high"))
                kind = (
                    "int"
                    if bounds_int and (spec.get("step") is None or _is_int(spec.get("step")))
                    else "float"
                )
            else:
                self.add(path, "a distribution: low/high, or choices", "neither")
                return None
        elif kind not in get_args(ParamType):
            self.add(
                f"{path}.type",
                "one of float, int, categorical",
                _show(kind),
                _did_you_mean(str(kind), get_args(ParamType)),
            )
            return None
        if kind == "categorical":
            return self.categorical(name, spec, path, before)
        return self.numeric(name, kind, spec, path, before)

    def categorical(self, name: str, spec: Mapping[str, Any], path: str, before: int) -> ParamSpec | None:
        for extra in ("low", "high", "log", "step"):
            if extra in spec:
                self.add(
                    f"{path}.{extra}", f"no '{extra}' for a categorical parameter", hint="use choices only"
                )
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            self.add(
                f"{path}.choices",
                "a non-empty list of values",
                _show(choices) if choices is not None else "nothing",
            )
            return None
        seen: set[tuple[str, Any]] = set()
        for index, choice in enumerate(choices):
            if not _is_scalar(choice) or (isinstance(choice, float) and math.isnan(choice)):
                self.add(
                    f"{path}.choices.{index}",
                    "a scalar (string, number, boolean or null)",
                    _show(choice),
                    "Optuna stores choices as JSON scalars",
                )
                continue
            ident = (type(choice).__name__, choice)
            if ident in seen:
                self.add(f"{path}.choices.{index}", "each choice once", f"duplicate {_show(choice)}")
            seen.add(ident)
        if len(self.problems) > before:
            return None
        if len(choices) > MANY_CHOICES:
            where = self.source or "<config>"
            warnings.warn(
                f"{where}: {path}: {len(choices)} choices; samplers learn little from so many", stacklevel=2
            )
        return ParamSpec(name=name, type="categorical", choices=tuple(choices))

    def numeric(
        self, name: str, kind: str, spec: Mapping[str, Any], path: str, before: int
    ) -> ParamSpec | None:
        if "choices" in spec:
            self.add(
                f"{path}.choices",
                f"no 'choices' for a {kind} parameter",
                hint="use low/high, or type: categorical",
            )
        is_int = kind == "int"
        ok = _is_int if is_int else _is_number
        what = "an integer" if is_int else "a finite number"
        bounds: dict[str, Any] = {}
        for bound in ("low", "high"):
            value = spec.get(bound, _MISSING)
            if value is _MISSING or value is None:
                self.add(f"{path}.{bound}", what, "nothing")
            elif not ok(value):
                hint = (
                    "type is int; use type: float for fractional bounds"
                    if is_int and _is_number(value)
                    else None
                )
                self.add(f"{path}.{bound}", what, _show(value), hint)
            else:
                bounds[bound] = value
        log = self.boolean(spec, "log", path, False)
        step = spec.get("step")
        if step is not None:
            if not ok(step) or step <= 0:
                self.add(f"{path}.step", f"{what} > 0" if not is_int else "an integer >= 1", _show(step))
                step = None
            elif log and not (is_int and step == 1):
                self.add(
                    f"{path}.step",
                    "no step with log: true",
                    _show(step),
                    "Optuna cannot combine step and log",
                )
        low, high = bounds.get("low"), bounds.get("high")
        if low is not None and high is not None and low > high:
            self.add(f"{path}.low", "low <= high", f"low={low!r}, high={high!r}")
        if log and low is not None:
            minimum_ok = low >= 1 if is_int else low > 0
            if not minimum_ok:
                self.add(
                    f"{path}.low",
                    "low >= 1 with log: true" if is_int else "low > 0 with log: true",
                    _show(low),
                    "a log scale cannot reach zero or below",
                )
        if len(self.problems) > before:
            return None
        assert low is not None and high is not None
        if is_int:
            return ParamSpec(name=name, type="int", low=int(low), high=int(high), log=log, step=step)
        return ParamSpec(
            name=name,
            type="float",
            low=float(low),
            high=float(high),
            log=log,
            step=float(step) if step is not None else None,
        )

    def directions(
        self, raw: dict[str, Any], *, builtin: bool
    ) -> tuple[Direction | None, tuple[Direction, ...] | None]:
        options = get_args(Direction)
        direction = self.choice(raw, "direction", "", options)
        value = raw.get("directions")
        if value is None:
            default: Direction = "maximize" if builtin else "minimize"
            return (direction or default), None  # type: ignore[return-value]
        if raw.get("direction") is not None:
            self.add(
                "directions",
                "either direction or directions, not both",
                hint="directions is for multi-objective",
            )
        if not isinstance(value, list) or not value:
            self.add("directions", "a non-empty list of minimize/maximize", _show(value))
            return None, None
        found: list[Direction] = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item.lower() in options:
                found.append(item.lower())  # type: ignore[arg-type]
            else:
                hint = _did_you_mean(item, options) if isinstance(item, str) else None
                self.add(f"directions.{index}", "minimize or maximize", _show(item), hint)
        if builtin and len(value) > 1:
            self.add(
                "directions", "one direction with 'model'", hint="the built-in objective returns one score"
            )
        return None, tuple(found)

    def sampler(self, raw: dict[str, Any]) -> SamplerSpec | None:
        section = self.mapping(raw, "sampler", "")
        if section is None:
            return None if raw.get("sampler") is not None else SamplerSpec()
        name = self.choice(section, "name", "sampler", tuple(SAMPLER_CLASSES))
        if section.get("name") is None:
            self.add("sampler.name", "one of " + ", ".join(SAMPLER_CLASSES), "nothing")
        kwargs = {k: v for k, v in section.items() if k != "name"}
        for key in kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                self.add(_join("sampler", key), "keyword names (identifiers)", _show(key))
        if "seed" in kwargs:
            self.add("sampler.seed", "the seed at the top level", hint="move it to 'seed:'")
        if "search_space" in kwargs:
            self.add(
                "sampler.search_space", "no search_space here", hint="the grid comes from 'search_space:'"
            )
        return SamplerSpec(name=name, kwargs=kwargs) if name is not None else None

    def pruner(self, raw: dict[str, Any]) -> PrunerSpec | None:
        section = self.mapping(raw, "pruner", "")
        if section is None:
            return None
        name = self.choice(section, "name", "pruner", tuple(PRUNER_CLASSES))
        if section.get("name") is None:
            self.add("pruner.name", "one of " + ", ".join(PRUNER_CLASSES), "nothing")
        kwargs = {k: v for k, v in section.items() if k != "name"}
        for key in kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                self.add(_join("pruner", key), "keyword names (identifiers)", _show(key))
        if name is None or name == "none":
            if name == "none" and kwargs:
                self.add("pruner", "no arguments for pruner 'none'", hint="remove them or name a pruner")
            return None
        return PrunerSpec(name=name, kwargs=kwargs)

    def compatibility(
        self,
        space: tuple[ParamSpec, ...],
        sampler: SamplerSpec | None,
        pruner: PrunerSpec | None,
        directions: tuple[Direction, ...] | None,
    ) -> None:
        multi = directions is not None and len(directions) > 1
        if pruner is not None and multi:
            self.add(
                "pruner",
                "no pruner with several directions",
                hint="Optuna cannot prune multi-objective trials",
            )
        if sampler is None:
            return
        if sampler.name == "cmaes" and multi:
            self.add("sampler.name", "a multi-objective sampler (tpe, nsgaii, random, ...)", "'cmaes'")
        if sampler.name != "grid":
            return
        if not space:
            self.add("search_space", "at least one parameter for the grid sampler", "nothing")
        for param in space:
            if not param.is_discrete:
                got = "float with log: true" if param.log else "float without step"
                self.add(
                    f"search_space.{param.name}",
                    "a discrete parameter for the grid sampler (categorical, int, or float with step)",
                    got,
                    "add step:, or list the values as choices",
                )
        size = grid_size(space)
        if size is not None and size > MAX_GRID_POINTS:
            self.add("search_space", f"a grid of at most {MAX_GRID_POINTS:,} points", f"{size:,} points")

    def tracking(self, raw: dict[str, Any], name: str | None) -> TrackingSpec:
        section = self.mapping(raw, "tracking", "") or {}
        self.keys(section, "tracking", _TRACKING_KEYS)
        uri = self.string(
            section, "uri", "tracking", expected="an MLflow tracking URI (e.g. sqlite:///mlflow.db)"
        )
        experiment = self.string(section, "experiment", "tracking", expected="an experiment name")
        required = self.boolean(section, "required", "tracking", True)
        return TrackingSpec(uri=uri, experiment=experiment or name, required=required)

    def allow_imports(self, raw: dict[str, Any]) -> tuple[str, ...]:
        value = raw.get("allow_imports")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add("allow_imports", "a list of module prefixes (e.g. [mypkg])", _show(value))
            return ()
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not _DOTTED_RE.match(item.strip(".")):
                self.add(f"allow_imports.{index}", "a module name like mypkg or mypkg.models", _show(item))
            else:
                found.append(item.strip("."))
        return tuple(found)


def _line_of(lines: Mapping[str, int], key: str) -> int | None:
    path = key
    while path:
        if path in lines:
            return lines[path]
        path = path.rpartition(".")[0]
    return None


def _related(a: str, b: str) -> bool:
    """Same key, one inside the other, or siblings below the top level (C.high vs C.low)."""
    if a == b or a.startswith(b + ".") or b.startswith(a + "."):
        return True
    parent = a.rpartition(".")[0]
    return bool(parent) and parent == b.rpartition(".")[0]


def _bad_keys(problems: list[ConfigProblem]) -> set[str]:
    return {p.key for p in problems}


def _allowed_in(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("allow_imports")
    if not isinstance(value, list):
        return ()
    return tuple(
        item.strip(".") for item in value if isinstance(item, str) and _DOTTED_RE.match(item.strip("."))
    )


# --- grids -----------------------------------------------------------------------------------


def _count(param: ParamSpec) -> int | None:
    if param.type == "categorical":
        return len(param.choices or ())
    if not param.is_discrete:
        return None
    assert param.low is not None and param.high is not None
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
        count = _count(param)
        if count is None:
            return None
        total *= count
    return total


def grid_values(space: Sequence[ParamSpec]) -> dict[str, list[Any]]:
    """The values of each parameter, as ``optuna.samplers.GridSampler(search_space=...)`` wants.

    Float steps are counted in ``Decimal`` so ``0.1`` steps land on 0.3, not 0.30000000000000004.

    Raises:
        ValueError: a parameter is continuous (float without step).
    """
    values: dict[str, list[Any]] = {}
    for param in space:
        if param.type == "categorical":
            values[param.name] = list(param.choices or ())
            continue
        count = _count(param)
        if count is None:
            raise ValueError(f"search_space.{param.name} is continuous; a grid needs step or choices")
        if param.type == "int":
            assert isinstance(param.low, int)
            int_step = int(param.step or 1)
            values[param.name] = [param.low + k * int_step for k in range(count)]
        else:
            low, step = Decimal(str(param.low)), Decimal(str(param.step))
            values[param.name] = [float(low + k * step) for k in range(count)]
    return values


# --- imports by path -------------------------------------------------------------------------


def _is_under(module: str, prefixes: Sequence[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in (p.strip(".") for p in prefixes) if p)


def _refuse_import_path(path: str, allowed: Sequence[str]) -> tuple[str, str, str] | None:
    """Why ``path`` may not be imported, judged on the string alone; None if it may."""
    shown = ", ".join(p.strip(".") for p in allowed) or "nothing"
    match = _IMPORT_RE.match(path)
    if match is None or (match["attr"] is None and "." not in path):
        return "an import path like sklearn.svm.SVC or package.module:Name", _show(path), f"allowed: {shown}"
    if any(part.startswith("__") for part in re.split(r"[.:]", path)):
        return "a path without dunder names", _show(path), f"allowed: {shown}"
    if not _is_under(match["module"], allowed):
        return (
            f"a path under an allowed module ({shown})",
            _show(path),
            "add its top-level package to allow_imports if you trust it; importing runs its code",
        )
    return None


def import_allowed(path: str, cfg: SweepConfig) -> bool:
    """Whether ``path`` passes the allowlist, judged on the string alone (imports nothing)."""
    return _refuse_import_path(path, DEFAULT_ALLOWED_IMPORTS + tuple(cfg.allow_imports)) is None


def resolve_import_path(
    path: str, allowed: Sequence[str], *, key: str = "import path", source: str | None = None
) -> object:
    """Import ``"pkg.mod.Name"`` or ``"pkg.mod:Name"``, refusing anything outside ``allowed``.

    The allowlist is checked on the string before any import (importing is running code), no
    attribute step may pass through a module (``sklearn.x.os.system``-style aliases), and the
    object found must have been defined under an allowed prefix.

    Args:
        path: the import path.
        allowed: module prefixes, e.g. ``("sklearn", "mypkg")``; ``"sklearn"`` covers ``sklearn.*``.
        key, source: where the path came from, for the error.

    Raises:
        ConfigError: refused, not importable (with did-you-mean), or its import raised.

    Example:
        >>> resolve_import_path("sklearn.svm.SVC", ["sklearn"]).__name__
        'SVC'
    """

    def fail(expected: str, got: str | None, hint: str | None = None) -> ConfigError:
        return ConfigError(source, [ConfigProblem(key, expected, got, None, hint)])

    refusal = _refuse_import_path(path, allowed)
    if refusal is not None:
        raise fail(*refusal)
    match = _IMPORT_RE.match(path)
    assert match is not None
    if match["attr"] is not None:
        module_name, attrs = match["module"], match["attr"].split(".")
        module = _import_module(module_name, fail)
        if module is None:
            raise fail("an importable module", _show(module_name), "is its directory on sys.path?")
    else:
        parts = path.split(".")
        module = None
        for cut in range(len(parts) - 1, 0, -1):
            module = _import_module(".".join(parts[:cut]), fail)
            if module is not None:
                module_name, attrs = ".".join(parts[:cut]), parts[cut:]
                break
        if module is None:
            raise fail("an importable module", _show(parts[0]), "is it installed?")
    obj: object = module
    where = module_name
    for attr in attrs:
        if not hasattr(obj, attr):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise fail(f"a name defined in {where}", _show(attr), _did_you_mean(attr, public, n=3))
        obj = getattr(obj, attr)
        where = f"{where}.{attr}"
        if isinstance(obj, types.ModuleType):
            raise fail("a class or function (not a module alias)", f"module {obj.__name__!r} at {where!r}")
    origin = getattr(obj, "__module__", None)
    if not isinstance(origin, str) or not _is_under(origin, allowed):
        raise fail(
            "an object defined under an allowed module",
            f"{where} defined in {origin!r}",
            "re-exported names from other packages are refused",
        )
    return obj


def _import_module(name: str, fail: Any) -> types.ModuleType | None:
    """Import ``name``; None if that very module does not exist (a missing dependency is an error)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise fail("an importable module", f"{name}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the module's own code failed: say so, no traceback to the user
        raise fail("a module that imports cleanly", f"{name}: {type(exc).__name__}: {exc}") from exc


# --- checks that need imports ----------------------------------------------------------------


def check_config(cfg: SweepConfig) -> None:
    """Check the names in ``cfg`` against the libraries: estimator, its params, scorer, loader,
    sampler/pruner arguments, and the user objective. Imports sklearn/optuna, so it is slow-ish.

    The user ``objective`` needs no ``allow_imports``: the user named their own code in their own
    config. It is still imported here (running its module) so a typo fails now, not in trial 1;
    stdlib modules and objects defined outside the named module are refused.

    Raises:
        ConfigError: every problem found.

    Example:
        >>> check_config(load_config("configs/digits_svc_grid.yaml"))
    """
    problems: list[ConfigProblem] = []

    def add(key: str, expected: str, got: str | None = None, hint: str | None = None) -> None:
        problems.append(ConfigProblem(key, expected, got, _line_of(cfg.key_lines, key), hint))

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
                _show(cfg.evaluation.scoring),
                _did_you_mean(cfg.evaluation.scoring, names, n=3),
            )
    if cfg.objective is not None:
        _check_objective(cfg, add, take)
    _check_optuna(cfg, add)
    if problems:
        raise ConfigError(cfg.source, _in_file_order(problems))


def _in_file_order(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Read top to bottom like the file; problems without a line (missing keys) last."""
    return sorted(problems, key=lambda p: (p.line is None, p.line or 0))


def _check_model(cfg: SweepConfig, add: Any, take: Any) -> None:
    assert cfg.model is not None
    from sklearn.base import BaseEstimator

    try:
        cls = resolve_import_path(
            cfg.model.estimator, DEFAULT_ALLOWED_IMPORTS + cfg.allow_imports, key="model.estimator"
        )
    except ConfigError as exc:
        take(exc)
        return
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        add("model.estimator", "a class subclassing sklearn.base.BaseEstimator", _show(cfg.model.estimator))
        return
    if cfg.evaluation.partial_fit_epochs is not None and not hasattr(cls, "partial_fit"):
        add(
            "evaluation.partial_fit_epochs",
            "an estimator with partial_fit",
            _show(cfg.model.estimator),
            "e.g. SGDClassifier",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valid = sorted(cls().get_params(deep=True))
    except Exception:  # needs constructor arguments: names are checked when a trial runs
        return
    for name in cfg.model.params:
        if name not in valid:
            add(
                f"model.params.{name}",
                f"a parameter of {cls.__name__}",
                _show(name),
                _did_you_mean(name, valid, n=3),
            )
    for param in cfg.search_space:
        if param.name not in valid:
            add(
                f"search_space.{param.name}",
                f"a parameter of {cls.__name__}",
                _show(param.name),
                _did_you_mean(param.name, valid, n=3),
            )


def _check_data(data: DataSpec, add: Any) -> None:
    if data.loader is not None:
        import sklearn.datasets

        loaders = sorted(
            n
            for n in dir(sklearn.datasets)
            if n.startswith(("load_", "make_"))
            and n not in _NOT_LOADERS
            and callable(getattr(sklearn.datasets, n))
        )
        if data.loader not in loaders:
            add(
                "data.loader",
                "a dataset function in sklearn.datasets",
                _show(data.loader),
                _did_you_mean(data.loader, loaders, n=3),
            )
            return
        parameters = inspect.signature(getattr(sklearn.datasets, data.loader)).parameters
        for name in data.kwargs:
            if name not in parameters:
                add(
                    f"data.kwargs.{name}",
                    f"an argument of sklearn.datasets.{data.loader}",
                    _show(name),
                    _did_you_mean(name, list(parameters)),
                )
    if data.file is not None and data.target is not None:
        columns = _columns(Path(data.file))
        if columns is not None and data.target not in columns:
            add(
                "data.target",
                f"a column of {Path(data.file).name}",
                _show(data.target),
                _did_you_mean(data.target, columns, n=3),
            )


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


def _check_objective(cfg: SweepConfig, add: Any, take: Any) -> None:
    assert cfg.objective is not None
    module = cfg.objective.partition(":")[0]
    if module.partition(".")[0] in sys.stdlib_module_names and not _is_under(module, cfg.allow_imports):
        add(
            "objective",
            "a function in your own module",
            _show(cfg.objective),
            "standard-library functions are not objectives; rename a module that shadows one",
        )
        return
    try:
        function = resolve_import_path(cfg.objective, (module, *cfg.allow_imports), key="objective")
    except ConfigError as exc:
        take(exc)
        return
    if not callable(function):
        add("objective", "a callable taking a trial", f"{type(function).__name__}")


def _check_optuna(cfg: SweepConfig, add: Any) -> None:
    import importlib.util

    need = _SAMPLER_NEEDS.get(cfg.sampler.name)
    if need is not None and importlib.util.find_spec(need[0]) is None:
        add(
            "sampler.name",
            f"the {need[0]} package for the {cfg.sampler.name} sampler",
            "not installed",
            need[1],
        )
        return
    for key, build in (("sampler", _make_sampler), ("pruner", _make_pruner)):
        spec = getattr(cfg, key)
        if spec is None:
            continue
        cls = _optuna_class(key, spec.name)
        accepted = inspect.signature(cls).parameters
        unknown = [name for name in spec.kwargs if name not in accepted]
        for name in unknown:
            add(
                f"{key}.{name}",
                f"an argument of optuna.{key}s.{cls.__name__}",
                _show(name),
                _did_you_mean(name, list(accepted)),
            )
        if unknown:
            continue
        try:
            build(cfg)
        except Exception as exc:
            add(key, f"arguments accepted by optuna.{key}s.{cls.__name__}", f"{type(exc).__name__}: {exc}")


def _optuna_class(kind: str, name: str) -> type:
    return sampler_class(name) if kind == "sampler" else pruner_class(name)


def _make_sampler(cfg: SweepConfig) -> BaseSampler:
    grid = grid_values(cfg.search_space) if cfg.sampler.name == "grid" else None
    return make_sampler(cfg.sampler.name, cfg.sampler.kwargs, seed=cfg.seed, grid=grid)  # type: ignore[no-any-return]


def _make_pruner(cfg: SweepConfig) -> BasePruner:
    spec = cfg.pruner or PrunerSpec("none")
    return make_pruner(spec.name, spec.kwargs)  # type: ignore[no-any-return]
