"""Fault injection: a failing, crashing or hanging trial fails alone; the sweep goes on.

Fault tests run on the process backend only (threads cannot crash alone). Every test is
bounded by a timeout marker; the sweeps themselves use trial_timeout where a hang is possible.
"""

from __future__ import annotations

import time

import optuna
import pytest
from conftest import children_runs, wait_no_leftovers

import sweeper

pytestmark = pytest.mark.timeout(90)
COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


def sweep(objective, n_trials=4, **kwargs):
    kwargs.setdefault("track", False)
    return sweeper.optimize(f"_objectives:{objective}", n_trials=n_trials, n_jobs=2, sampler="random", **kwargs)


def fail_info(trial):
    return trial.system_attrs.get("sweeper:fail_reason"), trial.system_attrs.get("sweeper:error", "")


def test_exception_fails_only_that_trial_with_its_traceback(tracking_uri, experiment, client):
    study = sweep("raises_on_odd", n_trials=6, track=True, tracking_uri=tracking_uri, experiment=experiment)
    for trial in study.trials:
        if trial.number % 2:
            assert trial.state == FAIL
            reason, error = fail_info(trial)
            assert reason == "exception"
            assert error == f"ValueError: odd trial {trial.number}"
            assert "raise ValueError" in trial.system_attrs["sweeper:traceback"]
        else:
            assert trial.state == COMPLETE
    runs = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 3
    assert all(r.data.tags["sweeper.fail_reason"] == "exception" for r in failed)
    text = client.download_artifacts(failed[0].info.run_id, "traceback.txt")
    assert "ValueError: odd trial" in open(text).read()


def test_unpicklable_exception_is_reported_as_text():
    study = sweep("raises_unpicklable", n_trials=2)
    assert all(t.state == FAIL for t in study.trials)
    assert fail_info(study.trials[0])[1] == "Unpicklable: 1-2"


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        ("sigkill_once", "killed by SIGKILL (possibly out of memory), exit code -9"),
        ("segfault_once", "killed by SIGSEGV"),
        ("os_exit_once", "worker exited (code 3) before reporting a result"),
    ],
)
def test_dead_worker_fails_only_its_trial_and_is_replaced(objective, expected, tmp_path):
    marker = tmp_path / "crash-once"
    marker.touch()
    study = sweep(objective, n_trials=6, objective_kwargs={"marker": str(marker)})
    states = [t.state for t in study.trials]
    assert states.count(FAIL) == 1 and states.count(COMPLETE) == 5
    failed = next(t for t in study.trials if t.state == FAIL)
    reason, error = fail_info(failed)
    assert reason == "crashed"
    assert expected in error
    assert wait_no_leftovers() == []


def test_sys_exit_in_objective_is_a_failure_not_success():
    study = sweep("sys_exit", n_trials=2)
    assert [t.state for t in study.trials] == [FAIL, FAIL]
    assert "sys.exit(0)" in fail_info(study.trials[0])[1]


def test_crash_after_result_keeps_the_result():
    study = sweep("crash_after_result", n_trials=4)
    assert [t.state for t in study.trials] == [COMPLETE] * 4


def test_hanging_trial_is_killed_at_trial_timeout(tmp_path, tracking_uri, experiment, client):
    marker = tmp_path / "hang-once"
    marker.touch()
    started = time.monotonic()
    study = sweep(
        "hang_once", n_trials=4, trial_timeout=1.5, objective_kwargs={"marker": str(marker)},
        track=True, tracking_uri=tracking_uri, experiment=experiment,
    )
    assert time.monotonic() - started < 30
    states = [t.state for t in study.trials]
    assert states.count(FAIL) == 1 and states.count(COMPLETE) == 3
    failed = next(t for t in study.trials if t.state == FAIL)
    assert fail_info(failed) == ("timeout", "TrialTimeout: exceeded trial_timeout=1.5s")
    runs = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert len(killed) == 1 and killed[0].data.tags["sweeper.fail_reason"] == "timeout"
    assert wait_no_leftovers() == []


def test_trial_ignoring_sigterm_is_killed_after_grace():
    started = time.monotonic()
    study = sweep("hang_ignoring_sigterm", n_trials=2, trial_timeout=0.5)
    assert time.monotonic() - started < 20
    assert [fail_info(t)[0] for t in study.trials] == ["timeout", "timeout"]
    assert wait_no_leftovers() == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", "objective returned nan"),
        ("none", "got NoneType"),
        ("str", "got str '0.5'"),
        ("lambda", "got function"),
    ],
)
def test_bad_values_fail_the_trial_with_a_clear_message(kind, message):
    study = sweep("returns", n_trials=2, objective_kwargs={"kind": kind})
    assert [t.state for t in study.trials] == [FAIL, FAIL]
    reason, error = fail_info(study.trials[0])
    assert reason == "bad_value" and message in error


@pytest.mark.parametrize(("kind", "value"), [("inf", float("inf")), ("numpy", 0.5)])
def test_inf_and_numpy_scalars_are_accepted(kind, value):
    study = sweep("returns", n_trials=2, objective_kwargs={"kind": kind})
    assert [t.value for t in study.trials] == [value, value]


def test_wrong_number_of_values_fails_the_trial():
    study = sweep("returns", n_trials=1, objective_kwargs={"kind": "list"})
    assert study.trials[0].state == FAIL
    assert "2 value(s), but the study has 1 direction(s)" in fail_info(study.trials[0])[1]


def test_crash_loop_stops_the_sweep():
    study = sweep("always_segfault", n_trials=50, max_consecutive_failures=4)
    assert 4 <= len(study.trials) <= 6  # in-flight trials at the moment of the brake may finish
    assert all(t.state == FAIL for t in study.trials)
    assert wait_no_leftovers() == []


def test_objective_that_cannot_be_pickled_is_refused_before_any_worker_starts():
    """One error naming the part that failed and its type, never a bound argument's value."""
    import functools
    import threading

    import numpy as np

    from conftest import leftover_children

    class Model:
        def __init__(self):
            self.weights = np.full(50_000, 7.25)
            self.lock = threading.Lock()

    def fit(trial, model, data):
        return 0.0

    objective = functools.partial(fit, model=Model(), data=np.full(50_000, 3.5))
    before = {p.pid for p in leftover_children()}
    with pytest.raises(sweeper.SweeperError) as raised:
        sweeper.optimize(objective, n_trials=1, n_jobs=2, track=False)
    message = str(raised.value)
    assert "bound argument 'model' -> attribute 'lock', a _thread.lock" in message
    assert "7.25" not in message and "3.5" not in message and len(message.splitlines()) == 1
    assert {p.pid for p in leftover_children()} <= before  # nothing was started
