"""Datasets reach workers through shared memory, once, and the segments are always released."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from test_reliability import Sweep

import sweeper
from sweeper.workers.shared import segments_in_use

pytestmark = pytest.mark.timeout(120)


def test_large_kwargs_arrays_are_shared_read_only_and_released():
    X = np.arange(400_000, dtype=np.float64).reshape(100_000, 4)  # 3.2 MB
    y = np.ones(400_000)
    before = segments_in_use()
    study = sweeper.optimize(
        "_objectives:uses_shared_array", n_trials=4, n_jobs=2, objective_kwargs={"X": X, "y": y}, track=False,
    )
    assert [t.value for t in study.trials] == [float(X[:, 0].sum() + y.sum())] * 4
    assert study.trials[0].user_attrs["shape"] == [100_000, 4]
    assert segments_in_use() == before


def test_segments_are_released_after_a_crashed_worker(tmp_path):
    marker = tmp_path / "crash"
    marker.touch()
    before = segments_in_use()
    study = sweeper.optimize(
        "_objectives:sigkill_once", n_trials=4, n_jobs=2, track=False,
        objective_kwargs={"marker": str(marker), "unused": np.zeros(300_000)},
    )
    assert sum(t.state.name == "FAIL" for t in study.trials) == 1
    assert segments_in_use() == before


def test_builtin_dataset_segments_vanish_even_when_the_coordinator_is_killed(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "model: sklearn.svm.SVC\ndata: load_digits\nevaluation: {cv: 3}\n"
        "search_space:\n  C: {low: 0.1, high: 10.0, log: true}\n"
        f"n_trials: 200\nn_jobs: 2\ntracking: {{uri: 'sqlite:///{tmp_path}/m.db'}}\n"
    )
    sweep = Sweep(tmp_path, config)
    sweep.wait_for("[2/200]")
    mine = [s for s in segments_in_use() if s.startswith(f"sweeper_{sweep.proc.pid}_")]
    assert len(mine) == 2  # X and y, once, whatever the number of workers and trials
    os.kill(sweep.proc.pid, signal.SIGKILL)
    sweep.finish()
    deadline = time.monotonic() + 15
    while any(s in segments_in_use() for s in mine) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(s in segments_in_use() for s in mine), "leaked in /dev/shm"


def test_share_puts_data_in_shared_memory_once_and_workers_reference_it():
    X = sweeper.share(np.arange(400_000, dtype=np.float64).reshape(100_000, 4))
    y = sweeper.share(np.ones(400_000))
    assert not X.flags.writeable
    mine = [s for s in segments_in_use() if s.startswith(f"sweeper_{os.getpid()}_")]
    study = sweeper.optimize(
        "_objectives:uses_shared_array", n_trials=4, n_jobs=2, objective_kwargs={"X": X, "y": y},
        track=False, start_method="spawn",
    )
    assert {t.value for t in study.trials} == {float(X[:, 0].sum() + y.sum())}
    assert [s for s in segments_in_use() if s.startswith(f"sweeper_{os.getpid()}_")] == mine  # no copies


def test_share_an_empty_array_filled_in_place():
    X = sweeper.share(shape=(100_000, 4), dtype=np.float64)
    assert X.flags.writeable
    X[:] = 1.0
    y = sweeper.share(np.zeros(400_000))
    study = sweeper.optimize(
        "_objectives:uses_shared_array", n_trials=2, n_jobs=2, objective_kwargs={"X": X, "y": y}, track=False,
    )
    assert [t.value for t in study.trials] == [100_000.0, 100_000.0]
    with pytest.raises(TypeError, match="shape="):
        sweeper.share()
