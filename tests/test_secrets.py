"""No secret leaves (issue #15 item 5, #13 item 7): a tracking URI with a password, and
``MLFLOW_TRACKING_PASSWORD``, against a real ``mlflow server``. The password must appear in no
output stream, no file under the sweep directory, nothing in the store, and the argv of no
process a sweep (or ``sweeper ui``) starts; MLflow's per-run "View run" lines never reach the
terminal, and the printed way to open the store works for an HTTP store (its URL)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from conftest import ROOT, TESTS

pytestmark = pytest.mark.slow

SECRET = "TopS3cretPW"


class ArgvWatch:
    """Samples the command line of every process under ``pid`` until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.seen, self._stop = pid, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                for process in [root, *root.children(recursive=True)]:
                    try:
                        self.seen[process.pid] = process.cmdline()
                    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                        continue
            except psutil.NoSuchProcess:
                return
            self._stop.wait(0.01)

    def stop(self) -> dict[int, list[str]]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


def run_watched(args: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 180) -> tuple[int, str, str, dict]:
    process = subprocess.Popen([sys.executable, "-m", "sweeper", *args], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watch = ArgvWatch(process.pid)
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, out, err, watch.stop()


def files_holding(root: Path, secret: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_a_password_in_the_tracking_uri_reaches_no_stream_file_store_or_argv(tmp_path, mlflow_server):
    uri, server_dir = mlflow_server
    port = uri.rsplit(":", 1)[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)]),
           "MLFLOW_TRACKING_URI": f"http://alice:{SECRET}@127.0.0.1:{port}",
           "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": SECRET}
    (tmp_path / "secret.yaml").write_text(
        "objective: _mlflow_objectives:uses_mlflow_directly\nsearch_space:\n  x: {low: 0.0, high: 1.0}\n"
        "n_trials: 4\nn_jobs: 2\nsampler: random\n")
    code, out, err, argvs = run_watched(["run", "secret.yaml"], tmp_path, env)
    assert code == 0, err
    streams = out + err
    for verb in (["ls"], ["status", "secret"], ["best", "secret", "--json"], ["ui", "secret"]):
        more = run_watched(verb, tmp_path, env, timeout_s=60)
        streams += more[1] + more[2]
        argvs.update(more[3])
    assert SECRET not in streams
    assert "View run" not in streams and "View experiment" not in streams  # MLflow's per-run lines
    assert f"open it with:  http://127.0.0.1:{port}\n" in out  # the store's own UI, no credentials
    assert files_holding(tmp_path / ".sweeper", SECRET) == []
    assert files_holding(server_dir, SECRET) == []  # the store: its database and artifacts
    leaked = [argv for argv in argvs.values() if any(SECRET in part for part in argv)]
    assert leaked == []
    assert len(argvs) >= 4  # the coordinator, the writer, the Manager and workers were all seen


def test_sweeper_ui_passes_a_database_password_by_environment_not_argv(tmp_path):
    """A store URI with a password (here a PostgreSQL server that is not there): ``mlflow
    server`` gets it in its environment; no argv holds it, and the error says so masked."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"postgresql://alice:{SECRET}@127.0.0.1:9/mlflow"}
    code, out, err, argvs = run_watched(["ui", "--port", "0"], tmp_path, env, timeout_s=120)
    assert code == 2, (out, err)
    assert "the MLflow server exited at start" in err
    servers = [argv for argv in argvs.values() if "server" in argv and "mlflow" in argv]
    assert servers, "mlflow server was never started"
    assert all("--backend-store-uri" not in argv for argv in servers)
    assert not [argv for argv in argvs.values() if any(SECRET in part for part in argv)]
    assert SECRET not in out + err
