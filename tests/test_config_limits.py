"""Bounded input on every path (issue #15 items 7 and 9): alias bombs and deep nesting in a file,
a --set value or Python data, huge generated data and degenerate search spaces are each one
ConfigError naming the limit, never a traceback, a hang or gigabytes. Fast, no processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from sweeper.config import ConfigError, check_config, config_from_dict, load_config
from sweeper.config.yaml_loader import load_yaml_value

BASE = "model: sklearn.svm.SVC\ndata: load_digits\nsearch_space:\n  C: {low: 0.1, high: 10, log: true}\nn_trials: 5\n"


def bomb() -> str:
    """A billion laughs in one flow value: nine levels of ten aliases, 10**9 leaves."""
    levels = ["&a [1,1,1,1,1,1,1,1,1,1]"]
    for previous, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    return "[" + ",".join(levels) + "]"


def refused(path: Path, overrides: tuple[str, ...] = (), *, check: bool = False) -> str:
    with pytest.raises(ConfigError) as info:
        cfg = load_config(path, overrides)
        if check:
            check_config(cfg)
    message = str(info.value)
    assert "Traceback" not in message
    return message


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


# --- alias bombs and nesting: files, --set, Python data ----------------------------------------


@pytest.mark.parametrize("key", ["model.params.payload", "objective_kwargs.x", "sampler.n_startup_trials", "name"])
def test_an_alias_bomb_through_set_is_refused_quickly(config: Path, key: str) -> None:
    assert len(bomb()) < 320  # the was 314 characters
    started = time.perf_counter()
    message = refused(config, (f"{key}={bomb()}",))
    assert time.perf_counter() - started < 2
    assert f": {key}: expected at most 100,000 values after expanding aliases, got more" in message
    assert "from --set" in message


def test_load_yaml_value_applies_the_file_limits() -> None:
    with pytest.raises(ValueError, match="after expanding aliases"):
        load_yaml_value(bomb())
    with pytest.raises(ValueError, match="levels of nesting"):
        load_yaml_value("[" * 1000 + "]" * 1000)
    with pytest.raises(ValueError, match="no recursive aliases"):
        load_yaml_value("&a [*a]")
    with pytest.raises(ValueError, match="bytes"):
        load_yaml_value("x" * ((1 << 20) + 1))
    assert load_yaml_value("{a: [1, 2]}") == {"a": [1, 2]} and load_yaml_value("") is None


@pytest.mark.parametrize(
    "nested",
    ["[" * 1000 + "]" * 1000, "{a: " * 1000 + "1" + "}" * 1000,
     "\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 1000)) + "  " * 1000 + "v"],
    ids=["flow lists", "flow mappings", "block mappings"],
)
def test_yaml_nested_1000_deep_is_one_line_in_a_file_and_through_set(tmp_path: Path, nested: str) -> None:
    message = refused(write(tmp_path, BASE + "objective_kwargs: " + nested + "\n"))
    assert len(message.splitlines()) == 1 and "expected at most 64 levels of nesting" in message
    flat = nested.replace("\n", " ") if nested.startswith("[") or nested.startswith("{") else "[" * 1000 + "]" * 1000
    message = refused(write(tmp_path, BASE), (f"model.params.x={flat}",))
    assert len(message.splitlines()) == 1 and "expected at most 64 levels of nesting" in message


def test_aliases_cannot_nest_past_the_limit(tmp_path: Path) -> None:
    chain = "".join(
        f"a{i}: &a{i} " + "[" * 30 + (f"*a{i - 1}" if i else "1") + "]" * 30 + "\n" for i in range(5)
    )
    assert "levels of nesting after expanding aliases" in refused(write(tmp_path, chain))


def test_python_data_is_bounded_too() -> None:
    shared: list[Any] = [0] * 10
    for _ in range(7):
        shared = [shared] * 10
    with pytest.raises(ConfigError, match="at most 100,000 values"):
        config_from_dict({"objective": "m:f", "n_trials": 1, "objective_kwargs": {"x": shared}}, source="x.yaml")
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ConfigError, match="levels of nesting"):
        config_from_dict({"objective": "m:f", "n_trials": 1, "objective_kwargs": loop}, source="x.yaml")


def test_an_integer_python_cannot_read_is_one_line(tmp_path: Path) -> None:
    message = refused(write(tmp_path, BASE.replace("n_trials: 5", "n_trials: " + "9" * 5000)))
    assert "numbers of at most 4,300 digits" in message
    message = refused(write(tmp_path, BASE), ("n_trials=" + "9" * 5000,))
    assert "numbers of at most 4,300 digits" in message and "--set" in message


# --- degenerate search spaces --------------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["grid", "tpe"])
def test_a_step_of_1e_300_is_a_config_error_naming_the_limit(tmp_path: Path, sampler: str) -> None:
    text = BASE.replace("C: {low: 0.1, high: 10, log: true}", "C: {low: 0.1, high: 10, step: 1e-300}")
    message = refused(write(tmp_path, text + f"sampler: {sampler}\n"))
    assert "search_space.C.step: expected at most 9,007,199,254,740,992 (2**53) values in the range" in message
    assert "drop step" in message and len(message.splitlines()) == 1


def test_int_bounds_beyond_2_53_are_refused(tmp_path: Path) -> None:
    text = BASE.replace("C: {low: 0.1, high: 10, log: true}", "max_iter: {low: 1, high: 100000000000000000000}")
    assert "search_space.max_iter.high: expected an integer in [-2**53, 2**53]" in refused(write(tmp_path, text))


def test_a_float_bound_too_big_for_a_float_is_refused(tmp_path: Path) -> None:
    text = BASE.replace("C: {low: 0.1, high: 10, log: true}", f"C: {{type: float, low: 0.1, high: {10**400}}}")
    assert "search_space.C.high: expected a finite number" in refused(write(tmp_path, text))


def test_a_grid_past_its_limit_names_it(tmp_path: Path) -> None:
    text = BASE.replace("C: {low: 0.1, high: 10, log: true}", "max_iter: {low: 1, high: 10000000}\n  k: [a, b]")
    message = refused(write(tmp_path, text + "sampler: grid\n"))
    assert "search_space: expected a grid of at most 1,000,000 points, got 20,000,000 points" in message


def test_timeouts_are_bounded_to_a_year(tmp_path: Path) -> None:
    message = refused(write(tmp_path, BASE + "timeout: 1e300\ntrial_timeout: 4e7\n"))
    assert "timeout: expected a number of seconds in (0, 31,536,000] (a year), got 1e+300" in message
    assert "trial_timeout: expected a number of seconds in (0, 31,536,000]" in message


# --- huge generated data -----------------------------------------------------------------------


def test_n_samples_1e12_is_a_config_error_naming_the_limit(tmp_path: Path) -> None:
    text = BASE.replace("data: load_digits", "data: {loader: make_classification, kwargs: {n_samples: 1e12}}")
    message = refused(write(tmp_path, text), check=True)
    assert "c.yaml:2: data.kwargs.n_samples: expected at most 100,000,000 generated values, got 20,000,000,000,000" in message
    assert "n_samples 1,000,000,000,000 x n_features 20" in message
    assert "n_samples takes an integer" in message and len(message.splitlines()) == 1


def test_data_sizes_count_defaults_and_square_matrices(tmp_path: Path) -> None:
    text = BASE.replace("data: load_digits", "data: {loader: make_classification, kwargs: {n_features: 20000000}}")
    assert "data.kwargs.n_features: expected at most 100,000,000 generated values" in refused(write(tmp_path, text), check=True)
    text = BASE.replace("data: load_digits", "data: {loader: make_spd_matrix, kwargs: {n_dim: 100000}}")
    assert "(n_dim 100,000 squared)" in refused(write(tmp_path, text), check=True)


def test_a_float_where_the_loader_declares_an_int_is_a_config_error(tmp_path: Path) -> None:
    text = BASE.replace("data: load_digits", "data: {loader: make_classification, kwargs: {n_samples: 1e3}}")
    message = refused(write(tmp_path, text), check=True)
    assert "data.kwargs.n_samples: expected an int in the range [1, inf) (make_classification's n_samples), got 1000.0" in message
    assert "write 1000" in message


def test_sane_generated_data_passes(tmp_path: Path) -> None:
    text = BASE.replace("data: load_digits", "data: {loader: make_classification, kwargs: {n_samples: 5000, n_features: 50}}")
    check_config(load_config(write(tmp_path, text)))
