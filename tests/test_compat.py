"""Every private-API use in ``sweeper/_compat.py`` works against the installed libraries.

One test per function there: when Optuna, MLflow or scikit-learn moves a private name, the
failure names the function and the library, here, not a puzzling error in a sweep.
"""

from __future__ import annotations

import inspect

from sweeper import _compat


def test_every_compat_function_has_a_test_here():
    functions = {name for name, obj in vars(_compat).items()
                 if inspect.isfunction(obj) and obj.__module__ == _compat.__name__ and not name.startswith("_")}
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert functions <= tested, f"untested: {sorted(functions - tested)}"


def _study():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study()


def test_enter_optimize_loop():
    study = _study()
    _compat.enter_optimize_loop(study)
    study.stop()  # refused by Optuna outside an optimize loop
    assert _compat.stop_requested(study)
    _compat.leave_optimize_loop(study)
    _compat.enter_optimize_loop(study)
    assert not _compat.stop_requested(study)
    _compat.leave_optimize_loop(study)


def test_leave_optimize_loop():
    import pytest

    study = _study()
    _compat.enter_optimize_loop(study)
    _compat.leave_optimize_loop(study)
    with pytest.raises(RuntimeError):
        study.stop()


def test_stop_requested():
    study = _study()
    assert _compat.stop_requested(study) is False


def test_set_trial_system_attr():
    study = _study()
    trial = study.ask()
    _compat.set_trial_system_attr(study, trial, "sweeper:x", 1)
    study.tell(trial, 1.0)
    assert study.trials[0].system_attrs == {"sweeper:x": 1}


def test_stored_trial():
    study = _study()
    trial = study.ask()
    assert not _compat.stored_trial(study, trial).state.is_finished()
    study.tell(trial, 2.0)
    assert _compat.stored_trial(study, trial).value == 2.0


def test_forget_active_mlflow_run(tmp_path, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    try:
        run = mlflow.start_run()
        _compat.forget_active_mlflow_run()
        assert mlflow.active_run() is None
        assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"
    finally:
        mlflow.set_tracking_uri(None)


def test_parameter_constraints():
    from sklearn.datasets import make_classification
    from sklearn.svm import SVC

    assert {"kernel", "C", "gamma"} <= set(_compat.parameter_constraints(SVC))
    assert {"n_samples", "n_features"} <= set(_compat.parameter_constraints(make_classification))
    assert _compat.parameter_constraints(object) == {}


def test_unmet_constraint():
    from sklearn.datasets import make_classification
    from sklearn.svm import SVC

    svc = _compat.parameter_constraints(SVC)
    assert _compat.unmet_constraint(svc["kernel"], "rbf") is None
    accepted, words = _compat.unmet_constraint(svc["kernel"], "sigmoidd")
    assert "sigmoid" in words and "rbf" in words and "sigmoid" in accepted
    accepted, words = _compat.unmet_constraint(svc["C"], -1)
    assert "range" in accepted and words == ()
    assert _compat.unmet_constraint(svc["C"], 1.0) is None
    n_samples = _compat.parameter_constraints(make_classification)["n_samples"]
    assert _compat.unmet_constraint(n_samples, 1e3) is not None  # a float where an int is declared
    assert _compat.unmet_constraint(n_samples, 1000) is None
    assert _compat.unmet_constraint(["no such kind of constraint"], 1) is None  # cannot judge: silent
    assert _compat.unmet_constraint("no_validation", object()) is None


def test_use_multiprocessing_temp_dir(tmp_path):
    import subprocess
    import sys

    code = f"""
import multiprocessing.util
from sweeper import _compat
assert _compat.use_multiprocessing_temp_dir({str(tmp_path)!r})
assert not _compat.use_multiprocessing_temp_dir("/elsewhere")  # already chosen: left alone
assert multiprocessing.util.get_temp_dir() == {str(tmp_path)!r}
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _dask_cluster():
    import pytest

    distributed = pytest.importorskip("distributed")
    return distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                                    host="127.0.0.1")


def test_on_dask_worker_exit():
    import queue

    from distributed import Client, NannyPlugin

    class Notes(NannyPlugin):
        def setup(self, nanny):
            _compat.on_dask_worker_exit(nanny, lambda code: nanny.log_event("compat-exit", {"exitcode": code}))

    codes: queue.Queue = queue.Queue()
    with _dask_cluster() as cluster, Client(cluster) as client:
        client.subscribe_topic("compat-exit", lambda event: codes.put(event[1]["exitcode"]))
        client.register_plugin(Notes(), name="compat-exit-notes")
        client.submit(__import__("os")._exit, 7, pure=False)
        assert codes.get(timeout=30) == 7  # the nanny's own restart still happens
        client.wait_for_workers(1, timeout=30)
        assert client.submit(abs, -2, pure=False).result(timeout=30) == 2


def test_dask_task_wanted():
    import time

    from distributed import Client, Variable

    def watch() -> None:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
        Variable("compat-wanted").set(_compat.dask_task_wanted(worker, key))
        deadline = time.monotonic() + 30
        while _compat.dask_task_wanted(worker, key) and time.monotonic() < deadline:
            time.sleep(0.02)
        Variable("compat-wanted").set(_compat.dask_task_wanted(worker, key))

    with _dask_cluster() as cluster, Client(cluster) as client:
        wanted = Variable("compat-wanted", client=client)
        future = client.submit(watch, pure=False)
        assert wanted.get(timeout=30) is True
        future.release()  # no client wants it any more: the worker cancels it
        deadline = time.monotonic() + 30
        while wanted.get(timeout=30) is not False and time.monotonic() < deadline:
            time.sleep(0.02)
        assert wanted.get(timeout=30) is False


def test_best_ties_to_first_told(tmp_path):
    import optuna

    from sweeper.engine.study import journal_storage

    for storage, first_told in ((None, True), (journal_storage(tmp_path), False)):
        study = optuna.create_study(storage=storage, study_name="ties")
        later, earlier = study.ask(), study.ask()  # numbers 0 and 1
        study.tell(earlier, 1.0)  # #1 is told first
        study.tell(later, 1.0)
        assert _compat.best_ties_to_first_told(study) is first_told
        assert study.best_trial.number == (1 if first_told else 0)  # the behaviour it stands for
