"""Nothing a trial starts outlives its worker: joblib/loky pools (``cross_val_score(n_jobs=2)``),
``subprocess.Popen(["sleep", "600"])`` and multiprocessing children end when the worker is
shut down at the end of a sweep, recycled, cancelled for a timeout or replaced after a crash,
and within seconds of a SIGKILL of the coordinator. Every process is found afterwards by an
environment marker it inherited (``/proc/<pid>/environ``), whoever its parent is by then."""

from __future__ import annotations

import os
import signal
import time
import uuid

import psutil
import pytest
from _objectives import MARKER_VARIABLE
from test_reliability import Sweep, config

import sweeper

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
#: How long after the end (or the coordinator's SIGKILL) every marked process must be gone.
GONE_WITHIN_S = 5.0


def marked(token: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``MARKER_VARIABLE=token``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(MARKER_VARIABLE) == token:
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_gone(token: str, timeout_s: float = GONE_WITHIN_S) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = marked(token)
        if not alive or time.monotonic() > deadline:
            return [" ".join(p.cmdline()[:4]) for p in alive if p.is_running()]
        time.sleep(0.1)


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("ending", "options", "then"),
    [
        ("the sweep ends", {}, "return"),
        ("the worker is recycled", {"max_trials_per_worker": 1}, "return"),
        ("the trial times out", {"trial_timeout": 3.0}, "hang"),
        ("the worker crashes", {}, "die"),
    ],
)
@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_what_a_trial_starts_ends_with_its_worker(ending, options, then, start_method):
    """Recycled after one trial (max_trials_per_worker=1), both workers leave after their first."""
    token = f"t-{uuid.uuid4().hex[:12]}"
    study = sweeper.optimize(
        "_objectives:starts_processes", n_trials=2, n_jobs=2, track=False, start_method=start_method,
        objective_kwargs={"marker": token, "pool": "joblib", "then": then}, **options,
    )
    assert len(study.trials) == 2
    assert {t.state.name for t in study.trials} == ({"COMPLETE"} if then == "return" else {"FAIL"})
    assert wait_gone(token) == [], f"left running after {ending}"


def test_a_sweeper_run_leaves_nothing_at_its_end_nor_after_its_coordinator_is_killed(tmp_path):
    token = f"cli-{uuid.uuid4().hex[:12]}"
    env = {MARKER_VARIABLE: token}
    kwargs = f"{{marker: {token}, pool: sklearn}}"
    done = Sweep(tmp_path, config(tmp_path, "_objectives:starts_processes", n_trials=3, objective_kwargs=kwargs),
                 env=env)
    code, _, err = done.finish()
    assert code == 0, err
    assert wait_gone(token) == [], "left running after a normal end"

    (tmp_path / "sweep.yaml").unlink()
    killed = Sweep(tmp_path, config(tmp_path, "_objectives:starts_processes", n_trials=6, name="killed",
                                    objective_kwargs=f"{{marker: {token}, pool: sklearn, then: hang}}"), env=env)
    # both workers are inside a trial with their loky pools up, then the coordinator dies
    wait_for(lambda: sum("popen_loky_posix" in " ".join(p.cmdline()) for p in marked(token)) >= 2)
    os.kill(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(10)
    assert wait_gone(token) == [], "left running 5 s after the coordinator's SIGKILL"
