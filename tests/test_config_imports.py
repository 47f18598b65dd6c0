"""Imports from trusted places only, the config side (issue #15 item 6): a user objective path is
judged as a string before anything imports or preloads it, and a config's user code resolves
from the config's own directory, not from the working directory. Fast, no processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sweeper.config import (
    ConfigError,
    check_objective_path,
    config_from_dict,
    load_config,
    objective_root,
    options_from_kwargs,
)


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module named like the standard library's ``this`` that leaves a marker when imported."""
    marker = tmp_path / "imported"
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "this.py").write_text(f"open({str(marker)!r}, 'w').close()\ns = print\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "this", raising=False)
    return marker


def test_a_standard_library_objective_is_refused_when_the_config_loads(tmp_path: Path, planted: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("objective: this:s\nn_trials: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)  # before check_config, before any forkserver could preload it
    assert str(info.value) == (
        f"{path}:1: objective: expected a function in your own module, got 'this:s' "
        "(standard-library functions are not objectives; rename a module that shadows one)"
    )
    assert not planted.exists() and "this" not in sys.modules


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("this:s", "a function in your own module"),
        ("os:system", "a function in your own module"),
        ("os.path:join", "a function in your own module"),
        ("mypkg.train.objective", '"package.module:function"'),
        ("mypkg.train:objective\n", '"package.module:function"'),
        ("mypkg.__init__:objective", "a path without dunder names"),
        ("mypkg:__call__", "a path without dunder names"),
        ("", '"package.module:function"'),
    ],
)
def test_check_objective_path_refuses_what_check_config_refuses(path: str, expected: str, planted: Path) -> None:
    with pytest.raises(ConfigError) as info:
        check_objective_path(path, source="sweeper.optimize()")
    assert str(info.value).startswith(f"sweeper.optimize(): objective: expected {expected}")
    assert not planted.exists()


def test_check_objective_path_passes_user_code_and_allowed_prefixes(planted: Path) -> None:
    check_objective_path("mypkg.train:objective")
    check_objective_path("sweeper_user.objectives:score")
    check_objective_path("this:s", allow_imports=["this"])  # the user vouched for it
    assert not planted.exists() and "this" not in sys.modules  # judged as strings only


def test_objective_root_is_the_config_files_directory(tmp_path: Path) -> None:
    (tmp_path / "sweeps").mkdir()
    path = tmp_path / "sweeps" / "c.yaml"
    path.write_text("objective: train:objective\nn_trials: 2\n")
    assert objective_root(load_config(path)) == (tmp_path / "sweeps").resolve()


def test_objective_root_covers_allowed_user_estimators_but_not_sklearn(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    base = "data: load_digits\nsearch_space: {C: {low: 0.1, high: 1}}\nn_trials: 2\n"
    path.write_text("model: mymodels.Model\nallow_imports: [mymodels]\n" + base)
    assert objective_root(load_config(path)) == tmp_path.resolve()
    path.write_text("model: sklearn.svm.SVC\n" + base)
    assert objective_root(load_config(path)) is None


def test_objective_root_is_none_without_a_file() -> None:
    assert objective_root(options_from_kwargs({"n_trials": 1})) is None
    assert objective_root(config_from_dict({"objective": "m:f", "n_trials": 1}, source="nowhere/x.yaml")) is None
