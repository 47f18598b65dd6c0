"""The table of options: each option is one SweepConfig field, and validation, defaults, --set,
sweeper.optimize() and README's "Config reference" all derive from it. Fast, no processes."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from sweeper.config import ConfigError, SweepConfig, config_from_dict, load_config, options_from_kwargs, reference
from sweeper.config.rules import Section
from sweeper.config.schema import EvaluationSpec, TrackingSpec, default_of, options

ROOT = Path(__file__).resolve().parent.parent
#: Options whose value is resolved from other keys (the field default is only the fallback).
RESOLVED = {"name", "direction", "n_trials", "tracking", "sampler", "objective"}
#: A value no rule accepts (every rule-checked option refuses a mapping).
WRONG = {"x": 1}


def readme_reference() -> str:
    section = (ROOT / "README.md").read_text().split("## Config reference", 1)[1].split("## CLI reference", 1)[0]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match, "README's Config reference has no ```yaml block"
    return match.group(1)


def rule_checked() -> list[str]:
    return [spec.name for spec, row in options(SweepConfig) if not isinstance(row.rule, Section)]


def test_readme_config_reference_is_what_the_table_generates() -> None:
    assert readme_reference() == reference(), (
        "README's Config reference differs from the option table: paste the output of "
        "`python -m sweeper.config` into it"
    )


def test_every_sweep_config_field_but_source_is_an_option_with_help() -> None:
    declared = {spec.name: row for spec, row in options(SweepConfig)}
    assert {f.name for f in fields(SweepConfig)} - set(declared) == {"source"}
    for name, row in declared.items():
        assert row.help and row.rule.expected, name
    for nested in (EvaluationSpec, TrackingSpec):
        assert {f.name for f in fields(nested)} == {spec.name for spec, _ in options(nested)}


def test_every_option_appears_in_the_reference_in_field_order() -> None:
    text = reference()
    positions = []
    for spec, _ in options(SweepConfig):
        match = re.search(rf"^(# )?{spec.name}:", text, re.M)
        assert match, f"{spec.name} is not in the reference"
        positions.append(match.start())
    assert positions == sorted(positions)
    for nested in ("cv", "holdout", "scoring", "shuffle", "partial_fit_epochs", "uri", "experiment", "required"):
        assert re.search(rf"^  {nested}:", text, re.M), nested


def entry(text: str, key: str) -> str:
    """One key's line in the reference with its wrapped comment lines, as one line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\s*{key}:", line))
    end = start + 1
    while end < len(lines) and re.match(r"^ {20,}# ", lines[end]):
        end += 1
    return " ".join(line.strip().removeprefix("# ") for line in lines[start:end])


def test_the_reference_states_each_default_from_the_field() -> None:
    text = reference()
    assert entry(text, "max_consecutive_failures").endswith("default: 10")
    assert entry(text, "fail_fast").endswith("default: false")
    assert entry(text, "cv").endswith("default: 5")
    assert entry(text, "experiment").endswith("default: the sweep name")


@pytest.mark.parametrize("key", rule_checked())
def test_each_rule_checked_option_is_validated_from_its_row(key: str) -> None:
    row = next(row for spec, row in options(SweepConfig) if spec.name == key)
    data = {"objective": "m:f", "n_trials": 1, key: WRONG}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, source="x.yaml")
    assert f"x.yaml: {key}: expected {row.rule.expected}, got a mapping" in str(info.value)


@pytest.mark.parametrize("key", rule_checked())
def test_each_option_refuses_the_same_way_through_set(tmp_path: Path, key: str) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("objective: m:f\nn_trials: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, [f"{key}={{x: 1}}"])
    assert f": {key}: expected " in str(info.value) and "--set" in str(info.value)


def test_defaults_are_the_field_defaults_on_every_path() -> None:
    from_file = config_from_dict({"objective": "m:f", "n_trials": 1}, source="x.yaml")
    embedded = options_from_kwargs({"n_trials": 1})
    for spec, row in options(SweepConfig):
        if spec.name in RESOLVED:
            continue
        default = default_of(spec)
        assert default is not MISSING
        assert getattr(from_file, spec.name) == default, spec.name
        assert getattr(embedded, spec.name) == default, spec.name
    assert from_file.max_consecutive_failures == embedded.max_consecutive_failures == 10
    assert from_file.pruner is embedded.pruner is None
    assert from_file.sampler == embedded.sampler and from_file.sampler.name == "tpe"
    assert from_file.direction == embedded.direction == "minimize"  # a user objective minimizes


def test_unknown_keys_get_did_you_mean_from_the_table() -> None:
    with pytest.raises(ConfigError, match=r"show_progres_bar: expected a known key \(did you mean 'show_progress_bar'\?\)"):
        config_from_dict({"objective": "m:f", "n_trials": 1, "show_progres_bar": True}, source="x.yaml")


# --- the options added with the table ----------------------------------------------------------


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "tls://scheduler:8786", "local:4", "tcp://host"])
def test_cluster_takes_a_dask_address_or_local_n(address: str) -> None:
    cfg = config_from_dict({"objective": "m:f", "n_trials": 1, "cluster": address}, source="x.yaml")
    assert cfg.cluster == address
    assert options_from_kwargs({"n_trials": 1, "cluster": address}).cluster == address


@pytest.mark.parametrize("address", ["localhost:8786", "local:0", "local:x", "tcp://", "tcp://a b:1", 8786])
def test_cluster_refuses_anything_else(address: Any) -> None:
    with pytest.raises(ConfigError, match="cluster: expected a Dask scheduler address"):
        config_from_dict({"objective": "m:f", "n_trials": 1, "cluster": address}, source="x.yaml")


def test_cluster_defaults_to_none() -> None:
    assert config_from_dict({"objective": "m:f", "n_trials": 1}, source="x.yaml").cluster is None


def test_metric_names_one_per_direction() -> None:
    base = {"objective": "m:f", "n_trials": 1}
    cfg = config_from_dict({**base, "directions": ["minimize", "maximize"], "metric_names": ["loss", "acc"]}, source="x.yaml")
    assert cfg.metric_names == ("loss", "acc")
    assert config_from_dict({**base, "metric_names": ["loss"]}, source="x.yaml").metric_names == ("loss",)
    cases = {
        "metric_names: expected one name per direction (2), got 1 names": {
            "directions": ["minimize", "maximize"], "metric_names": ["loss"]},
        "metric_names.1: expected each name once, got duplicate 'a'": {
            "directions": ["minimize", "maximize"], "metric_names": ["a", "a"]},
        "metric_names.0: expected a non-empty string": {"metric_names": [""]},
        "metric_names: expected a list of distinct non-empty strings, got 'loss'": {"metric_names": "loss"},
    }
    for message, extra in cases.items():
        with pytest.raises(ConfigError) as info:
            config_from_dict({**base, **extra}, source="x.yaml")
        assert message in str(info.value)


def test_show_progress_bar_is_a_flag_defaulting_to_false() -> None:
    base = {"objective": "m:f", "n_trials": 1}
    assert config_from_dict(base, source="x.yaml").show_progress_bar is False
    assert config_from_dict({**base, "show_progress_bar": True}, source="x.yaml").show_progress_bar is True
    with pytest.raises(ConfigError, match="show_progress_bar: expected true or false"):
        config_from_dict({**base, "show_progress_bar": "yes"}, source="x.yaml")


def test_a_timeout_alone_ends_a_sweep_on_every_path() -> None:
    assert config_from_dict({"objective": "m:f", "timeout": 60}, source="x.yaml").n_trials is None
    assert options_from_kwargs({"timeout": 60}).n_trials is None
    with pytest.raises(ConfigError, match="required unless the sampler is grid or a timeout is set"):
        options_from_kwargs({})
