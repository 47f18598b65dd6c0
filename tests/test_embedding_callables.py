"""Any callable runs in worker processes: a module-level function (sent by reference), and, sent
by value, a callable class instance (Optuna's FAQ pattern), ``functools.partial``, a lambda, a
closure over local data, and objectives from a ``__main__`` that has no file (``python -c``,
``python -``) or no ``if __name__ == "__main__":`` guard, under forkserver and spawn."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import TESTS, children_runs

import sweeper
from sweeper.workers.callables import transport

pytestmark = pytest.mark.timeout(120)


def pid_objective(trial, offset=0.0):
    trial.suggest_float("x", 0, 1)
    return float(os.getpid()) + offset


class Objective:
    """Optuna's FAQ pattern: extra arguments held by a callable instance."""

    def __init__(self, data):
        self.data = data

    def __call__(self, trial):
        trial.set_user_attr("data_sum", float(self.data.sum()))
        return pid_objective(trial)


def closure_over(data):
    def objective(trial):
        trial.set_user_attr("data_sum", float(data.sum()))
        return pid_objective(trial)

    return objective


DATA = np.arange(1000.0)
SHAPES = {
    "function": (pid_objective, "reference"),
    "callable instance": (Objective(DATA), "value"),
    "functools.partial": (functools.partial(pid_objective, offset=0.0), "value"),
    "lambda": (lambda trial: pid_objective(trial), "value"),
    "closure": (closure_over(DATA), "value"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_runs_in_worker_processes_with_a_child_run_each(shape, tracking_uri, experiment, client):
    objective, how = SHAPES[shape]
    assert (transport(objective).payload is None) == (how == "reference")
    study = sweeper.optimize(objective, n_trials=4, n_jobs=2, tracking_uri=tracking_uri, experiment=experiment)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert os.getpid() not in {int(t.value) for t in study.trials}  # each ran in a worker process
    if shape in ("callable instance", "closure"):
        assert {t.user_attrs["data_sum"] for t in study.trials} == {float(DATA.sum())}
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.params["objective"].endswith("(by value)") == (how == "value")
    assert len(children_runs(client, parent.info.run_id)) == 4


def run_python(args: list[str], stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=100,
                          env=env, cwd=cwd)


SCRIPT = textwrap.dedent("""
    import os
    import numpy as np
    import sweeper

    data = np.arange(10.0)
    offset = 1.0

    def objective(trial):
        return float(data.sum()) + offset + trial.suggest_float("x", 0, 1) * 0

    study = sweeper.optimize(lambda trial: objective(trial), n_trials=4, n_jobs=2, track=False,
                             start_method={start_method!r})
    print("RESULT", len(study.trials), study.best_value, flush=True)
""")


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
@pytest.mark.parametrize("how", ["python -c", "python -"])
def test_an_objective_from_a_main_without_a_file_runs_in_workers(how, start_method, tmp_path):
    code = SCRIPT.format(start_method=start_method)
    done = run_python(["-c", code], cwd=tmp_path) if how == "python -c" else run_python(["-"], stdin=code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RESULT 4 46.0" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_a_script_without_a_main_guard_works_and_records_one_sweep(start_method, tmp_path):
    """Workers do not run the script again (which would start a sweep in each of them)."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import os
        import sweeper

        print("script body ran in", os.getpid(), flush=True)

        def objective(trial):
            trial.set_user_attr("pid", os.getpid())
            return (trial.suggest_float("x", -3, 3) - 1) ** 2

        study = sweeper.optimize(objective, n_trials=4, n_jobs=2, start_method={start_method!r},
                                 tracking_uri="sqlite:///{tmp_path}/mlflow.db", experiment="unguarded")
        print("RESULT", len(study.trials), {{t.state.name for t in study.trials}}, flush=True)
        print("PARENT", study.user_attrs["mlflow_parent_run_id"], flush=True)
    """))
    done = run_python([str(script)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("script body ran in") == 1, done.stdout
    assert "RESULT 4 {'COMPLETE'}" in done.stdout
    assert "Traceback" not in done.stderr
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent_id = done.stdout.split("PARENT ")[1].split()[0]
    assert client.get_run(parent_id).info.status == "FINISHED"
    runs = client.search_runs([client.get_experiment_by_name("unguarded").experiment_id], max_results=50)
    assert len(runs) == 5  # one parent, four children: nothing more


@pytest.mark.slow
def test_an_optuna_style_callable_class_script_changed_by_one_line(tmp_path):
    """The shape of optuna-examples' sklearn/sklearn_additional_args.py: a callable class holding
    the dataset, cross_val_score(n_jobs=-1) inside; only study.optimize became sweeper.optimize."""
    script = tmp_path / "additional_args.py"
    script.write_text(textwrap.dedent("""
        import optuna
        import sklearn.datasets
        import sklearn.ensemble
        import sklearn.model_selection
        import sklearn.svm

        import sweeper


        class Objective:
            def __init__(self, iris):
                self.iris = iris

            def __call__(self, trial):
                x, y = self.iris.data, self.iris.target
                name = trial.suggest_categorical("classifier", ["SVC", "RandomForest"])
                if name == "SVC":
                    model = sklearn.svm.SVC(C=trial.suggest_float("svc_c", 1e-10, 1e10, log=True), gamma="auto")
                else:
                    depth = trial.suggest_int("rf_max_depth", 2, 32, log=True)
                    model = sklearn.ensemble.RandomForestClassifier(max_depth=depth, n_estimators=10)
                return sklearn.model_selection.cross_val_score(model, x, y, n_jobs=-1, cv=3).mean()


        if __name__ == "__main__":
            iris = sklearn.datasets.load_iris()
            objective = Objective(iris)
            study = sweeper.optimize(objective, n_trials=6, n_jobs=2, direction="maximize", track=False)
            print("BEST", study.best_trial.number, len(study.trials), flush=True)
    """))
    done = run_python([str(script)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BEST" in done.stdout and " 6\n" in done.stdout


def test_objective_kwargs_holding_a_class_from_the_script_still_reach_workers(tmp_path):
    """Then workers import the script as multiprocessing does (its main guard matters again)."""
    script = tmp_path / "kwargs.py"
    script.write_text(textwrap.dedent("""
        import sweeper

        class Settings:
            scale = 3.0

        def objective(trial, settings):
            return settings.scale * trial.suggest_float("x", 0, 1)

        if __name__ == "__main__":
            study = sweeper.optimize(objective, n_trials=2, n_jobs=2, track=False,
                                     objective_kwargs={"settings": Settings()})
            print("RESULT", [t.state.name for t in study.trials], flush=True)
    """))
    done = run_python([str(script)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "RESULT ['COMPLETE', 'COMPLETE']" in done.stdout


def test_a_cached_loader_in_main_goes_by_value_and_a_name_into_main_is_refused_clearly(tmp_path):
    """``@functools.lru_cache`` loaders in a script are pickled by name (cloudpickle's way);
    workers do not import ``__main__``, so each gets the function by value with a cache of its
    own. Anything else that would travel as a name into ``__main__`` is one clear error."""
    done = run_python(["-c", textwrap.dedent("""
        import functools, os
        import sweeper

        @functools.lru_cache(maxsize=1)
        def load_data():
            return os.getpid()

        def objective(trial):
            trial.suggest_float("x", 0, 1)
            return float(load_data())  # the worker's own pid: cached in the worker

        study = sweeper.optimize(objective, n_trials=4, n_jobs=2, track=False)
        print("PIDS", sorted({int(t.value) for t in study.trials} - {os.getpid()}), flush=True)

        class Token:
            def __reduce__(self):
                return "TOKEN"

        TOKEN = Token()
        try:
            sweeper.optimize(lambda trial: TOKEN and 0.0, n_trials=1, track=False)
        except sweeper.SweeperError as exc:
            print("REFUSED", exc, flush=True)
    """)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "PIDS [" in done.stdout and "PIDS []" not in done.stdout
    assert ("REFUSED the objective __main__:<lambda> cannot be sent to the worker processes: pickling fails at "
            "objective -> global 'TOKEN', a __main__.Token (PicklingError: __main__.TOKEN is sent by name, "
            "and workers do not import __main__)") in done.stdout
