"""Progress for embedded use: one line per finished trial through the ``sweeper`` logger, visible
by default as Optuna's are, and ``show_progress_bar=True`` drawing a tqdm bar."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import TESTS

import sweeper

pytestmark = pytest.mark.timeout(120)


def run_script(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=100, env=env)


def test_a_line_per_finished_trial_is_on_stderr_by_default():
    done = run_script("""
        import sweeper
        sweeper.optimize(lambda trial: (trial.suggest_float("x", -3, 3) - 1) ** 2, n_trials=5, n_jobs=2, track=False)
    """)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " sweeper] Trial " in line]
    assert len(lines) == 5, done.stderr
    assert all(" finished with value: " in line and " and parameters: {'x': " in line for line in lines)
    assert lines[-1].endswith(".") and "Best is trial " in lines[-1]


def test_the_lines_go_where_logging_is_configured_and_a_level_silences_them(caplog):
    with caplog.at_level(logging.INFO, logger="sweeper"):
        sweeper.optimize("_objectives:counted_steps", n_trials=6, n_jobs=2, track=False, seed=3,
                         pruner="percentile")
    messages = [r.getMessage() for r in caplog.records if r.name == "sweeper" and r.getMessage().startswith("Trial ")]
    assert len(messages) == 6
    assert all(m.endswith(" pruned.") or " finished with value: " in m for m in messages)
    quiet = run_script("""
        import logging, sweeper
        logging.getLogger("sweeper").setLevel(logging.WARNING)
        sweeper.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2, n_jobs=2, track=False)
    """)
    assert quiet.returncode == 0 and " sweeper] Trial " not in quiet.stderr


def test_multi_objective_lines_name_the_metrics(caplog):
    with caplog.at_level(logging.INFO, logger="sweeper"):
        sweeper.optimize("_objectives:two_objectives", n_trials=2, n_jobs=2, track=False,
                         directions=["minimize", "minimize"], metric_names=["x", "distance"])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Trial ")]
    assert len(lines) == 2 and all("finished with values: {'x': " in line and "'distance': " in line for line in lines)


def test_show_progress_bar_draws_a_bar_with_the_best_value():
    done = run_script("""
        import sweeper
        sweeper.optimize(lambda trial: (trial.suggest_float("x", -3, 3) - 1) ** 2, n_trials=4, n_jobs=2,
                         track=False, show_progress_bar=True)
    """)
    assert done.returncode == 0, done.stderr
    frames = done.stderr.replace("\r", "\n").splitlines()
    assert any("4/4" in frame and "100%" in frame and "Best trial: " in frame for frame in frames), done.stderr
    assert sum(" sweeper] Trial " in frame for frame in frames) == 4  # the lines, written above the bar
