"""What a SIGKILLed sweep leaves behind (issue #15 item 10): multiprocessing's sockets go to a
``sweeper-mp-<pid>`` directory, never an anonymous ``pymp-*``, and the next sweeper process
removes it once that pid is gone. Real sweeps through the CLI, each with a temp directory of
its own (``TMPDIR``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeper import _tempdirs

pytestmark = pytest.mark.timeout(120)

OBJECTIVE = "import time\n\ndef objective(trial):\n    x = trial.suggest_float('x', 0, 1)\n    time.sleep(0.2)\n    return x\n"


def config(tmp_path: Path, n_trials: int) -> Path:
    (tmp_path / "slowobj.py").write_text(OBJECTIVE)
    path = tmp_path / f"slow{n_trials}.yaml"
    path.write_text(f"objective: slowobj:objective\nsearch_space:\n  x: {{low: 0.0, high: 1.0}}\nsampler: random\n"
                    f"n_trials: {n_trials}\nn_jobs: 2\ntracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n")
    return path


@pytest.mark.slow
def test_a_killed_sweeps_sockets_are_removed_by_the_next_run(tmp_path):
    import shutil
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: socket paths have at most 107 bytes
    try:
        kill_then_run_again(tmp_path, temp)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def kill_then_run_again(tmp_path: Path, temp: Path) -> None:
    env = {**os.environ, "TMPDIR": str(temp)}
    sweep = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(config(tmp_path, 40))], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(temp.glob("sweeper-mp-*/listener-*")):
            time.sleep(0.05)  # the forkserver's and the Manager's sockets exist
        assert sweep.poll() is None, sweep.stderr.read() if sweep.stderr else ""
    finally:
        sweep.kill()
        sweep.wait(10)
    left = temp / f"sweeper-mp-{sweep.pid}"
    assert list(left.glob("listener-*")) and not list(temp.glob("pymp-*"))
    done = subprocess.run([sys.executable, "-m", "sweeper", "run", str(config(tmp_path, 2))], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert not left.exists()
    assert not list(temp.glob("sweeper-mp-*")) and not list(temp.glob("pymp-*"))  # its own is gone at its exit


def test_only_directories_of_dead_processes_are_removed(tmp_path):
    alive = tmp_path / f"sweeper-mp-{os.getpid()}"
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True, check=True).stdout)
    dead = tmp_path / f"sweeper-mp-{dead_pid}"
    other = tmp_path / "pymp-xyz"  # not ours to judge
    for path in (alive, dead, other):
        path.mkdir()
    assert _tempdirs.remove_stale(tmp_path) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()


def test_a_temp_directory_too_deep_for_a_socket_is_left_to_multiprocessing(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setattr(_tempdirs.tempfile, "gettempdir", lambda: str(deep))
    assert _tempdirs.claim_multiprocessing_temp_dir() is None and not list(deep.iterdir())


def test_an_embedded_sweeps_worker_files_go_with_its_temp_directory_after_a_kill(tmp_path):
    """``optimize`` has no sweep directory: its workers' output files go inside the process's
    ``sweeper-mp-<pid>`` directory, so a SIGKILLed run leaves nothing the next run cannot remove."""
    import shutil
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(temp)}
    script = ("import sweeper, time, sys\n"
              "def objective(trial):\n    time.sleep(float(sys.argv[1]))\n    return trial.suggest_float('x', 0, 1)\n"
              "sweeper.optimize(objective, n_trials=int(sys.argv[2]), n_jobs=2, track=False)\n")
    try:
        killed = subprocess.Popen([sys.executable, "-c", script, "5", "20"], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(temp.glob("**/worker-*.out")):
            time.sleep(0.05)  # the workers have their output files
        killed.kill()
        killed.wait(10)
        assert list(temp.glob("**/worker-*.out"))
        done = subprocess.run([sys.executable, "-c", script, "0", "2"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in temp.iterdir()) == []
    finally:
        shutil.rmtree(temp, ignore_errors=True)
