"""``options_from_kwargs``: sweeper.optimize()'s keyword options through the same builder, rules
and defaults as a YAML file, with no objective/model/data section. Fast, no processes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sweeper.config import ConfigError, SweepConfig, config_from_dict, options_from_kwargs


def refused(values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        options_from_kwargs(values)
    assert info.value.source == "sweeper.optimize()"
    return str(info.value)


def test_a_bare_call_needs_only_n_trials_and_takes_the_file_defaults() -> None:
    cfg = options_from_kwargs({"n_trials": 20})
    assert isinstance(cfg, SweepConfig)
    assert (cfg.objective, cfg.model, cfg.data, cfg.source, cfg.search_space) == (None, None, None, None, ())
    assert cfg.max_consecutive_failures == 10 and cfg.max_retries == 0 and cfg.fail_fast is False
    assert cfg.direction == "minimize" and cfg.study_directions == ("minimize",)
    assert cfg.sampler.name == "tpe" and cfg.pruner is None
    assert cfg.capture_output is True and cfg.show_progress_bar is False and cfg.cluster is None
    assert cfg.tracking.required is True and cfg.tracking.uri is None


def test_every_listed_argument_is_accepted() -> None:
    cfg = options_from_kwargs({
        "name": "rf", "n_trials": 5, "n_jobs": -1, "timeout": 30, "trial_timeout": 2.5, "seed": 7,
        "directions": ["minimize", "maximize"], "metric_names": ["loss", "acc"], "max_retries": 2,
        "retry_exceptions": True, "max_consecutive_failures": None, "fail_fast": True,
        "max_trials_per_worker": 3, "max_worker_memory_mb": 512, "capture_output": False,
        "tracking": {"uri": "sqlite:///x.db", "experiment": "exp", "required": False},
        "storage_dir": "/tmp/s", "cluster": "local:2", "show_progress_bar": True,
        "sampler": "nsgaii", "report": False,
    })
    assert (cfg.name, cfg.n_trials, cfg.n_jobs, cfg.timeout, cfg.trial_timeout, cfg.seed) == ("rf", 5, None, 30.0, 2.5, 7)
    assert cfg.directions == ("minimize", "maximize") and cfg.direction is None and cfg.is_multi_objective
    assert cfg.metric_names == ("loss", "acc")
    assert (cfg.max_retries, cfg.retry_exceptions, cfg.max_consecutive_failures, cfg.fail_fast) == (2, True, None, True)
    assert (cfg.max_trials_per_worker, cfg.max_worker_memory_mb, cfg.capture_output) == (3, 512, False)
    assert (cfg.tracking.uri, cfg.tracking.experiment, cfg.tracking.required) == ("sqlite:///x.db", "exp", False)
    assert (cfg.storage_dir, cfg.cluster, cfg.show_progress_bar, cfg.sampler.name, cfg.report) == (
        "/tmp/s", "local:2", True, "nsgaii", False)


def test_same_values_give_the_same_config_as_a_file() -> None:
    shared = {"name": "same", "n_trials": 5, "seed": 3, "timeout": 60, "max_retries": 1,
              "tracking": {"experiment": "e"}, "direction": "maximize"}
    embedded = options_from_kwargs(shared)
    from_file = config_from_dict({"objective": "m:f", **shared}, source="same.yaml")
    assert embedded.as_dict() == {**from_file.as_dict(), "objective": None, "source": None}


def test_a_name_is_made_when_none_is_given_and_the_experiment_then_is_shared() -> None:
    cfg = options_from_kwargs({"n_trials": 1})
    assert re.fullmatch(r"sweep-\d{8}-\d{6}", cfg.name)
    assert cfg.tracking.experiment == "sweeper"  # not one new experiment per call
    assert options_from_kwargs({"n_trials": 1, "name": "rf"}).tracking.experiment == "rf"  # as in a file


def test_errors_name_optimize_and_the_argument_all_at_once() -> None:
    message = refused({"n_trials": 0, "n_jobs": 0, "timeout": -1, "seed": -3, "fail_fast": "yes",
                       "tracking": {"uri": 5}, "cluster": "nowhere", "direction": "maximise"})
    lines = message.splitlines()
    assert len(lines) == 8
    assert "sweeper.optimize(): n_trials: expected an integer >= 1, got 0" in lines
    assert "sweeper.optimize(): n_jobs: expected an integer >= 1, or -1 / null for all cores, got 0 (n_jobs=0 has no meaning)" in lines
    assert "sweeper.optimize(): direction: expected one of minimize, maximize, got 'maximise' (did you mean 'maximize'?)" in lines
    for key in ("timeout", "seed", "fail_fast", "tracking.uri", "cluster"):
        assert any(line.startswith(f"sweeper.optimize(): {key}: expected ") for line in lines), key


def test_yaml_only_options_and_typos_are_refused_with_a_hint() -> None:
    assert "model: expected a known key (not an option of sweeper.optimize(); it is for YAML configs)" in refused(
        {"n_trials": 1, "model": "sklearn.svm.SVC"})
    assert "n_trial: expected a known key (did you mean 'n_trials'?)" in refused({"n_trials": 1, "n_trial": 3})


def test_a_sweep_that_would_never_end_is_refused() -> None:
    assert "n_trials: expected an integer >= 1, got nothing (required unless the sampler is grid or a timeout is set)" in (
        refused({}))
    assert options_from_kwargs({"timeout": 5}).n_trials is None


def test_sampler_and_pruner_by_name_with_the_file_rules() -> None:
    assert "sampler.name: expected one of" in refused({"n_trials": 1, "sampler": "tpee"})
    assert "did you mean 'tpe'?" in refused({"n_trials": 1, "sampler": "tpee"})
    assert "search_space: expected at least one parameter for the grid sampler" in refused({"n_trials": 1, "sampler": "grid"})
    assert "no pruner with several directions" in refused(
        {"n_trials": 1, "pruner": "median", "directions": ["minimize", "maximize"]})
    assert options_from_kwargs({"n_trials": 1, "pruner": {"name": "median", "n_warmup_steps": 2}}).pruner is not None


def test_explicit_none_is_null_and_absent_is_the_default() -> None:
    assert options_from_kwargs({"n_trials": 1}).max_consecutive_failures == 10
    assert options_from_kwargs({"n_trials": 1, "max_consecutive_failures": None}).max_consecutive_failures is None
    assert "max_retries: expected an integer >= 0, got null" in refused({"n_trials": 1, "max_retries": None})


def test_values_are_bounded_like_a_file() -> None:
    shared: list[Any] = [0] * 10
    for _ in range(7):  # ten lists of ten of ten ...: 10**8 values from a few hundred objects
        shared = [shared] * 10
    assert "at most 100,000 values" in refused({"n_trials": 1, "tracking": {"experiment": shared}})
    deep: Any = 1
    for _ in range(500):
        deep = {"x": deep}
    assert "levels of nesting" in refused({"n_trials": 1, "tracking": deep})


def test_a_mapping_is_required() -> None:
    with pytest.raises(ConfigError, match=r"sweeper.optimize\(\): \(arguments\): expected a mapping of options"):
        options_from_kwargs([("n_trials", 1)])  # type: ignore[arg-type]
