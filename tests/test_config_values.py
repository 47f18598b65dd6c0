"""``check_config`` catches what the estimator will reject, without fitting (issue #13 item 10):
choices, range bounds and fixed params against scikit-learn's declared parameter constraints.
Estimators that declare nothing, or constraints that cannot be judged, are skipped silently."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from sweeper.config import ConfigError, check_config, load_config


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    return {p.key: p.render(None) for p in info.value.problems}


def test_a_misspelt_kernel_choice_is_refused_at_its_index_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        model: sklearn.svm.SVC
        data: load_digits
        search_space:
          C: [0.1, 1, 10]
          kernel: [rbf, linear, sigmoidd]
        sampler: grid
        """)
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    (problem,) = info.value.problems
    assert problem.key == "search_space.kernel.choices.2" and problem.line == 5
    assert str(info.value) == (
        f"{path}:5: search_space.kernel.choices.2: expected one of 'linear', 'poly', 'precomputed', 'rbf', "
        "'sigmoid' or a callable (SVC's kernel), got 'sigmoidd' (did you mean 'sigmoid'?)"
    )


def test_a_range_outside_the_declared_interval_is_refused_at_its_bound(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """\
        model: sklearn.svm.SVC
        data: load_digits
        search_space:
          C: {low: -1, high: 10}
          tol: {low: 0.001, high: 0.1}
        n_trials: 3
        """))
    assert set(found) == {"search_space.C.low"}
    assert "expected a float in the range (0.0, inf] (SVC's C), got -1" in found["search_space.C.low"]


def test_a_float_range_for_an_integer_parameter_says_use_type_int(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """\
        model: sklearn.ensemble.RandomForestClassifier
        data: load_digits
        search_space:
          n_estimators: {type: float, low: 10, high: 50}
        n_trials: 3
        """))
    assert "use type: int" in found["search_space.n_estimators.low"]
    assert "search_space.n_estimators.high" in found


def test_fixed_params_are_judged_too(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """\
        model:
          estimator: sklearn.svm.SVC
          params: {gamma: autoo, max_iter: 1e3, class_weight: balanced, probability: true}
        data: load_digits
        search_space:
          C: {low: 0.1, high: 10}
        n_trials: 3
        """))
    assert set(found) == {"model.params.gamma", "model.params.max_iter"}
    assert "did you mean 'auto'?" in found["model.params.gamma"]
    assert "got 1000.0 (write 1000" in found["model.params.max_iter"]


def test_declared_values_and_names_report_together_every_problem_at_once(tmp_path: Path) -> None:
    found = problems(write(tmp_path, """\
        model: sklearn.svm.SVC
        data: {loader: make_classification, kwargs: {n_classes: 0}}
        search_space:
          kernal: [rbf]
          kernel: [rbf, sigmoidd]
          C: {low: -1, high: 1}
        n_trials: 3
        """))
    assert set(found) == {"search_space.kernal", "search_space.kernel.choices.1", "search_space.C.low", "data.kwargs.n_classes"}


def test_values_the_estimator_accepts_pass(tmp_path: Path) -> None:
    check_config(load_config(write(tmp_path, """\
        model: {estimator: sklearn.svm.SVC, params: {class_weight: balanced, cache_size: 100}}
        data: load_digits
        search_space:
          C: {low: 0.001, high: 1000, log: true}
          gamma: [scale, auto, 0.001]
          kernel: [rbf, linear, poly, sigmoid]
          degree: {low: 2, high: 5}
        n_trials: 3
        """)))


@pytest.fixture
def user_estimators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "userest_cfg.py").write_text(textwrap.dedent("""\
        from sklearn.base import BaseEstimator

        class Plain(BaseEstimator):
            def __init__(self, alpha=1.0):
                self.alpha = alpha

        class Future(BaseEstimator):
            _parameter_constraints = {"alpha": ["a kind of constraint from a future scikit-learn"]}

            def __init__(self, alpha=1.0):
                self.alpha = alpha
        """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "userest_cfg", raising=False)
    return "userest_cfg"


@pytest.mark.parametrize("estimator", ["Plain", "Future"])
def test_estimators_without_judgeable_constraints_are_skipped_silently(
    tmp_path: Path, user_estimators: str, estimator: str
) -> None:
    check_config(load_config(write(tmp_path, f"""\
        model: {{estimator: {user_estimators}.{estimator}, params: {{}}}}
        allow_imports: [{user_estimators}]
        data: load_digits
        search_space:
          alpha: {{low: -5, high: 5}}
        n_trials: 3
        """)))
