"""Nested parallelism sized to the worker: inside a trial, joblib's ``n_jobs=-1`` (and BLAS/OpenMP
threads) mean that worker's share of the cores; a value the user set in the environment wins."""

from __future__ import annotations

import os

import pytest

import sweeper
from sweeper.workers.nested import JOBS_VARIABLE, core_share, cores, worker_environment

pytestmark = pytest.mark.timeout(120)


def test_each_worker_gets_its_share_unless_the_user_set_a_value():
    env = worker_environment(2, environ={"OMP_NUM_THREADS": "3"})
    assert env[JOBS_VARIABLE] == str(max(1, cores() // 2))
    assert env["OMP_NUM_THREADS"] == "3"  # the user's choice is kept, and handed on
    assert core_share(cores() * 4) == 1  # never less than one


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cross_val_score_n_jobs_minus_one_in_a_trial_uses_at_most_the_worker_s_share(n_jobs):
    study = sweeper.optimize("_objectives:nested_share", n_trials=2, n_jobs=n_jobs, track=False)
    share = int(os.environ.get("LOKY_MAX_CPU_COUNT") or core_share(n_jobs))
    for trial in study.trials:
        assert trial.value == share  # joblib.effective_n_jobs(-1) inside the trial
        assert trial.user_attrs["loky_workers"] <= share  # processes cross_val_score started
        # (a variable set in this process -- another library may have -- is kept instead)
        assert trial.user_attrs["env"] == {name: os.environ.get(name) or str(share)
                                           for name in ("LOKY_MAX_CPU_COUNT", "OMP_NUM_THREADS")}


def test_an_environment_the_user_set_overrides_the_share(monkeypatch):
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    study = sweeper.optimize("_objectives:nested_share", n_trials=1, n_jobs=1, track=False)
    assert study.trials[0].value == 1.0
