"""B25: the MLflow tracking server dies mid-sweep. Trials keep running; writes that failed are
retried at the end; what still fails is spooled to a file and reported, never lost silently.
A real ``mlflow server`` on loopback, killed (and restarted) on the same store."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import optuna
import pytest
from conftest import children_runs

import sweeper
from sweeper.ui import free_port, server_command, server_env, stop
from sweeper.api import run_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
COMPLETE = optuna.trial.TrialState.COMPLETE


def start_server(store: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        server_command("127.0.0.1", port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, env=server_env(store),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            time.sleep(0.25)
    stop(process)
    raise AssertionError("mlflow server did not start within 120s (deadlock?)")


def test_outage_then_recovery_loses_no_run(tmp_path):
    store, port = f"sqlite:///{tmp_path}/server.db", free_port("127.0.0.1")
    uri = f"http://127.0.0.1:{port}"
    server = [start_server(store, port)]
    restarted, fired = threading.Event(), threading.Event()

    def outage(study, trial):  # a callback, so the outage lands mid-sweep, whatever the speed
        opened = "mlflow_parent_run_id" in study.user_attrs  # the store was up at the start
        if opened and len(study.trials) >= 6 and not fired.is_set():
            fired.set()
            stop(server[0])

            def restart() -> None:  # back after its start-up time: the writes meanwhile fail
                server[0] = start_server(store, port)
                restarted.set()

            threading.Thread(target=restart, daemon=True).start()
        if fired.is_set() and trial.number == 23:  # the sweep ends with the store back, whatever the speed
            assert restarted.wait(150), "mlflow server did not come back"

    try:
        study = sweeper.optimize(
            "_objectives:slow", n_trials=24, n_jobs=2, tracking_uri=uri, experiment="outage",
            objective_kwargs={"sleep_s": 0.3}, callbacks=[outage], sampler="random",
        )
        assert sum(t.state == COMPLETE for t in study.trials) == 24
        assert restarted.is_set()
        from mlflow import MlflowClient

        children = children_runs(MlflowClient(uri), study.user_attrs["mlflow_parent_run_id"])
        assert {int(r.data.tags["sweeper.trial_number"]) for r in children} == set(range(24))
        assert {r.info.status for r in children} == {"FINISHED"}
    finally:
        restarted.wait(30)
        stop(server[0])


def test_permanent_outage_spools_and_reports_what_was_not_logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store, port = f"sqlite:///{tmp_path}/server.db", free_port("127.0.0.1")
    server = start_server(store, port)
    config = tmp_path / "down.yaml"
    config.write_text(
        "objective: _objectives:slow\nobjective_kwargs: {sleep_s: 0.4}\n"
        "search_space:\n  x: {low: 0.0, high: 1.0}\n"
        f"n_trials: 10\nn_jobs: 2\nsampler: random\ntracking: {{uri: 'http://127.0.0.1:{port}'}}\n"
    )
    done = threading.Event()

    def kill_once_the_sweep_is_logging() -> None:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=down"
        while not done.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.5)
        stop(server)

    killer = threading.Thread(target=kill_once_the_sweep_is_logging, daemon=True)
    killer.start()
    try:
        result = run_config(config)
    finally:
        done.set()
        killer.join(30)
        stop(server)
    assert sum(t.state == COMPLETE for t in result.study.trials) == 10  # the sweep went on
    failures = result.summary.tracking_failures
    assert failures, "an outage must be reported"
    spooled = [json.loads(line) for line in (tmp_path / ".sweeper" / "down" / "spool.jsonl").read_text().splitlines()]
    numbers = {entry["record"]["number"] for entry in spooled if "record" in entry}
    assert numbers and all(0 <= n < 10 for n in numbers)
