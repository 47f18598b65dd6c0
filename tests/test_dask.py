"""The Dask backend end to end, on one machine: a LocalCluster of processes (``local:N``) and a
real ``dask scheduler`` with two ``dask worker --nthreads 1`` processes started here on
127.0.0.1. Each sweep ends with the study and MLflow agreeing (one parent, one child per trial).

    sweeps          config -> Sweep with the Dask backend -> study + MLflow read back
    faults          a Dask worker SIGKILLed mid-trial; a hung trial past trial_timeout; the
                    scheduler killed (one BackendError), then the same sweep resumed
    the backend     a Dask re-run reports a crash; a worker deaf to SIGTERM is killed after the
                    grace; a killed coordinator's workers are freed; the checks at start
                    (versions, modules), the TLS warning; Dask never imported without a cluster

The backend contract suite (``test_backend_contract.py``) runs the Dask backend as well.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, TESTS, children_runs
from test_backend_contract import drive as contract_drive

import sweeper
from sweeper.engine.study import ERROR_ATTR, FAIL_REASON_ATTR
from sweeper.errors import BackendError, SweeperError

distributed = pytest.importorskip("distributed")

from sweeper.workers.dask import DaskBackend, backend_for_cluster  # noqa: E402
from sweeper.workers.dask.cluster import warn_if_exposed  # noqa: E402
from sweeper.workers.messages import (  # noqa: E402
    RunTrial,
    TrialFinished,
    WorkerLost,
    WorkerReady,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

DASK = str(Path(sys.executable).parent / "dask")


# --- objectives (imported by the Dask workers as ``test_dask``) -------------------------------------


def waits_to_be_killed(trial: Any, directory: str = "", victim: int = 2) -> float:
    """Trial ``victim`` notes its process id and waits (to be killed); the others are quick."""
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == victim:
        Path(directory, "victim").write_text(str(os.getpid()))
        time.sleep(120)
    time.sleep(0.05)
    return x


def hangs(trial: Any, victim: int = 1) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == victim:
        time.sleep(600)
    return x


def quick(trial: Any, sleep_s: float = 0.05) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    time.sleep(sleep_s)
    return x


def stops_its_process(trial: Any) -> float:
    """The whole worker process stops: it cannot act on SIGTERM (only SIGKILL ends it)."""
    os.kill(os.getpid(), signal.SIGSTOP)
    return 0.0


def prints(trial: Any) -> float:
    print("hello from a Dask worker")
    return 1.0


# --- a cluster started by hand ------------------------------------------------------------------------


class HandCluster:
    """``dask scheduler`` and ``dask worker --nthreads 1`` processes on 127.0.0.1, as a user
    starts them on their hosts (each in a session of its own, so each is ended whole)."""

    def __init__(self, directory: Path, n_workers: int = 2) -> None:
        self.directory = directory
        self.n_workers = n_workers
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""
        self._generation = 0

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        return subprocess.Popen([DASK, *args], stdout=log, stderr=log, env=self._env(), start_new_session=True,
                                cwd=self.directory)

    def start(self) -> HandCluster:
        self._generation += 1
        file = self.directory / f"scheduler-{self._generation}.json"
        self.scheduler = self._spawn(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(file)], "scheduler")
        deadline = time.monotonic() + 60
        while not file.exists() or not file.read_text().strip():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            assert self.scheduler.poll() is None, (self.directory / "scheduler.log").read_text()[-3000:]
            time.sleep(0.05)
        self.address = json.loads(file.read_text())["address"]
        self.workers = [
            self._spawn(["worker", self.address, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                         "--name", f"w{i}"], f"worker-{i}")
            for i in range(self.n_workers)
        ]
        self.wait_for_workers()
        return self

    def wait_for_workers(self) -> list[str]:
        with distributed.Client(self.address, timeout=30) as client:
            client.wait_for_workers(self.n_workers, timeout=60)
            return sorted(client.scheduler_info(n_workers=-1)["workers"])

    def worker_pids(self) -> dict[str, int]:
        with distributed.Client(self.address, timeout=30) as client:
            return client.run(os.getpid)

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(30)

    def stop(self) -> None:
        for process in [*self.workers, *([self.scheduler] if self.scheduler else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        self.workers, self.scheduler = [], None


@pytest.fixture(scope="module")
def hand_cluster(tmp_path_factory: pytest.TempPathFactory):
    cluster = HandCluster(tmp_path_factory.mktemp("dask-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path):
    """A cluster of this test's own (for the tests that kill its scheduler)."""
    cluster = HandCluster(tmp_path / "cluster")
    cluster.directory.mkdir()
    yield cluster
    cluster.stop()


# --- running a sweep on a cluster ---------------------------------------------------------------------


def run_sweep(config: dict[str, Any], directory: Path, cluster: str, **spec: Any) -> Any:
    """A YAML sweep on ``cluster`` through ``sweeper.api.run_config`` (what ``sweeper.run`` and
    the CLI call): the result with the study, the MLflow ids and the summary."""
    from sweeper.api import run_config

    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump({**config, "storage_dir": str(directory / ".sweeper")}))
    return run_config(path, [f"cluster={json.dumps(cluster)}"], **spec)


def user_config(objective: str, tracking_uri: str, experiment: str, n_trials: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": experiment, "objective": objective, "search_space": {"x": {"low": 0.0, "high": 1.0}},
        "sampler": "random", "seed": 0, "n_trials": n_trials, "n_jobs": 2,
        "tracking": {"uri": tracking_uri, "experiment": experiment}, **extra,
    }


def agree(client: Any, result: Any) -> dict[int, Any]:
    """One parent, one child per trial, each child's state the trial's: the children by number."""
    study = result.study
    parents = client.search_runs([client.get_experiment_by_name(result.experiment).experiment_id],
                                 filter_string="tags.mlflow.parentRunId IS NULL", max_results=100)
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    children = {int(r.data.tags["sweeper.trial_number"]): r for r in children_runs(client, result.parent_run_id)}
    assert sorted(children) == sorted(t.number for t in study.trials)
    for trial in study.trials:
        run = children[trial.number]
        expected = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED"}.get(trial.state.name)
        if expected is not None:
            assert run.info.status == expected
            assert run.data.metrics["value"] == pytest.approx(trial.value)
        else:
            assert run.info.status in ("FAILED", "KILLED")
        assert run.data.tags["sweeper.worker_host"] and int(run.data.tags["sweeper.worker_pid"]) != os.getpid()
    return children


# --- sweeps: the CLI, sweeper.optimize, sweeper.run ------------------------------------------------------


def test_the_digits_grid_through_the_cli_on_local_2_runs_every_point_once(tmp_path, tracking_uri, experiment, client):
    """``sweeper run configs/digits_svc_grid.yaml --cluster local:2``: every grid point once, on
    2 Dask workers, each trial a child run tagged with its worker's host and pid."""
    import socket

    cli = subprocess.run(
        [str(Path(sys.executable).parent / "sweeper"), "run", str(ROOT / "configs" / "digits_svc_grid.yaml"),
         "--cluster", "local:2", "--name", experiment, "--tracking-uri", tracking_uri, "--set", "report=false"],
        capture_output=True, text=True, timeout=170, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])},
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "24 complete, 0 failed" in cli.stdout + cli.stderr and "on 2 worker(s)" in cli.stdout + cli.stderr
    study = optuna_study(tmp_path / ".sweeper" / experiment / "study.journal", experiment)
    assert len(study.trials) == 24 and all(t.state.name == "COMPLETE" for t in study.trials)
    points = {(t.params["C"], str(t.params["gamma"]), t.params["kernel"]) for t in study.trials}
    assert len(points) == 24  # every grid point, once
    parent = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                filter_string="tags.mlflow.parentRunId IS NULL")
    assert len(parent) == 1
    children = {int(r.data.tags["sweeper.trial_number"]): r for r in children_runs(client, parent[0].info.run_id)}
    assert sorted(children) == list(range(24))
    for trial in study.trials:
        assert children[trial.number].data.metrics["value"] == pytest.approx(trial.value)
    assert len({r.data.tags["sweeper.worker_pid"] for r in children.values()}) == 2  # both Dask workers
    assert {r.data.tags["sweeper.worker_host"] for r in children.values()} == {socket.gethostname()}


def test_ctrl_c_on_local_2_lets_running_trials_finish(tmp_path, tracking_uri, experiment):
    """The terminal's Ctrl-C reaches the whole process group: the coordinator stops scheduling
    and lets running trials finish; the local cluster's workers (sessions of their own) carry on."""
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(user_config(
        "test_dask:quick", tracking_uri, experiment, 40, objective_kwargs={"sleep_s": 1.0}, report=False)))
    cli = subprocess.Popen(
        [str(Path(sys.executable).parent / "sweeper"), "run", "sweep.yaml", "--cluster", "local:2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])},
    )
    try:
        assert cli.stdout is not None
        seen = []
        for line in cli.stdout:  # bounded by the test's timeout
            seen.append(line)
            if line.startswith("trial ") and " complete " in line:
                break
        os.killpg(cli.pid, signal.SIGINT)
        rest, _ = cli.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGKILL)
    out = "".join(seen) + rest
    assert cli.returncode == 130, out[-3000:]
    assert "stopped early: interrupted by SIGINT" in out and "Traceback" not in out, out[-3000:]
    study = optuna_study(tmp_path / ".sweeper" / experiment / "study.journal", experiment)
    assert 0 < len(study.trials) < 40
    assert all(t.state.name == "COMPLETE" for t in study.trials), [t.state.name for t in study.trials]


def optuna_study(journal: Path, name: str) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(JournalFileBackend(str(journal))))


def test_optimize_on_a_scheduler_and_workers_started_by_hand(tmp_path, hand_cluster, tracking_uri, experiment,
                                                             client, monkeypatch):
    """``sweeper.optimize(..., cluster=...)``, with an objective sent by value (a closure) and an
    array that reaches each worker once, as ``objective_kwargs``."""
    import numpy as np

    monkeypatch.chdir(tmp_path)
    hand_cluster.wait_for_workers()
    offset = 0.25

    def closure(trial: Any, X: Any = None) -> float:  # by value: the workers cannot import it
        assert not X.flags.writeable  # a read-only view of what the worker got once
        return trial.suggest_float("x", 0.0, 1.0) + offset + float(X.sum())

    X = np.ones(50_000)  # 400 kB: shared, not sent with every trial
    study = sweeper.optimize(closure, n_trials=8, n_jobs=2, cluster=hand_cluster.address, tracking_uri=tracking_uri,
                             experiment=experiment, objective_kwargs={"X": X}, seed=0)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 8
    assert all(t.value == pytest.approx(t.params["x"] + offset + 50_000) for t in study.trials)
    children = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    assert len(children) == 8
    pids = {int(r.data.tags["sweeper.worker_pid"]) for r in children}
    assert pids <= set(hand_cluster.worker_pids().values()) and os.getpid() not in pids


def test_a_dask_worker_sigkilled_mid_trial_fails_only_that_trial(tmp_path, hand_cluster, tracking_uri, experiment,
                                                                  client):
    hand_cluster.wait_for_workers()
    victim = tmp_path / "victim"

    def kill_the_victim() -> None:
        deadline = time.monotonic() + 60
        while not victim.exists() or not victim.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        os.kill(int(victim.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    killer.start()
    config = user_config("test_dask:waits_to_be_killed", tracking_uri, experiment, 6,
                         objective_kwargs={"directory": str(tmp_path), "victim": 2})
    result = run_sweep(config, tmp_path, hand_cluster.address)
    killer.join(5)
    states = {t.number: t.state.name for t in result.study.trials}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "COMPLETE", 4: "COMPLETE", 5: "COMPLETE"}
    failed = result.study.trials[2]
    error = failed.system_attrs.get(ERROR_ATTR) or ""
    assert failed.system_attrs.get(FAIL_REASON_ATTR) == "crashed", failed.system_attrs
    assert "SIGKILL" in error and "Dask worker tcp://127.0.0.1:" in error, error
    children = agree(client, result)
    assert children[2].info.status == "FAILED" and children[2].data.tags["sweeper.fail_reason"] == "crashed"
    assert "tcp://127.0.0.1:" in children[2].data.tags["sweeper.error"]


def test_a_hung_trial_past_trial_timeout_is_ended_alone(tmp_path, hand_cluster, tracking_uri, experiment, client):
    hand_cluster.wait_for_workers()
    config = user_config("test_dask:hangs", tracking_uri, experiment, 5, trial_timeout=2,
                         objective_kwargs={"victim": 1})
    started = time.monotonic()
    result = run_sweep(config, tmp_path, hand_cluster.address)
    assert time.monotonic() - started < 60
    states = {t.number: t.state.name for t in result.study.trials}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE", 4: "COMPLETE"}
    assert result.study.trials[1].system_attrs.get(FAIL_REASON_ATTR) == "timeout"
    children = agree(client, result)
    assert children[1].info.status == "KILLED"


def sweep_until_the_scheduler_dies(config_json: str, directory: str, address: str, scheduler_pid: int) -> None:
    """In a process of its own, as a user's ``sweeper run``: the scheduler is killed after three
    trials; the sweep ends with one ``BackendError`` (exit status 1 here)."""
    finished = []

    def kill_after_three(study: Any, summary: Any, number: int) -> None:
        finished.append(number)
        if len(finished) == 3:
            os.kill(scheduler_pid, signal.SIGKILL)

    try:
        run_sweep(json.loads(config_json), Path(directory), address, on_trial_finished=kill_after_three)
    except BackendError as exc:
        print(f"BackendError: {exc}", flush=True)
        raise SystemExit(1) from None


def test_a_killed_scheduler_is_one_error_and_the_sweep_resumes(tmp_path, own_cluster, tracking_uri, experiment,
                                                               client):
    own_cluster.start()
    config = user_config("test_dask:quick", tracking_uri, experiment, 12, objective_kwargs={"sleep_s": 0.3})
    assert own_cluster.scheduler is not None
    code = (f"import sys; sys.path[:0] = [{str(TESTS)!r}]; import test_dask; test_dask.sweep_until_the_scheduler_dies("
            f"{json.dumps(config)!r}, {str(tmp_path)!r}, {own_cluster.address!r}, {own_cluster.scheduler.pid})")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "BackendError: lost the Dask scheduler at " + own_cluster.address in first.stdout
    assert "run the sweep again to resume" in first.stdout
    own_cluster.stop()
    own_cluster.start()  # a new scheduler (another address) and workers: the same sweep again
    result = run_sweep(config, tmp_path, own_cluster.address)
    complete = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 12
    assert {t.state.name for t in result.study.trials} <= {"COMPLETE", "FAIL"}
    agree(client, result)


# --- the backend, driven directly ---------------------------------------------------------------------


#: the contract suite's driver, with time for a cluster's workers to come up
drive = functools.partial(contract_drive, timeout_s=60.0)


@pytest.fixture
def local_backend():
    made: list[DaskBackend] = []

    def make(n_workers: int = 2, **options: Any) -> DaskBackend:
        backend = backend_for_cluster(f"local:{n_workers}", **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close(kill=True)


def test_a_dask_rerun_reports_a_crash_and_runs_no_trial_twice(local_backend):
    import asyncio

    backend = local_backend(2)
    backend.start(1)
    ready = drive(backend, lambda m: isinstance(m, WorkerReady))[-1]
    backend.send(0, RunTrial(0, "test_dask:quick", {"x": 0.5}, {}))
    assert drive(backend, lambda m: isinstance(m, TrialFinished))[-1].values == (0.5,)
    state = backend._slots[0]

    async def rerun() -> None:  # what Dask does after the worker died: the same task, again
        client = backend._client
        options = __import__("sweeper.workers.dask.remote", fromlist=["*"]).SlotOptions(
            backend._prefix, backend._expected())
        client.submit(__import__("sweeper.workers.dask.remote", fromlist=["*"]).serve_slot, 0, state.token, options,
                      {}, {}, pure=False, key=f"rerun-{state.token}")

    assert backend._loop is not None
    asyncio.run_coroutine_threadsafe(rerun(), backend._loop).result(30)
    seen = drive(backend, lambda m: isinstance(m, WorkerReady))
    lost = [m for m in seen if isinstance(m, WorkerLost)]
    assert len(lost) == 1 and "again" in lost[0].reason and "never run twice" in lost[0].reason
    assert not any(isinstance(m, TrialFinished) for m in seen)
    assert seen[-1].worker_id == 0 and seen[-1].pid != 0 and ready.worker_id == 0


def test_cancel_kills_a_worker_that_cannot_act_on_sigterm(local_backend):
    import psutil

    backend = local_backend(2)
    backend.start(1)
    ready = drive(backend, lambda m: isinstance(m, WorkerReady))[-1]
    backend.send(0, RunTrial(0, "test_dask:stops_its_process", {}, {}))
    process = psutil.Process(ready.pid)
    deadline = time.monotonic() + 30
    while process.status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cancelled = time.monotonic()
    backend.cancel(0, 0.5)
    lost = drive(backend, lambda m: isinstance(m, WorkerLost), timeout_s=10)[-1]
    assert lost.reason == "cancelled" and lost.replaced
    assert time.monotonic() - cancelled < 0.5 + 5.0
    assert not psutil.pid_exists(ready.pid) or psutil.Process(ready.pid).status() == psutil.STATUS_ZOMBIE
    assert drive(backend, lambda m: isinstance(m, WorkerReady))[-1].pid != ready.pid


def test_a_trial_s_output_comes_back_with_its_result(local_backend):
    backend = local_backend(1)
    backend.start(1)
    drive(backend, lambda m: isinstance(m, WorkerReady))
    backend.send(0, RunTrial(0, "test_dask:prints", {}, {}, capture_output=True))
    finished = drive(backend, lambda m: isinstance(m, TrialFinished))[-1]
    assert finished.state == "complete" and "hello from a Dask worker" in finished.output


def test_close_with_kill_ends_a_running_trial_on_the_cluster(hand_cluster):
    """The second Ctrl-C (``close(kill=True)``): a running trial's worker process is ended (its
    nanny starts a fresh one); the cluster is left with every worker free."""
    import psutil

    from sweeper.workers.messages import Suggest, Suggestion

    hand_cluster.wait_for_workers()
    backend = backend_for_cluster(hand_cluster.address)
    try:
        backend.start(1)
        ready = drive(backend, lambda m: isinstance(m, WorkerReady))[-1]
        backend.send(0, RunTrial(0, "test_dask:hangs", {}, {"victim": 0}))
        asked = drive(backend, lambda m: isinstance(m, Suggest))[-1]
        backend.send(0, Suggestion(asked.trial_number, asked.name, 0.5))  # now it hangs
    finally:
        backend.close(kill=True)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(ready.pid) and psutil.Process(ready.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(hand_cluster.wait_for_workers()) == 2


def test_a_killed_coordinator_frees_its_workers(tmp_path, hand_cluster):
    """Its serve tasks are released: an idle one ends, a running trial's worker process is
    ended (its nanny starts a fresh one), so the next sweep finds every worker free."""
    before = hand_cluster.worker_pids()
    code = f"""
import sys, time
sys.path[:0] = [{str(TESTS)!r}]
from sweeper.workers.dask import backend_for_cluster
from sweeper.workers.messages import RunTrial, WorkerReady
backend = backend_for_cluster({hand_cluster.address!r})
backend.start(2)
ready = 0
while ready < 2:
    ready += isinstance(backend.receive(1.0), WorkerReady)
backend.send(0, RunTrial(0, "test_dask:hangs", {{}}, {{"victim": 0}}))
print("running", flush=True)
time.sleep(600)
"""
    coordinator = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert coordinator.stdout is not None and coordinator.stdout.readline().strip() == "running"
        time.sleep(0.3)  # the trial is running
    finally:
        coordinator.kill()
        coordinator.wait(30)
    deadline = time.monotonic() + 30
    while True:
        after = hand_cluster.worker_pids()
        replaced = set(before.values()) - set(after.values())
        with distributed.Client(hand_cluster.address, timeout=30) as observer:
            busy = sum(len(tasks) for tasks in observer.processing().values())
        if len(after) == 2 and len(replaced) == 1 and busy == 0:
            break
        assert time.monotonic() < deadline, (before, after, busy)
        time.sleep(0.2)


# --- checks at start ------------------------------------------------------------------------------------


def test_a_module_the_workers_cannot_import_is_one_error_naming_it(tmp_path, hand_cluster):
    (tmp_path / "only_here_mod.py").write_text("def objective(trial):\n    return 1.0\n")
    sys.path.insert(0, str(tmp_path))  # importable here, not on the hand-started workers
    try:
        backend = backend_for_cluster(hand_cluster.address, modules=["only_here_mod"])
        with pytest.raises(SweeperError) as raised:
            backend.start(2)
    finally:
        sys.path.remove(str(tmp_path))
    text = str(raised.value)
    assert "cannot import only_here_mod" in text and "ModuleNotFoundError" in text
    assert "tcp://127.0.0.1:" in text and "installed on every worker host" in text
    hand_cluster.wait_for_workers()


def test_other_versions_on_the_cluster_are_one_error_naming_them(hand_cluster, monkeypatch):
    from sweeper.workers.dask import remote

    mine = remote.versions()
    monkeypatch.setattr(DaskBackend, "_expected", staticmethod(lambda: {**mine, "sweeper": "9.9.9"}))
    backend = backend_for_cluster(hand_cluster.address)
    with pytest.raises(SweeperError) as raised:
        backend.start(1)
    text = str(raised.value)
    assert f"sweeper 9.9.9 here, {mine['sweeper']} on the scheduler" in text
    assert f"sweeper 9.9.9 here, {mine['sweeper']} on worker tcp://127.0.0.1:" in text
    assert f"python {mine['python']}" not in text  # only what differs


def test_an_unreachable_scheduler_is_one_error(tmp_path):
    from sweeper.ui import free_port

    backend = backend_for_cluster(f"tcp://127.0.0.1:{free_port('127.0.0.1')}", connect_timeout_s=2)
    with pytest.raises(BackendError, match="cannot reach the Dask scheduler"):
        backend.start(1)


def test_a_scheduler_off_loopback_without_tls_is_warned_about_once(caplog):
    security = distributed.Security()
    with caplog.at_level(logging.WARNING, logger="sweeper"):
        warn_if_exposed("tcp://127.0.0.1:8786", security)
        warn_if_exposed("tcp://localhost:8786", security)
        warn_if_exposed("tls://10.1.2.3:8786", security)
        warn_if_exposed("tcp://10.1.2.3:8786", security)
        warn_if_exposed("tcp://10.1.2.3:8786", security)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "tcp://10.1.2.3:8786" in warnings[0] and "TLS" in warnings[0]


def test_without_a_cluster_dask_is_never_imported():
    code = """
import sys
import sweeper, sweeper.cli, sweeper.sweep
study = sweeper.optimize("_objectives:quadratic", n_trials=2, n_jobs=1, track=False)
assert len(study.trials) == 2
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=TESTS.parent / "tests")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_only_the_dask_backend_imports_dask():
    import ast

    package = Path(sweeper.__file__).parent
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(name.split(".")[0] in ("dask", "distributed") for name in names):
                importers.add(path.relative_to(package).parts[:2])
    assert importers <= {("workers", "dask")}, importers
