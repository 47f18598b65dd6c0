"""Config loading and validation: good configs load, every bad input gives one ConfigError that
names file, key path and what was expected, and nothing untrusted is ever imported or executed.

Fast unit tests; the only process is the fresh-interpreter import check.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeper.config.yaml_loader import load_yaml
from sweeper.config import (
    ParamSpec,
    SweepConfig,
    check_config,
    config_from_dict,
    grid_size,
    grid_values,
    load_config,
    resolve_import_path,
)
from sweeper._redact import redact_uri
from sweeper.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))

BASE = """\
model: sklearn.svm.SVC
data: load_digits
search_space:
  C: {type: float, low: 0.1, high: 10, log: true}
n_trials: 5
"""


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def config_error(path: Path, overrides: tuple[str, ...] = (), *, check: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(path, overrides)
        if check:
            check_config(cfg)
    return info.value


def base_with(**changes: Any) -> str:
    """BASE with top-level keys replaced (None deletes), dumped back to YAML."""
    data = yaml.safe_load(BASE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


# --- good configs -----------------------------------------------------------------------------


def test_shipped_configs_exist() -> None:
    assert {p.name for p in CONFIGS} >= {
        "digits_svc_grid.yaml",
        "digits_rf_tpe.yaml",
        "diabetes_hgb_tpe.yaml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_passes_checks(path: Path) -> None:
    cfg = load_config(path)
    check_config(cfg)
    assert cfg.source == str(path)
    assert cfg.model is not None and cfg.data is not None
    assert cfg.direction == "maximize"  # sklearn scorers are greater-is-better
    assert cfg.n_trials is not None and cfg.n_trials >= 1
    assert cfg.n_jobs == 2


def test_svc_grid_config_is_24_points_and_n_trials_defaults_to_it() -> None:
    cfg = load_config(ROOT / "configs" / "digits_svc_grid.yaml")
    assert cfg.sampler.name == "grid"
    assert grid_size(cfg.search_space) == 24
    assert cfg.n_trials == 24
    assert cfg.evaluation.cv == 3 and cfg.evaluation.scoring == "accuracy"
    assert [p.name for p in cfg.search_space] == ["C", "gamma", "kernel"]


def test_defaults_and_shorthands() -> None:
    cfg = config_from_dict(yaml.safe_load(BASE), source="sweeps/my-sweep.yaml")
    assert cfg.name == "my-sweep"
    assert cfg.sampler.name == "tpe" and cfg.sampler.kwargs == {}
    assert cfg.pruner is None
    assert cfg.model is not None and cfg.model.estimator == "sklearn.svm.SVC"
    assert cfg.data is not None and cfg.data.loader == "load_digits"
    assert cfg.evaluation.cv == 5 and cfg.evaluation.holdout is None
    assert cfg.tracking.experiment == "my-sweep"
    assert cfg.max_retries == 0 and cfg.max_consecutive_failures == 10 and cfg.fail_fast is False
    assert cfg.study_directions == ("maximize",)


def test_param_forms() -> None:
    cfg = config_from_dict(
        yaml.safe_load(
            """
            objective: mypkg.train:objective
            search_space:
              lr: {low: 1.0e-5, high: 0.1, log: true}
              depth: {low: 2, high: 10}
              frac: {low: 0, high: 1, step: 0.25}
              kernel: [rbf, linear, null]
              units: {type: int, low: 8, high: 64, log: true}
            n_trials: 3
            """
        ),
        source="x.yaml",
    )
    space = {p.name: p for p in cfg.search_space}
    assert space["lr"] == ParamSpec("lr", "float", 1e-5, 0.1, log=True)
    assert space["depth"] == ParamSpec("depth", "int", 2, 10)
    assert space["frac"] == ParamSpec("frac", "float", 0.0, 1.0, step=0.25)
    assert space["kernel"].choices == ("rbf", "linear", None)
    assert space["units"].type == "int" and space["units"].log
    assert cfg.direction == "minimize"  # user objectives minimize by default
    assert list(space) == ["lr", "depth", "frac", "kernel", "units"]


def test_n_jobs_minus_one_means_all_cores_and_oversubscription_is_allowed(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, base_with(n_jobs=-1), "a.yaml")).n_jobs is None
    assert load_config(write(tmp_path, base_with(n_jobs=64), "b.yaml")).n_jobs == 64


def test_data_file_resolves_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "train.csv").write_text("a,b,label\n1,2,0\n")
    path = write(
        tmp_path / "sub",
        "model: sklearn.linear_model.LogisticRegression\n"
        "data: {file: train.csv, target: label}\n"
        "search_space: {C: {low: 0.1, high: 1.0}}\nn_trials: 2\n",
        "f.yaml",
    )
    cfg = load_config(path)
    assert cfg.data is not None and cfg.data.file == str((tmp_path / "sub" / "train.csv").resolve())
    check_config(cfg)
    bad = write(tmp_path / "sub", path.read_text().replace("target: label", "target: labl"), "g.yaml")
    assert "did you mean 'label'?" in str(config_error(bad, check=True))


def test_config_pickles_and_as_dict_has_plain_data_with_uri_redacted(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "tracking: {uri: 'http://me:s3cret@127.0.0.1:5000'}\n", "ok.yaml")
    cfg = load_config(path)
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    data = cfg.as_dict()
    assert "s3cret" not in repr(data) and data["tracking"]["uri"] == "http://me:***@127.0.0.1:5000"
    assert "key_lines" not in data and cfg.key_lines["n_trials"] == 5
    assert redact_uri("postgresql://u:s3cret@h/db") == "postgresql://u:***@h/db"
    assert redact_uri("sqlite:///x.db") == "sqlite:///x.db"


# --- bad input: one error naming file, key path and expectation --------------------------------

BAD_CASES = {
    "unknown key": (BASE + "n_trial: 10\n", "n_trial", "did you mean 'n_trials'?"),
    "misplaced top-level key": (
        BASE.replace("search_space:\n", "search_space:\n  direction: maximize\n"),
        "search_space.direction",
        "top-level key",
    ),
    "n_trials string": (base_with(n_trials="ten"), "n_trials", "an integer >= 1"),
    "n_trials bool": (base_with(n_trials=True), "n_trials", "an integer >= 1"),
    "n_trials zero": (base_with(n_trials=0), "n_trials", "an integer >= 1"),
    "n_trials negative": (base_with(n_trials=-1), "n_trials", "an integer >= 1"),
    "n_trials missing": (base_with(n_trials=None), "n_trials", "required unless the sampler is grid"),
    "n_jobs zero": (base_with(n_jobs=0), "n_jobs", "has no meaning"),
    "n_jobs below -1": (base_with(n_jobs=-2), "n_jobs", "an integer >= 1, or -1"),
    "timeout zero": (base_with(timeout=0), "timeout", "a number of seconds > 0"),
    "trial_timeout negative": (base_with(trial_timeout=-1), "trial_timeout", "a number of seconds > 0"),
    "seed negative": (base_with(seed=-1), "seed", "an integer in [0, 2**32)"),
    "fail_fast not bool": (base_with(fail_fast="yes please"), "fail_fast", "true or false"),
    "bad name": (base_with(name="../evil"), "name", "a sweep name"),
    "low above high": (
        base_with(search_space={"C": {"type": "float", "low": 10, "high": 1}}),
        "search_space.C.low",
        "low <= high",
    ),
    "log with zero low": (
        base_with(search_space={"C": {"type": "float", "low": 0, "high": 1, "log": True}}),
        "search_space.C.low",
        "low > 0 with log",
    ),
    "zero step": (
        base_with(search_space={"C": {"type": "float", "low": 0, "high": 1, "step": 0}}),
        "search_space.C.step",
        "> 0",
    ),
    "step with log": (
        base_with(search_space={"C": {"type": "float", "low": 0.1, "high": 1, "step": 0.1, "log": True}}),
        "search_space.C.step",
        "no step with log",
    ),
    "int with float bounds": (
        base_with(search_space={"degree": {"type": "int", "low": 1.5, "high": 4}}),
        "search_space.degree.low",
        "an integer",
    ),
    "unknown param type": (
        base_with(search_space={"C": {"type": "flaot", "low": 0.1, "high": 1}}),
        "search_space.C.type",
        "did you mean 'float'?",
    ),
    "log not bool": (
        base_with(search_space={"C": {"type": "float", "low": 0.1, "high": 1, "log": "sure"}}),
        "search_space.C.log",
        "true or false",
    ),
    "empty choices": (
        base_with(search_space={"kernel": []}),
        "search_space.kernel.choices",
        "a non-empty list",
    ),
    "non-scalar choice": (
        base_with(search_space={"kernel": [1, "a", [2]]}),
        "search_space.kernel.choices.2",
        "a scalar",
    ),
    "duplicate choice": (
        base_with(search_space={"kernel": ["rbf", "linear", "rbf"]}),
        "search_space.kernel.choices.2",
        "each choice once",
    ),
    "param neither range nor choices": (
        base_with(search_space={"C": {"log": True}}),
        "search_space.C",
        "low/high, or choices",
    ),
    "empty search space with model": (base_with(search_space={}), "search_space", "at least one parameter"),
    "unknown sampler": (base_with(sampler="tpee"), "sampler.name", "did you mean 'tpe'?"),
    "unknown pruner": (base_with(pruner={"name": "medain"}), "pruner.name", "did you mean 'median'?"),
    "sampler seed": (
        base_with(sampler={"name": "tpe", "seed": 1}),
        "sampler.seed",
        "the seed at the top level",
    ),
    "grid with continuous param": (
        base_with(sampler="grid"),
        "search_space.C",
        "a discrete parameter for the grid sampler",
    ),
    "grid too large": (
        base_with(sampler="grid", search_space={"a": {"low": 0, "high": 10**7}}),
        "search_space",
        "a grid of at most",
    ),
    "direction typo": (base_with(direction="maximise"), "direction", "did you mean 'maximize'?"),
    "direction and directions": (
        base_with(direction="minimize", directions=["minimize", "maximize"]),
        "directions",
        "not both",
    ),
    "multi-objective with model": (
        base_with(directions=["minimize", "maximize"]),
        "directions",
        "one direction with 'model'",
    ),
    "fetch loader": (base_with(data="fetch_openml"), "data.loader", "a local loader"),
    "loader and file": (
        base_with(data={"loader": "load_digits", "file": "x.csv", "target": "y"}),
        "data",
        "exactly one of 'loader' or 'file'",
    ),
    "missing data file": (
        base_with(data={"file": "nowhere.csv", "target": "y"}),
        "data.file",
        "an existing data file",
    ),
    "file without target": (base_with(data={"file": "bad.yaml"}), "data.target", "required with 'file'"),
    "cv one fold": (base_with(evaluation={"cv": 1}), "evaluation.cv", "an integer number of folds >= 2"),
    "cv and holdout": (
        base_with(evaluation={"cv": 3, "holdout": 0.2}),
        "evaluation.holdout",
        "either cv or holdout",
    ),
    "holdout out of range": (base_with(evaluation={"holdout": 1.5}), "evaluation.holdout", "between 0 and 1"),
    "evaluation typo": (
        base_with(evaluation={"scorring": "accuracy"}),
        "evaluation.scorring",
        "did you mean 'scoring'?",
    ),
    "objective format": (
        base_with(model=None, data=None, objective="mypkg.train.objective"),
        "objective",
        '"package.module:function"',
    ),
    "objective and model": (base_with(objective="mypkg.train:objective"), "objective", "not both"),
    "neither objective nor model": (base_with(model=None, data=None), "objective", "or 'model' and 'data'"),
    "model without data": (base_with(data=None), "data", "a 'data' section"),
    "estimator outside allowlist": (
        base_with(model="os.system"),
        "model.estimator",
        "a path under an allowed module",
    ),
    "estimator alias outside allowlist": (
        base_with(model="logging.os.system"),
        "model.estimator",
        "a path under an allowed module",
    ),
    "model n_jobs zero": (
        base_with(model={"estimator": "sklearn.svm.SVC", "params": {"n_jobs": 0}}),
        "model.params.n_jobs",
        "has no meaning",
    ),
    "param both fixed and searched": (
        base_with(model={"estimator": "sklearn.svm.SVC", "params": {"C": 1.0}}),
        "search_space.C",
        "not also fixed",
    ),
    "allow_imports not a list": (
        base_with(allow_imports="mypkg"),
        "allow_imports",
        "a list of module prefixes",
    ),
    "tracking uri not a string": (base_with(tracking={"uri": 5}), "tracking.uri", "an MLflow tracking URI"),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, case: str) -> None:
    text, key, expected = BAD_CASES[case]
    error = config_error(write(tmp_path, text))
    message = str(error)
    assert "bad.yaml" in message
    assert f": {key}: " in message, message
    assert expected in message, message
    assert error.source == str(tmp_path / "bad.yaml")


CHECK_CASES = {
    "estimator typo": (
        base_with(model="sklearn.ensemble.RandomForrest"),
        "model.estimator",
        "RandomForestClassifier",
    ),
    "not an estimator": (
        base_with(model="sklearn.utils.Bunch"),
        "model.estimator",
        "subclassing sklearn.base.BaseEstimator",
    ),
    "hyperparameter typo": (
        base_with(
            model="sklearn.ensemble.RandomForestClassifier",
            search_space={"n_estimator": {"low": 10, "high": 50}},
        ),
        "search_space.n_estimator",
        "did you mean 'n_estimators'?",
    ),
    "fixed param typo": (
        base_with(model={"estimator": "sklearn.svm.SVC", "params": {"kernal": "rbf"}}),
        "model.params.kernal",
        "did you mean 'kernel'?",
    ),
    "scoring typo": (base_with(evaluation={"scoring": "acuracy"}), "evaluation.scoring", "'accuracy'"),
    "loader typo": (base_with(data="load_digit"), "data.loader", "'load_digits'"),
    "loader kwargs typo": (
        base_with(data={"loader": "make_classification", "kwargs": {"n_sample": 100}}),
        "data.kwargs.n_sample",
        "did you mean 'n_samples'?",
    ),
    "sampler kwargs typo": (
        base_with(sampler={"name": "tpe", "n_startup_trial": 3}),
        "sampler.n_startup_trial",
        "did you mean 'n_startup_trials'?",
    ),
    "pruner missing argument": (
        base_with(pruner="threshold"),
        "pruner",
        "arguments accepted by optuna.pruners.ThresholdPruner",
    ),
    "partial_fit without partial_fit": (
        base_with(evaluation={"partial_fit_epochs": 3}),
        "evaluation.partial_fit_epochs",
        "an estimator with partial_fit",
    ),
}


@pytest.mark.parametrize("case", list(CHECK_CASES), ids=list(CHECK_CASES))
def test_check_config_names_file_key_and_expectation(tmp_path: Path, case: str) -> None:
    text, key, expected = CHECK_CASES[case]
    message = str(config_error(write(tmp_path, text), check=True))
    assert "bad.yaml" in message
    assert f": {key}: " in message, message
    assert expected in message, message


def test_error_carries_the_line_of_the_key(tmp_path: Path) -> None:
    error = config_error(write(tmp_path, BASE + "n_trial: 10\n"))
    assert str(error).startswith(f"{tmp_path / 'bad.yaml'}:6: n_trial: ")
    assert error.problems[0].line == 6


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = """\
        model: sklearn.svm.SVC
        data: load_digits
        search_space:
          C: {type: float, low: 10, high: 1}
          kernel: []
        sampler: tpee
        n_trial: 5
        n_jobs: 0
        """
    error = config_error(write(tmp_path, text))
    keys = {p.key for p in error.problems}
    assert {"search_space.C.low", "search_space.kernel.choices", "sampler.name", "n_trial", "n_jobs"} <= keys
    assert len(str(error).splitlines()) == len(error.problems) >= 5
    lines = {p.key: p.line for p in error.problems}
    assert lines["search_space.C.low"] == 4 and lines["n_jobs"] == 8


def test_check_config_reports_every_problem_with_lines(tmp_path: Path) -> None:
    text = base_with(
        model="sklearn.ensemble.RandomForestClassifier",
        search_space={"n_estimator": {"low": 10, "high": 50}, "max_dept": {"low": 2, "high": 5}},
        evaluation={"scoring": "acuracy"},
    )
    error = config_error(write(tmp_path, text), check=True)
    keys = {p.key for p in error.problems}
    assert {"search_space.n_estimator", "search_space.max_dept", "evaluation.scoring"} <= keys
    assert all(p.line is not None for p in error.problems)


def test_none_is_a_valid_choice_but_nan_is_not(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, base_with(search_space={"max_features": ["sqrt", None]}), "ok.yaml"))
    assert cfg.search_space[0].choices == ("sqrt", None)
    error = config_error(write(tmp_path, base_with(search_space={"x": [1.0, float("nan")]})))
    assert "search_space.x.choices.1" in str(error)


def test_very_many_choices_warn_but_load(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="1001 choices"):
        cfg = load_config(write(tmp_path, base_with(search_space={"k": list(range(1001))}), "ok.yaml"))
    assert len(cfg.search_space[0].choices or ()) == 1001


def test_objective_config_rejects_evaluation_and_kwargs_without_objective(tmp_path: Path) -> None:
    text = "objective: mypkg.train:objective\nevaluation: {cv: 3}\nn_trials: 2\n"
    assert "no 'evaluation' with 'objective'" in str(config_error(write(tmp_path, text)))
    assert "objective_kwargs only with 'objective'" in str(
        config_error(write(tmp_path, base_with(objective_kwargs={"epochs": 2})))
    )


def test_multi_objective_user_config(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "objective: m:f\ndirections: [minimize, Maximize]\nn_trials: 3\n", "ok.yaml")
    )
    assert cfg.directions == ("minimize", "maximize") and cfg.direction is None
    assert cfg.study_directions == ("minimize", "maximize") and cfg.is_multi_objective
    bad = "objective: m:f\ndirections: [minimize, maximize]\npruner: median\nn_trials: 3\n"
    assert "no pruner with several directions" in str(config_error(write(tmp_path, bad)))


def test_partial_fit_epochs_default_to_a_holdout_split(tmp_path: Path) -> None:
    text = base_with(
        model="sklearn.linear_model.SGDClassifier",
        search_space={"alpha": {"low": 1e-5, "high": 1e-2, "log": True}},
        evaluation={"partial_fit_epochs": 3},
    )
    cfg = load_config(write(tmp_path, text, "ok.yaml"))
    assert (
        cfg.evaluation.cv is None and cfg.evaluation.holdout == 0.2 and cfg.evaluation.partial_fit_epochs == 3
    )
    check_config(cfg)
    assert "no cv with partial_fit_epochs" in str(
        config_error(write(tmp_path, base_with(evaluation={"partial_fit_epochs": 3, "cv": 3})))
    )


# --- overrides --------------------------------------------------------------------------------


def test_overrides_are_applied_before_validation(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "sampler: tpe\n", "ok.yaml")
    raw_before = path.read_text()
    cfg = load_config(
        path,
        [
            "n_trials=10",
            "search_space.C.high=5",
            "tracking.uri=sqlite:///x.db",
            "sampler.n_startup_trials=3",
            "search_space.kernel=[rbf, linear]",
            "search_space.C.low=1e-3",
        ],
    )
    assert cfg.n_trials == 10
    assert cfg.search_space[0] == ParamSpec("C", "float", 1e-3, 5.0, log=True)
    assert cfg.search_space[1].choices == ("rbf", "linear")
    assert cfg.tracking.uri == "sqlite:///x.db"
    assert cfg.sampler == type(cfg.sampler)("tpe", {"n_startup_trials": 3})
    assert cfg.overridden_keys[0] == "n_trials"
    assert path.read_text() == raw_before


def test_overrides_do_not_modify_the_callers_dict() -> None:
    data = yaml.safe_load(BASE)
    cfg = config_from_dict(
        data, source="x.yaml", overrides=["search_space.C.high=5", "model.params.kernel=linear"]
    )
    assert cfg.model is not None and cfg.model.params == {"kernel": "linear"}
    assert data == yaml.safe_load(BASE)


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("n_trials=0", "n_trials", "an integer >= 1"),
        ("n_trials=ten", "n_trials", "an integer >= 1"),
        ("n_trial=3", "n_trial", "did you mean 'n_trials'?"),
        ("search_space.C.high=0.01", "search_space.C.low", "low <= high"),
        ("n_trials", "--set", "key.path=value"),
        ("n_trials.x=1", "n_trials", "a mapping to set 'x' in"),
        ("n_jobs=[1", "n_jobs", "a YAML value after '='"),
    ],
)
def test_override_errors_read_like_file_errors(
    tmp_path: Path, override: str, key: str, expected: str
) -> None:
    message = str(config_error(write(tmp_path, BASE), (override,)))
    assert "bad.yaml" in message
    assert f": {key}: " in message, message
    assert expected in message, message
    if key != "--set":
        assert "--set" in message  # the user is told the value came from the command line


def test_override_errors_never_echo_credentials(tmp_path: Path) -> None:
    message = str(config_error(write(tmp_path, BASE), ("n_jobs=http://me:s3cret@host:5000",)))
    assert "n_jobs" in message and "s3cret" not in message
    message = str(config_error(write(tmp_path, BASE), ("tracking.uri=http://me:s3cret@host: [",)))
    assert "tracking.uri" in message and "s3cret" not in message


# --- YAML traps -------------------------------------------------------------------------------


def test_yaml_exponent_floats_are_floats() -> None:
    data, lines = load_yaml("low: 1e-5\nhigh: 1E5\nmid: 2.5e-3\nn: 10\nname: 2024-01-01\n", "x.yaml")
    assert data == {"low": 1e-5, "high": 1e5, "mid": 2.5e-3, "n": 10, "name": "2024-01-01"}
    assert isinstance(data["low"], float) and isinstance(data["high"], float) and isinstance(data["n"], int)
    assert lines == {"low": 1, "high": 2, "mid": 3, "n": 4, "name": 5}
    assert yaml.safe_load("x: 1e-5") == {"x": "1e-5"}  # the global SafeLoader is left untouched


def test_yaml_key_lines_are_dotted_paths() -> None:
    _, lines = load_yaml("a:\n  b:\n    c: 1\n  d: [x, y]\n", "x.yaml")
    assert lines["a.b.c"] == 3 and lines["a.d"] == 4 and lines["a.d.1"] == 4


def test_duplicate_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    text = BASE + "search_space:\n  lr: {low: 0.1, high: 1}\n"
    error = config_error(write(tmp_path, text))
    (problem,) = error.problems
    assert problem.key == "search_space" and problem.line == 6
    assert "duplicate key 'search_space'" in str(error) and "first defined on line 3" in str(error)
    error = config_error(write(tmp_path, "search_space:\n  lr: [1]\n  lr: [2]\n"))
    assert error.problems[0].key == "search_space.lr" and error.problems[0].line == 3


@pytest.mark.parametrize(
    "tag",
    ["!!python/object/apply:os.system", "!!python/object/new:os.system", "!!python/name:os.system"],
)
def test_unsafe_tags_are_refused_and_never_run(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    text = BASE + f'name: {tag} ["touch {marker}"]\n'
    if tag.startswith("!!python/name"):
        text = BASE + f"name: {tag} ''\n"
    error = config_error(write(tmp_path, text))
    assert "bad.yaml:6" in str(error) and "no !!python tags" in str(error)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "an empty file"),
        (b"# only a comment\n", "an empty file"),
        (b"- 1\n- 2\n", "a mapping of config keys"),
        (b"just a string\n", "a mapping of config keys"),
        (b"a: [1, 2\n", "valid YAML"),
        (b"a: b: c\n", "valid YAML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "UTF-8 text"),
        (b"a: 1\nb: \x00\x01\n", "UTF-8 text"),
        (b"a: &a [*a]\n", "no recursive aliases"),
        (b"x" * ((1 << 20) + 10), "a config file of at most"),
    ],
    ids=[
        "empty",
        "comment",
        "list",
        "scalar",
        "unclosed",
        "bad mapping",
        "binary",
        "nul",
        "recursive",
        "too big",
    ],
)
def test_malformed_files_give_one_config_error(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    message = str(config_error(path))
    assert message.startswith(str(path)) and expected in message, message


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    levels = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    message = str(config_error(write(tmp_path, "\n".join(levels) + "\n")))
    assert "after expanding aliases" in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "an existing config file" in str(config_error(tmp_path / "nope.yaml"))
    assert "a directory" in str(config_error(tmp_path))


# --- imports by path: allowlist before import -------------------------------------------------


@pytest.fixture
def evilmod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module that leaves a marker file when imported: proof of whether it was imported."""
    marker = tmp_path / "evilmod-imported"
    package = tmp_path / "site"
    package.mkdir()
    (package / "evilmod.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\nclass Model:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    return marker


@pytest.mark.parametrize(
    "path", ["os.system", "builtins.eval", "logging.os.system", "subprocess:run", "evilmod.Model"]
)
def test_resolve_import_path_refuses_before_importing(path: str, evilmod: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_import_path(path, ["sklearn"], key="model.estimator")
    assert "model.estimator: expected a path under an allowed module (sklearn)" in str(info.value)
    assert not evilmod.exists()
    assert "evilmod" not in sys.modules


def test_estimator_outside_allowlist_is_never_imported(tmp_path: Path, evilmod: Path) -> None:
    path = write(tmp_path, base_with(model="evilmod.Model"))
    assert "allow_imports" in str(config_error(path, check=True))
    assert not evilmod.exists()


def test_allowed_module_is_imported_then_checked_to_be_an_estimator(tmp_path: Path, evilmod: Path) -> None:
    path = write(tmp_path, base_with(model="evilmod.Model", allow_imports=["evilmod"]))
    message = str(config_error(path, check=True))
    assert evilmod.exists()  # the marker does work: allow_imports really imported it
    assert "subclassing sklearn.base.BaseEstimator" in message


def test_resolve_import_path_refuses_module_aliases_and_foreign_objects() -> None:
    with pytest.raises(ConfigError, match="not a module alias"):
        resolve_import_path("logging.os.system", ["logging"])
    with pytest.raises(ConfigError, match="defined in"):
        resolve_import_path("logging:Formatter.converter", ["logging"])  # time.localtime, re-exported
    with pytest.raises(ConfigError, match="dunder"):
        resolve_import_path("sklearn.__builtins__", ["sklearn"])
    with pytest.raises(ConfigError, match="an import path like"):
        resolve_import_path("sklearn", ["sklearn"])
    with pytest.raises(ConfigError, match="an import path like"):
        resolve_import_path("sklearn.svm.SVC\n", ["sklearn"])  # `$` would let this through


def test_resolve_import_path_accepts_both_forms() -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVC

    assert resolve_import_path("sklearn.svm.SVC", ["sklearn"]) is SVC
    assert resolve_import_path("sklearn.svm:SVC", ["sklearn."]) is SVC
    assert (
        resolve_import_path("sklearn.ensemble.RandomForestClassifier", ["sklearn"]) is RandomForestClassifier
    )
    with pytest.raises(ConfigError, match="did you mean"):
        resolve_import_path("sklearn.ensemble.RandomForrest", ["sklearn"])
    with pytest.raises(ConfigError, match="an importable module"):
        resolve_import_path("sklearn_nope.X", ["sklearn_nope"])


def test_user_objective_is_allowed_without_allow_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "usermod_cfg.py").write_text("def objective(trial):\n    return 0.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "usermod_cfg", raising=False)
    check_config(load_config(write(tmp_path, "objective: usermod_cfg:objective\nn_trials: 2\n", "ok.yaml")))
    typo = str(config_error(write(tmp_path, "objective: usermod_cfg:objectiv\nn_trials: 2\n"), check=True))
    assert "did you mean 'objective'?" in typo
    stdlib = str(config_error(write(tmp_path, "objective: os:system\nn_trials: 2\n"), check=True))
    assert "a function in your own module" in stdlib


# --- grids ------------------------------------------------------------------------------------


def test_grid_size_and_values() -> None:
    space = (
        ParamSpec("kernel", "categorical", choices=("rbf", "linear", None)),
        ParamSpec("depth", "int", 2, 10, step=4),
        ParamSpec("frac", "float", 0.1, 0.5, step=0.1),
        ParamSpec("units", "int", 1, 4, log=True),
    )
    assert grid_size(space) == 3 * 3 * 5 * 4
    values = grid_values(space)
    assert values == {
        "kernel": ["rbf", "linear", None],
        "depth": [2, 6, 10],
        "frac": [0.1, 0.2, 0.3, 0.4, 0.5],  # exact: counted in Decimal, not by adding 0.1
        "units": [1, 2, 3, 4],
    }
    assert grid_size((*space[:2], ParamSpec("f", "float", 0.0, 1.0, step=0.3))) == 3 * 3 * 4  # 0, .3, .6, .9


def test_grid_of_a_continuous_param_is_none() -> None:
    space = (ParamSpec("C", "float", 0.1, 10.0, log=True), ParamSpec("k", "categorical", choices=("a",)))
    assert grid_size(space) is None
    with pytest.raises(ValueError, match=r"search_space\.C"):
        grid_values(space)


def test_grid_values_feed_optuna_grid_sampler() -> None:
    import optuna

    cfg = load_config(ROOT / "configs" / "digits_svc_grid.yaml")
    sampler = optuna.samplers.GridSampler(grid_values(cfg.search_space), seed=0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)
    seen = set()

    def objective(trial: optuna.Trial) -> float:
        seen.add(tuple(trial.suggest_categorical(p.name, p.choices) for p in cfg.search_space))  # type: ignore[arg-type]
        return 0.0

    study.optimize(objective, n_trials=cfg.n_trials)
    assert len(seen) == 24


# --- start-up weight --------------------------------------------------------------------------


def test_importing_config_loads_no_heavy_libraries() -> None:
    code = (
        "import sys, sweeper.config\n"
        "heavy = [m for m in ('sklearn', 'optuna', 'mlflow') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"


def test_sweep_config_is_frozen() -> None:
    cfg = config_from_dict(yaml.safe_load(BASE), source="x.yaml")
    with pytest.raises(AttributeError):
        cfg.n_trials = 3  # type: ignore[misc]
    assert isinstance(cfg, SweepConfig)


def test_reliability_and_report_knobs_load_with_their_defaults():
    cfg = load_config(CONFIGS[0], ["report=false", "retry_exceptions=true", "max_trials_per_worker=3",
                                   "tracking.required=false"])
    assert (cfg.report, cfg.retry_exceptions, cfg.max_trials_per_worker, cfg.tracking.required) == (False, True, 3, False)
    default = load_config(CONFIGS[0])
    assert (default.report, default.capture_output, default.max_worker_memory_mb) == (True, True, None)
    with pytest.raises(ConfigError, match="report"):
        load_config(CONFIGS[0], ["report=maybe"])


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"model": "sklearn.svm.SVC", "data": "load_digits", "serach_space": {"C": [1]}, "sampler": "grid"}, "serach_space"),
        ({"modle": "sklearn.svm.SVC", "data": "load_digits", "search_space": {"C": [1]}, "n_trials": 1}, "modle"),
        ({"objectve": "m:f", "n_trials": 2}, "objectve"),
        ({"objective": "m:f", "n_trails": 2}, "n_trails"),
        ({"model": {"estimatr": "sklearn.svm.SVC"}, "data": "load_digits", "search_space": {"C": [1]}, "n_trials": 1},
         "model.estimatr"),
    ],
)
def test_a_misspelt_key_is_one_problem_not_also_a_missing_one(raw: dict[str, Any], key: str) -> None:
    """Issue #13 item 13: `serach_space` added two follow-on errors about `search_space`."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, source="x.yaml")
    assert [p.key for p in info.value.problems] == [key], str(info.value)
    assert "did you mean" in str(info.value)
