"""The kill campaign (issue #15, "Done when"): the coordinator -- a real ``sweeper run`` -- dies
at many points, including just after the MLflow writer starts, just after the store opened and
just after the last ``tell``, and the writer is SIGKILLed mid-sweep; after one rerun each there
is exactly one parent run, exactly one child run per trial, every status equal to the study's,
nothing RUNNING, and no spool left.

The coordinator dies by ``os._exit`` at a point a driver script sets by wrapping our own
functions (``_crash_driver.die_at``): no finally, no atexit, nothing flushed, as a SIGKILL
there. Production code reads nothing for this.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import ROOT, TESTS, children_runs

from sweeper.tracking.records import mlflow_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
N_TRIALS = 6
CRASH_EXIT = 86
DRIVER = """
import sys
from _crash_driver import die_at
from sweeper.engine import coordinator
from sweeper.tracking import frames, process, recorder

point, n = sys.argv[1], int(sys.argv[2])
if point == "after_writer_start":  # the writer has its Open frame; the parent may not exist yet
    die_at(process.WriterProcess, "start", n, before=False)
elif point == "after_store_opened":  # the parent exists; the study has only its key
    die_at(recorder.MlflowRecorder, "wait_ready", n, before=False)
elif point == "after_tell":  # told, not yet recorded
    die_at(coordinator.Coordinator, "_count", n, before=True)
elif point == "after_close_sent":  # the writer has Close; the study's outcome is not written
    die_at(process.WriterProcess, "send", n, before=False, when=lambda self, frame: isinstance(frame, frames.Close))
else:
    raise SystemExit(f"unknown point {point!r}")
from sweeper.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


def env(path: str) -> dict[str, str]:
    variables = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    if path == "client":
        variables["SWEEPER_DIRECT_SQLITE"] = "0"
    else:
        variables.pop("SWEEPER_DIRECT_SQLITE", None)
    return variables


def write_config(tmp_path: Path, sleep_s: float = 0.05) -> None:
    (tmp_path / "s.yaml").write_text(
        f"objective: _objectives:slow\nobjective_kwargs: {{sleep_s: {sleep_s}}}\n"
        f"search_space:\n  x: {{low: 0.0, high: 1.0}}\nn_trials: {N_TRIALS}\nn_jobs: 2\nsampler: random\nreport: false\n")


def study_of(tmp_path: Path) -> optuna.Study:
    journal = tmp_path / ".sweeper" / "s" / "study.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="s", storage=storage)


def assert_converged(tmp_path: Path) -> None:
    """One parent, one child per trial with the study's outcome, nothing RUNNING, no spool."""
    from mlflow import MlflowClient

    study = study_of(tmp_path)
    assert len(study.trials) >= N_TRIALS and all(t.state.is_finished() for t in study.trials)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("s")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweeper.kind") == "sweep"]
    assert [p.info.run_id for p in parents] == [study.user_attrs["mlflow_parent_run_id"]]
    assert parents[0].info.status == "FINISHED"
    children = children_runs(client, parents[0].info.run_id)
    numbers = sorted(int(r.data.tags["sweeper.trial_number"]) for r in children)
    assert numbers == sorted(t.number for t in study.trials)  # exactly one child per trial
    assert len(runs) == 1 + len(children)  # and nothing else in the experiment
    statuses = {int(r.data.tags["sweeper.trial_number"]): r.info.status for r in children}
    expected = {t.number: mlflow_status(t.state.name.lower(), t.system_attrs.get("sweeper:fail_reason"))
                for t in study.trials}
    assert statuses == expected
    assert parents[0].data.metrics["trials_complete"] == sum(t.state.name == "COMPLETE" for t in study.trials)
    spool = tmp_path / ".sweeper" / "s" / "spool.jsonl"
    assert not spool.exists() or spool.read_text() == ""


def rerun(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweeper", "run", "s.yaml"], cwd=tmp_path, env=env(path),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("point, n, path", [
    ("after_writer_start", 1, "direct"),
    ("after_writer_start", 1, "client"),
    ("after_store_opened", 1, "direct"),
    ("after_store_opened", 1, "client"),
    ("after_tell", 3, "direct"),
    ("after_tell", 3, "client"),
    ("after_tell", N_TRIALS, "direct"),  # just after the last tell
    ("after_tell", N_TRIALS, "client"),
    ("after_close_sent", 1, "direct"),
])
def test_a_coordinator_killed_here_converges_after_one_rerun(tmp_path, point, n, path):
    write_config(tmp_path)
    killed = subprocess.run([sys.executable, "-c", DRIVER, point, str(n), "run", "s.yaml"], cwd=tmp_path,
                            env=env(path), capture_output=True, text=True, timeout=120)
    assert killed.returncode == CRASH_EXIT, killed.stderr
    again = rerun(tmp_path, path)
    assert again.returncode == 0, again.stderr
    assert_converged(tmp_path)


def test_a_writer_killed_mid_sweep_converges_after_one_rerun(tmp_path):
    write_config(tmp_path, sleep_s=0.3)
    sweep = subprocess.Popen([sys.executable, "-m", "sweeper", "run", "s.yaml"], cwd=tmp_path, env=env("direct"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes = tmp_path / ".sweeper" / "s" / "processes.json"
    deadline = time.monotonic() + 60
    while True:  # the writer is up and a trial has finished
        assert time.monotonic() < deadline and sweep.poll() is None, sweep.communicate()
        try:
            writer_pid = json.loads(processes.read_text()).get("recorder_pid")
            done = sum(t.state.is_finished() for t in study_of(tmp_path).trials)
        except (OSError, ValueError, KeyError):
            writer_pid, done = None, 0
        if writer_pid and done >= 1:
            break
        time.sleep(0.05)
    os.kill(writer_pid, signal.SIGKILL)
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 0, err
    assert "MLflow writer process exited" in err and "trial record(s) were not written" in err
    again = rerun(tmp_path, "direct")
    assert again.returncode == 0, again.stderr
    assert "repaired: wrote" in again.stdout and "kept in the spool file" in again.stdout
    assert_converged(tmp_path)


def test_a_report_a_kill_skipped_is_written_by_the_rerun_of_the_complete_sweep(tmp_path):
    from mlflow import MlflowClient

    write_config(tmp_path)
    config = tmp_path / "s.yaml"
    config.write_text(config.read_text().replace("report: false\n", ""))  # the report is on
    killed = subprocess.run([sys.executable, "-c", DRIVER, "after_tell", str(N_TRIALS), "run", "s.yaml"],
                            cwd=tmp_path, env=env("direct"), capture_output=True, text=True, timeout=120)
    assert killed.returncode == CRASH_EXIT, killed.stderr
    again = rerun(tmp_path, "direct")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout and "repaired: wrote the end-of-sweep report on the parent run" in again.stdout
    assert_converged(tmp_path)
    parent = study_of(tmp_path).user_attrs["mlflow_parent_run_id"]
    assert "sweeper.report" in MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(parent).data.tags
    third = rerun(tmp_path, "direct")
    assert third.returncode == 0 and "repaired" not in third.stdout  # nothing left to repair
