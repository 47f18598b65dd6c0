"""Raw config data -> a validated ``SweepConfig``, reporting every problem at once.

One assembly path for every way a sweep is described:

    YAML file --yaml_loader--> raw dict + key lines --shorthands, --set--> raw dict --+
    sweeper.optimize(**options) ----------------------------------------------------+--> _Builder --> SweepConfig

The builder applies the rules and defaults the option table (``schema``) declares, so a key
means the same on every path; a problem names file, line, key path and what was expected.
Pure: stdlib, PyYAML and sweeper only; names are checked against the libraries in ``checks``.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import Field
from pathlib import Path
from typing import Any, get_args

from ..errors import ConfigError, ConfigProblem
from .imports import DEFAULT_ALLOWED_IMPORTS, import_refusal, objective_refusal
from .rules import DOTTED_RE, Invalid, Section, closest, count_text, did_you_mean, in_file_order, is_int, is_number, line_of, show
from .schema import (
    DEFAULT_HOLDOUT,
    NAME_EXPECTED,
    NAME_RE,
    DataSpec,
    Direction,
    EvaluationSpec,
    ModelSpec,
    Option,
    ParamSpec,
    ParamType,
    PrunerSpec,
    SamplerSpec,
    SweepConfig,
    TrackingSpec,
    default_of,
    keys_of,
    options,
)
from .space import MAX_GRID_POINTS, MAX_PARAM_POINTS, PRUNER_CLASSES, SAMPLER_CLASSES, grid_size, param_points
from .yaml_loader import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_NODES, YamlValueError, load_yaml, load_yaml_value

__all__ = ["config_from_dict", "load_config", "options_from_kwargs"]

MANY_CHOICES = 1_000
_DATA_SUFFIXES = (".csv", ".parquet", ".pq")
#: Experiment of an unnamed ``sweeper.optimize()`` sweep: one per call would scatter them.
UNNAMED_EXPERIMENT = "sweeper"

_MISSING: Any = object()
_TOP_KEYS = keys_of(SweepConfig)
_EMBEDDED_KEYS = tuple(spec.name for spec, opt in options(SweepConfig) if opt.embedded)
_PARAM_KEYS = keys_of(ParamSpec)
_MODEL_KEYS = keys_of(ModelSpec)
_DATA_KEYS = keys_of(DataSpec)


# --- the entry points -----------------------------------------------------------------------


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
        raise ConfigError(source, [ConfigProblem("(file)", "an existing config file", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(source, [ConfigProblem("(file)", "a config file", "a directory")]) from None
    except OSError as exc:
        raise ConfigError(source, [ConfigProblem("(file)", "a readable config file", exc.strerror)]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            source, [ConfigProblem("(file)", f"a config file of at most {MAX_CONFIG_BYTES:,} bytes", "a larger file")]
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
        lines: key path -> line, from ``yaml_loader.load_yaml``.

    Raises:
        ConfigError: every problem found at once.
    """
    line_map = dict(lines or {})
    if not isinstance(data, Mapping):
        raise ConfigError(source, [ConfigProblem("(top level)", "a mapping of config keys", show(data))])
    _bounded(data, source)
    raw = _expand_shorthands(dict(data))
    problems: list[ConfigProblem] = []
    overridden: list[str] = []
    for text in overrides:
        raw = _apply_override(raw, text, overridden, problems)
    raw = _expand_shorthands(raw)
    for key in overridden:
        for path in [p for p in line_map if p == key or p.startswith(key + ".")]:
            del line_map[path]
    builder = _Builder(source, line_map, tuple(overridden), base_dir or Path.cwd(), from_file=source is not None)
    builder.problems.extend(builder.placed(p) for p in problems)
    _bounded(raw, source)  # each --set value is bounded; so is what they add up to
    cfg = builder.build(raw)
    if builder.problems or cfg is None:
        raise ConfigError(source, in_file_order(builder.problems))
    return cfg


def options_from_kwargs(values: Mapping[str, Any], *, source: str = "sweeper.optimize()") -> SweepConfig:
    """Validate ``sweeper.optimize()``'s keyword options with the rules and defaults of a file.

    The embedded path needs no objective, model or data (the caller holds the objective as a
    Python callable); every other option the table marks ``embedded`` is accepted under its
    config name (``name``, ``n_trials``, ``n_jobs``, ``timeout``, ``trial_timeout``, ``seed``,
    ``direction``/``directions``, ``metric_names``, ``max_retries``, ``retry_exceptions``,
    ``max_consecutive_failures``, ``fail_fast``, ``max_trials_per_worker``,
    ``max_worker_memory_mb``, ``capture_output``, ``tracking: {uri, experiment, required}``,
    ``storage_dir``, ``cluster``, ``show_progress_bar``, and also ``report`` and
    ``sampler``/``pruner`` given by name, not as Optuna objects). Pass only what the caller
    gave: an absent key takes the table's default, an explicit None is YAML's null
    (``max_consecutive_failures=None``: never stop).

    Args:
        values: option name -> value.
        source: how errors name the caller.

    Returns:
        A ``SweepConfig`` with ``objective``, ``model`` and ``data`` None and ``source`` None;
        ``name`` is ``sweep-<date>-<time>`` when not given (and the experiment then
        ``"sweeper"``, not a new one per call).

    Raises:
        ConfigError: every problem, e.g. ``sweeper.optimize(): n_trials: expected an integer
            >= 1, got 0``.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(source, [ConfigProblem("(arguments)", "a mapping of options", show(values))])
    _bounded(values, source)
    builder = _Builder(source, {}, (), Path.cwd(), from_file=False, embedded=True)
    cfg = builder.build(_expand_shorthands(dict(values)))  # sampler="tpe" as in a file
    if builder.problems or cfg is None:
        raise ConfigError(source, builder.problems)
    return cfg


# --- raw data: bounds, shorthands, --set ----------------------------------------------------


def _bounded(data: Any, source: str | None) -> None:
    """Refuse data bigger than a YAML file may be (``MAX_NODES`` values, ``MAX_DEPTH`` levels),
    whatever built it: a Python caller can share one list a million times as an alias can.
    Iterative and stops at the limit, so it costs at most ``MAX_NODES`` steps."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES or depth > MAX_DEPTH:
            expected = f"at most {MAX_NODES:,} values in at most {MAX_DEPTH} levels of nesting"
            raise ConfigError(source, [ConfigProblem("(top level)", expected, "more")])
        if isinstance(item, Mapping):
            stack.extend((value, depth + 1) for value in item.values())
            count += len(item)
        elif isinstance(item, (list, tuple)):
            stack.extend((value, depth + 1) for value in item)


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
        out["search_space"] = {name: _expand_one(f"search_space.{name}", spec) for name, spec in space.items()}
    return out


def _apply_override(
    raw: dict[str, Any], text: str, overridden: list[str], problems: list[ConfigProblem]
) -> dict[str, Any]:
    """Copy-on-write ``raw`` with ``key.path=value`` applied; problems appended, never raised."""
    key, sep, value_text = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or any(not part for part in parts):
        problems.append(ConfigProblem("--set", "key.path=value (e.g. n_trials=50)", show(text.partition("=")[0])))
        return raw
    try:
        value = load_yaml_value(value_text)
    except YamlValueError as exc:
        problems.append(ConfigProblem(key, exc.expected, exc.got, hint="from --set"))
        return raw
    except ValueError as exc:
        problems.append(ConfigProblem(key, "a YAML value after '='", f"unparsable value ({exc})", hint="from --set"))
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
                ConfigProblem(path, f"a mapping to set '{parts[depth + 1]}' in", show(child), hint="from --set")
            )
            return raw
        child = dict(child)
        node[part] = child
        node = child
    node[parts[-1]] = value
    overridden.append(key)
    return root


# --- the builder ----------------------------------------------------------------------------


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


class _Builder:
    """Turns the raw dict into a SweepConfig, collecting every problem instead of stopping."""

    def __init__(
        self,
        source: str | None,
        lines: dict[str, int],
        overridden: tuple[str, ...],
        base_dir: Path,
        *,
        from_file: bool,
        embedded: bool = False,
    ) -> None:
        self.source = source
        self.lines = lines
        self.overridden = overridden
        self.base_dir = base_dir
        self.from_file = from_file
        self.embedded = embedded
        self.problems: list[ConfigProblem] = []
        self.misspelt: set[str] = set()  # keys an unknown key looks like a typo of

    # -- reporting --

    def placed(self, problem: ConfigProblem) -> ConfigProblem:
        """Attach the line (of the key, else its nearest ancestor) and any --set origin."""
        line = problem.line if problem.line is not None else line_of(self.lines, problem.key)
        hint = problem.hint
        origins = [k for k in self.overridden if _related(k, problem.key)]
        if origins and (hint is None or "--set" not in hint):
            note = "after --set " + ", ".join(dict.fromkeys(origins))
            hint = f"{hint}; {note}" if hint else note
        return ConfigProblem(problem.key, problem.expected, problem.got, line, hint)

    def add(self, key: str, expected: str, got: str | None = None, hint: str | None = None) -> None:
        if got in ("nothing", "neither") and key in self.misspelt:
            return  # `serach_space:` is reported once, as a typo, not again as a missing search_space
        self.problems.append(self.placed(ConfigProblem(key, expected, got, None, hint)))

    def failed(self, *keys: str) -> bool:
        """Whether a problem was already reported at one of ``keys`` (or below it)."""
        return any(p.key == k or p.key.startswith(k + ".") for p in self.problems for k in keys)

    def keys(self, data: Mapping[Any, Any], path: str, known: Sequence[str]) -> None:
        for key in data:
            if not isinstance(key, str):
                self.add(_join(path, key), "string keys", show(key))
            elif key not in known:
                self.misspelt.update(_join(path, match) for match in closest(key, known) if match not in data)
                hint = did_you_mean(key, known)
                if hint is None and path and key in _TOP_KEYS:
                    hint = f"'{key}' is a top-level key; check the indentation"
                if hint is None and self.embedded and key in _TOP_KEYS:
                    hint = "not an option of sweeper.optimize(); it is for YAML configs"
                if hint is None:
                    hint = "known keys: " + ", ".join(known)
                self.add(_join(path, key), "a known key", None, hint)

    def mapping(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.add(_join(path, key), "a mapping", show(value))
            return None
        return dict(value)

    def str_keyed(self, data: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        """A free-form mapping passed on as keyword arguments (keys must be strings)."""
        value = self.mapping(data, key, path)
        if value is None:
            return {}
        for name in value:
            if not isinstance(name, str) or not name.isidentifier():
                self.add(_join(_join(path, key), name), "keyword names (identifiers)", show(name))
        return value

    def option(self, data: Mapping[str, Any], spec: Field[Any], path: str = "") -> Any:
        """One key by its row in the table: absent -> the default; null -> None when nullable."""
        row = _ROW_OF[id(spec)]
        default = default_of(spec)
        key = _join(path, spec.name)
        value = data.get(spec.name, _MISSING)
        if value is _MISSING:
            return default
        if value is None:
            if row.rule.nullable:
                return None
            self.add(key, row.rule.expected, "null")
            return default
        try:
            return row.rule.parse(value)
        except Invalid as exc:
            for issue in exc.issues:
                at = key if issue.at is None else _join(key, issue.at)
                self.add(at, issue.expected or row.rule.expected, issue.got, issue.hint)
            return default

    # -- the whole config --

    def build(self, raw: dict[str, Any]) -> SweepConfig | None:
        self.keys(raw, "", _EMBEDDED_KEYS if self.embedded else _TOP_KEYS)
        values: dict[str, Any] = {
            spec.name: self.option(raw, spec)
            for spec, row in options(SweepConfig)
            if not isinstance(row.rule, Section) and spec.name != "name" and (row.embedded or not self.embedded)
        }
        name = self.name(raw)
        has_objective = raw.get("objective") is not None
        if not self.embedded:
            values["objective"] = self.objective(raw)
            values["model"] = self.model(raw) if raw.get("model") is not None else None
            values["data"] = self.data(raw) if raw.get("data") is not None else None
            self.sections(raw, has_objective)
            values["objective_kwargs"] = self.str_keyed(raw, "objective_kwargs", "")
            if values["objective_kwargs"] and not has_objective:
                self.add("objective_kwargs", "objective_kwargs only with 'objective'")
            if has_objective and raw.get("evaluation") is not None:
                self.add("evaluation", "no 'evaluation' with 'objective'", hint="a user objective evaluates itself")
                values["evaluation"] = EvaluationSpec()
            else:
                values["evaluation"] = self.evaluation(raw)
            values["search_space"] = self.search_space(raw, requires_params=raw.get("model") is not None)
            self.fixed_and_searched(values["model"], values["search_space"])
        space: tuple[ParamSpec, ...] = values.get("search_space", ())

        direction, directions = self.directions(raw, builtin=raw.get("model") is not None and not has_objective)
        values["direction"], values["directions"] = direction, directions
        values["sampler"] = self.sampler(raw)
        values["pruner"] = self.pruner(raw)
        self.compatibility(space, values["sampler"], values["pruner"], directions)
        values["n_trials"] = self.n_trials(values, space)
        self.metric_names(values.get("metric_names"), directions)
        values["tracking"] = self.tracking(raw, name, named="name" in raw and raw["name"] is not None)

        if self.problems or name is None:
            return None
        source = None if self.embedded else self.source  # "sweeper.optimize()" names no file
        cfg = SweepConfig(name=name, source=source, **{**values, "sampler": values["sampler"] or SamplerSpec()})
        object.__setattr__(cfg, "_key_lines", dict(self.lines))
        object.__setattr__(cfg, "_overridden_keys", self.overridden)
        return cfg

    def name(self, raw: dict[str, Any]) -> str | None:
        if raw.get("name") is not None:
            name = self.option(raw, _NAME_SPEC)
            return name if isinstance(name, str) else None
        if self.embedded:
            return "sweep-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        if not self.from_file or self.source is None:
            self.add("name", NAME_EXPECTED, "nothing", "required when the config does not come from a file")
            return None
        stem = Path(self.source).stem
        if not NAME_RE.match(stem):
            self.add("name", NAME_EXPECTED, f"{stem!r} (the file name)", "set 'name:' in the config")
            return None
        return stem

    def objective(self, raw: dict[str, Any]) -> str | None:
        value = raw.get("objective")
        if value is None:
            return None
        refusal = objective_refusal(value, _allowed_in(raw))
        if refusal is not None:
            self.add("objective", *refusal)
            return None
        assert isinstance(value, str)
        return value

    def sections(self, raw: dict[str, Any], has_objective: bool) -> None:
        """Either a user objective, or the built-in one (model + data); never both, never neither."""
        has_model, has_data = raw.get("model") is not None, raw.get("data") is not None
        if has_objective and (has_model or has_data):
            self.add("objective", "either 'objective' or 'model' + 'data', not both", hint="remove one of them")
        elif not has_objective:
            if not has_model and not has_data:
                self.add(
                    "objective", "an 'objective' (\"package.module:function\") or 'model' and 'data' sections", "neither"
                )
            elif not has_data:
                self.add("data", "a 'data' section (the built-in objective needs data for 'model')", "nothing")
            elif not has_model:
                self.add("model", "a 'model' section (the built-in objective needs a model for 'data')", "nothing")

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
            self.add("model.estimator", "an estimator class path like sklearn.svm.SVC", show(estimator))
        else:
            refusal = import_refusal(estimator, DEFAULT_ALLOWED_IMPORTS + _allowed_in(raw))
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
        loader = self.text(section, "loader", "data", "a function name in sklearn.datasets (e.g. load_digits)")
        if loader is not None and not loader.isidentifier():
            self.add("data.loader", "a function name in sklearn.datasets (e.g. load_digits)", show(loader))
        kwargs = self.str_keyed(section, "kwargs", "data")
        file_text = self.text(section, "file", "data", "a path to a .csv or .parquet file")
        target = self.text(section, "target", "data", "the name of the target column")
        has_loader, has_file = section.get("loader") is not None, section.get("file") is not None
        if has_loader == has_file:
            self.add("data", "exactly one of 'loader' or 'file'", "both" if has_loader else "neither")
        if loader is not None and loader.startswith("fetch_"):
            self.add(
                "data.loader",
                "a local loader (load_* or make_*)",
                show(loader),
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
                self.add("data.file", "a .csv or .parquet file", show(file_text))
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

    def text(self, data: Mapping[str, Any], key: str, path: str, expected: str) -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(_join(path, key), expected, show(value))
            return None
        return value

    def evaluation(self, raw: dict[str, Any]) -> EvaluationSpec:
        section = self.mapping(raw, "evaluation", "") or {}
        self.keys(section, "evaluation", keys_of(EvaluationSpec))
        path = "evaluation"
        given = {key for key, value in section.items() if value is not None}
        found = {spec.name: self.option(section, spec, path) for spec, _ in options(EvaluationSpec)}
        epochs, holdout = found["partial_fit_epochs"], found["holdout"] if "holdout" in given else None
        cv = found["cv"] if "cv" in given else None
        if "cv" in given and "holdout" in given:
            self.add("evaluation.holdout", "either cv or holdout, not both", hint="remove one of them")
        elif "cv" in given and "partial_fit_epochs" in given:
            self.add(
                "evaluation.cv",
                "no cv with partial_fit_epochs",
                hint=f"epochs are scored on a holdout split (evaluation.holdout, default {DEFAULT_HOLDOUT})",
            )
        elif "cv" in section and "cv" not in given and "holdout" not in given and epochs is None:
            self.add("evaluation.cv", "an integer number of folds >= 2, or a holdout fraction", "null")
        if epochs is not None and "holdout" not in given:
            holdout = DEFAULT_HOLDOUT
        if cv is None and holdout is None and "holdout" not in given:
            cv = default_of(_CV_SPEC)
        return EvaluationSpec(
            cv=cv if holdout is None else None,
            holdout=holdout,
            scoring=found["scoring"],
            shuffle=found["shuffle"],
            partial_fit_epochs=epochs,
        )

    def search_space(self, raw: dict[str, Any], *, requires_params: bool) -> tuple[ParamSpec, ...]:
        value = raw.get("search_space")
        if value is None:
            if requires_params:
                self.add("search_space", "at least one parameter to search", "nothing")
            return ()
        if not isinstance(value, Mapping):
            self.add("search_space", "a mapping of parameter name -> distribution", show(value))
            return ()
        if not value and requires_params:
            self.add("search_space", "at least one parameter to search", "an empty mapping")
        specs = []
        for name, spec in value.items():
            param = self.param(name, spec)
            if param is not None:
                specs.append(param)
        return tuple(specs)

    def fixed_and_searched(self, model: ModelSpec | None, space: tuple[ParamSpec, ...]) -> None:
        if model is None:
            return
        for param in space:
            if param.name in model.params:
                self.add(
                    f"search_space.{param.name}",
                    "a name not also fixed in model.params",
                    show(param.name),
                    "remove it from one of the two",
                )

    def param(self, name: Any, spec: Any) -> ParamSpec | None:
        path = f"search_space.{name}"
        if not isinstance(name, str) or not name:
            self.add(path, "a parameter name (a string)", show(name))
            return None
        if not isinstance(spec, Mapping):
            hint = "e.g. {type: float, low: 0.1, high: 10} or a list of choices"
            if name in _TOP_KEYS:
                hint = f"'{name}' is a top-level key; check the indentation"
            self.add(path, "a distribution mapping or a list of choices", show(spec), hint)
            return None
        self.keys(spec, path, _PARAM_KEYS)
        before = len(self.problems)
        kind = spec.get("type")
        if kind is None:
            if "choices" in spec:
                kind = "categorical"
            elif "low" in spec or "high" in spec:
                bounds_int = is_int(spec.get("low")) and is_int(spec.get("high"))
                kind = "int" if bounds_int and (spec.get("step") is None or is_int(spec.get("step"))) else "float"
            else:
                self.add(path, "a distribution: low/high, or choices", "neither")
                return None
        elif kind not in get_args(ParamType):
            self.add(f"{path}.type", "one of float, int, categorical", show(kind), did_you_mean(str(kind), get_args(ParamType)))
            return None
        if kind == "categorical":
            return self.categorical(name, spec, path, before)
        return self.numeric(name, kind, spec, path, before)

    def categorical(self, name: str, spec: Mapping[str, Any], path: str, before: int) -> ParamSpec | None:
        for extra in ("low", "high", "log", "step"):
            if extra in spec:
                self.add(f"{path}.{extra}", f"no '{extra}' for a categorical parameter", hint="use choices only")
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            self.add(f"{path}.choices", "a non-empty list of values", show(choices) if choices is not None else "nothing")
            return None
        seen: set[tuple[str, Any]] = set()
        for index, choice in enumerate(choices):
            if not _is_scalar(choice) or (isinstance(choice, float) and math.isnan(choice)):
                self.add(
                    f"{path}.choices.{index}",
                    "a scalar (string, number, boolean or null)",
                    show(choice),
                    "Optuna stores choices as JSON scalars",
                )
                continue
            ident = (type(choice).__name__, choice)
            if ident in seen:
                self.add(f"{path}.choices.{index}", "each choice once", f"duplicate {show(choice)}")
            seen.add(ident)
        if len(self.problems) > before:
            return None
        if len(choices) > MANY_CHOICES:
            where = self.source or "<config>"
            warnings.warn(f"{where}: {path}: {len(choices)} choices; samplers learn little from so many", stacklevel=2)
        return ParamSpec(name=name, type="categorical", choices=tuple(choices))

    def numeric(self, name: str, kind: str, spec: Mapping[str, Any], path: str, before: int) -> ParamSpec | None:
        if "choices" in spec:
            self.add(f"{path}.choices", f"no 'choices' for a {kind} parameter", hint="use low/high, or type: categorical")
        is_int_param = kind == "int"
        what = "an integer" if is_int_param else "a finite number"
        bounds: dict[str, Any] = {}
        for bound in ("low", "high"):
            value = spec.get(bound, _MISSING)
            if value is _MISSING or value is None:
                self.add(f"{path}.{bound}", what, "nothing")
            elif not (is_int(value) if is_int_param else is_number(value)):
                hint = "type is int; use type: float for fractional bounds" if is_int_param and is_number(value) else None
                self.add(f"{path}.{bound}", what, show(value), hint)
            elif is_int_param and abs(value) > MAX_PARAM_POINTS:
                self.add(
                    f"{path}.{bound}",
                    "an integer in [-2**53, 2**53]",
                    show(value),
                    "what a float holds exactly; Optuna's samplers compute in floats",
                )
            else:
                bounds[bound] = value
        log = self.flag(spec, "log", path)
        step = spec.get("step")
        if step is not None:
            if not (is_int(step) if is_int_param else is_number(step)) or step <= 0:
                self.add(f"{path}.step", f"{what} > 0" if not is_int_param else "an integer >= 1", show(step))
                step = None
            elif log and not (is_int_param and step == 1):
                self.add(f"{path}.step", "no step with log: true", show(step), "Optuna cannot combine step and log")
        low, high = bounds.get("low"), bounds.get("high")
        if low is not None and high is not None and low > high:
            self.add(f"{path}.low", "low <= high", f"low={low!r}, high={high!r}")
        if log and low is not None:
            if not (low >= 1 if is_int_param else low > 0):
                self.add(
                    f"{path}.low",
                    "low >= 1 with log: true" if is_int_param else "low > 0 with log: true",
                    show(low),
                    "a log scale cannot reach zero or below",
                )
        if len(self.problems) > before:
            return None
        assert low is not None and high is not None
        if is_int_param:
            param = ParamSpec(name=name, type="int", low=int(low), high=int(high), log=log, step=step)
        else:
            param = ParamSpec(
                name=name, type="float", low=float(low), high=float(high), log=log,
                step=float(step) if step is not None else None,
            )
        points = param_points(param)
        if points is not None and points > MAX_PARAM_POINTS:
            self.add(
                f"{path}.step" if step is not None else path,
                f"at most {MAX_PARAM_POINTS:,} (2**53) values in the range",
                f"{count_text(points)} values" + (f" (step {step!r})" if step is not None else ""),
                "a step this fine is a continuous range: drop step" if step is not None else None,
            )
            return None
        return param

    def flag(self, data: Mapping[str, Any], key: str, path: str) -> bool:
        value = data.get(key, False)
        if not isinstance(value, bool):
            self.add(_join(path, key), "true or false", show(value))
            return False
        return value

    def directions(
        self, raw: dict[str, Any], *, builtin: bool
    ) -> tuple[Direction | None, tuple[Direction, ...] | None]:
        options_ = get_args(Direction)
        direction = self.choice(raw, "direction", options_)
        value = raw.get("directions")
        if value is None:
            default: Direction = "maximize" if builtin else "minimize"
            return (direction or default), None  # type: ignore[return-value]
        if raw.get("direction") is not None:
            self.add("directions", "either direction or directions, not both", hint="directions is for multi-objective")
        if not isinstance(value, (list, tuple)) or not value:
            self.add("directions", "a non-empty list of minimize/maximize", show(value))
            return None, None
        found: list[Direction] = []
        for index, item in enumerate(value):
            if isinstance(item, str) and item.lower() in options_:
                found.append(item.lower())  # type: ignore[arg-type]
            else:
                hint = did_you_mean(item, options_) if isinstance(item, str) else None
                self.add(f"directions.{index}", "minimize or maximize", show(item), hint)
        if builtin and len(value) > 1:
            self.add("directions", "one direction with 'model'", hint="the built-in objective returns one score")
        return None, tuple(found)

    def choice(self, data: Mapping[str, Any], key: str, options_: Sequence[str], path: str = "") -> str | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str) and value.lower() in options_:
            return value.lower()
        hint = did_you_mean(value, options_) if isinstance(value, str) else None
        self.add(_join(path, key), "one of " + ", ".join(options_), show(value), hint)
        return None

    def named(self, raw: dict[str, Any], key: str, names: Sequence[str]) -> tuple[str | None, dict[str, Any]] | None:
        """A sampler or pruner: ``{name: ..., <constructor arguments>}`` (the name alone expanded)."""
        section = self.mapping(raw, key, "")
        if section is None:
            return None
        name = self.choice(section, "name", names, key)
        if section.get("name") is None:
            self.add(f"{key}.name", "one of " + ", ".join(names), "nothing")
        kwargs = {k: v for k, v in section.items() if k != "name"}
        for arg in kwargs:
            if not isinstance(arg, str) or not arg.isidentifier():
                self.add(_join(key, arg), "keyword names (identifiers)", show(arg))
        return name, kwargs

    def sampler(self, raw: dict[str, Any]) -> SamplerSpec | None:
        found = self.named(raw, "sampler", tuple(SAMPLER_CLASSES))
        if found is None:
            return None if raw.get("sampler") is not None else SamplerSpec()
        name, kwargs = found
        if "seed" in kwargs:
            self.add("sampler.seed", "the seed at the top level", hint="move it to 'seed:'")
        if "search_space" in kwargs:
            self.add("sampler.search_space", "no search_space here", hint="the grid comes from 'search_space:'")
        return SamplerSpec(name=name, kwargs=kwargs) if name is not None else None

    def pruner(self, raw: dict[str, Any]) -> PrunerSpec | None:
        found = self.named(raw, "pruner", tuple(PRUNER_CLASSES))
        if found is None:
            return None
        name, kwargs = found
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
            self.add("pruner", "no pruner with several directions", hint="Optuna cannot prune multi-objective trials")
        if sampler is None:
            return
        if sampler.name == "cmaes" and multi:
            self.add("sampler.name", "a multi-objective sampler (tpe, nsgaii, random, ...)", "'cmaes'")
        if sampler.name != "grid":
            return
        if not space and not self.failed("search_space"):
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
            self.add("search_space", f"a grid of at most {MAX_GRID_POINTS:,} points", f"{count_text(size)} points")

    def n_trials(self, values: Mapping[str, Any], space: tuple[ParamSpec, ...]) -> int | None:
        """Given, else the grid's size, else none when a timeout ends the sweep."""
        n_trials: int | None = values["n_trials"]
        sampler: SamplerSpec | None = values["sampler"]
        if n_trials is not None or self.failed("n_trials"):
            return n_trials
        is_grid = sampler is not None and sampler.name == "grid"
        size = grid_size(space) if is_grid else None
        if size is not None and size <= MAX_GRID_POINTS:
            return size
        if not is_grid and values.get("timeout") is None and not self.failed("timeout"):
            self.add("n_trials", "an integer >= 1", "nothing", "required unless the sampler is grid or a timeout is set")
        return None

    def metric_names(self, names: tuple[str, ...] | None, directions: tuple[Direction, ...] | None) -> None:
        count = len(directions) if directions is not None else 1
        if names is not None and len(names) != count and not self.failed("directions", "direction"):
            self.add("metric_names", f"one name per direction ({count})", f"{len(names)} names")

    def tracking(self, raw: dict[str, Any], name: str | None, *, named: bool) -> TrackingSpec:
        section = self.mapping(raw, "tracking", "") or {}
        self.keys(section, "tracking", keys_of(TrackingSpec))
        found = {spec.name: self.option(section, spec, "tracking") for spec, _ in options(TrackingSpec)}
        if found["experiment"] is None:
            found["experiment"] = name if named or not self.embedded else UNNAMED_EXPERIMENT
        return TrackingSpec(**found)


#: Each option's row by its field (fields() hands out the same Field objects every time).
_ROW_OF: dict[int, Option] = {
    id(spec): row for owner in (SweepConfig, EvaluationSpec, TrackingSpec) for spec, row in options(owner)
}
_NAME_SPEC = next(spec for spec, _ in options(SweepConfig) if spec.name == "name")
_CV_SPEC = next(spec for spec, _ in options(EvaluationSpec) if spec.name == "cv")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _related(a: str, b: str) -> bool:
    """Same key, one inside the other, or siblings below the top level (C.high vs C.low)."""
    if a == b or a.startswith(b + ".") or b.startswith(a + "."):
        return True
    parent = a.rpartition(".")[0]
    return bool(parent) and parent == b.rpartition(".")[0]


def _allowed_in(raw: Mapping[str, Any]) -> tuple[str, ...]:
    value = raw.get("allow_imports")
    if not isinstance(value, list):
        return ()
    return tuple(item.strip(".") for item in value if isinstance(item, str) and DOTTED_RE.match(item.strip(".")))
