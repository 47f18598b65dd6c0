"""What a sweep must survive: killing, resuming, interrupting, retrying,
recycling, hostile input and secrets. Process tests drive the real CLI with a real process
group, a real journal and a real MLflow store.

Catalogue entries and where they are tested:
  A1-A3 dead workers, A5-A10 hangs and bad values, A16 crash loop .... tests/test_faults.py
  A2 segfault output kept, A4 crash after result (test_faults), A12 report flood and user-attr
  size, A13 output flood, A14 leaky worker, A17 retry, B18 coordinator SIGKILL + resume,
  B19 crash-point matrix, B20 lock + nothing to do, B21/B22 changed spec, B24 unreachable
  store (and tracking.required: false), A15 oversubscription warning, B26 Manager killed,
  C29-C31 Ctrl-C/SIGTERM, C32 no KeyboardInterrupt tracebacks,
  C33 no orphans, C35 non-main thread, C36 programmatic stop, E46 Manager key, E47 secrets .. here
  B25 MLflow server dies mid-sweep (recovers / never returns) ............. tests/test_tracking_outage.py
  B28 workers stay MLflow-free ........................................... tests/test_structure.py
  D37-D43 bad config input, E44-E45 allowlist and YAML tags .............. tests/test_config.py
  A11 sklearn errors propagate with sklearn's message (fold-by-fold CV has no error_score),
  A15 estimator n_jobs capped to 1 and BLAS threads capped ................ test_builtin_objective.py
Not applicable, by design:
  B23 Optuna SQLite locking: the study is a journal file with one writer (our lock).
  B27 MLflow async logging: sweeper writes synchronously from its own writer thread.
  C34 PDEATHSIG thread gotcha: workers use a coordinator-pid watchdog instead of PDEATHSIG.
  A12 "result too large": a result is floats only, converted in the worker; nothing else returns.
F48 soak: a short version runs by default; the 5,000-trial one is marked soak (pytest --soak).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import psutil
import pytest
from conftest import TESTS, children_runs, wait_no_leftovers

import sweeper
from sweeper.engine.study import journal_storage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


class Sweep:
    """``sweeper run`` in its own session (a real process group), its stderr read live."""

    def __init__(self, cwd: Path, config: Path, *args: str, env: dict[str, str] | None = None,
                 crash_at: tuple[str, int] | None = None) -> None:
        env = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        program = [sys.executable, "-m", "sweeper"]
        if crash_at is not None:  # the coordinator dies at that point, as if SIGKILLed
            program = [sys.executable, str(TESTS / "_crash_driver.py"), crash_at[0], str(crash_at[1])]
        self.proc = subprocess.Popen(
            [*program, "run", str(config), *args], cwd=cwd, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in: {''.join(self.lines)}"
            time.sleep(0.05)

    def finish(self, timeout_s: float = 90) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # stderr has its own reader thread: no communicate()
        self.proc.wait(timeout_s)
        self._reader.join(5)
        return self.proc.returncode, out, "".join(self.lines)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)


def config(tmp_path: Path, objective: str = "_objectives:slow", n_trials: int = 12, **extra: object) -> Path:
    lines = [
        f"objective: {objective}",
        "search_space:\n  x: {low: 0.0, high: 1.0}",
        f"n_trials: {n_trials}",
        "n_jobs: 2",
        "sampler: random",
        "seed: 0",
        f'tracking: {{uri: "sqlite:///{tmp_path}/mlflow.db"}}',
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "sweep.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def study_of(tmp_path: Path, name: str = "sweep") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=journal_storage(tmp_path / ".sweeper" / name))


def mlflow_children(tmp_path: Path, study: optuna.Study):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    return client, client.get_run(parent_id), children_runs(client, parent_id)


def gone(pids: list[int], timeout_s: float = 8.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.1)
    return alive


def test_coordinator_sigkill_leaves_no_orphans_and_resume_finishes_the_sweep(tmp_path, writer):
    path = config(tmp_path, n_trials=12)
    first = Sweep(tmp_path, path)
    first.wait_for("[3/12]")
    helpers = [p.pid for p in first.descendants()]
    assert len(helpers) >= 3  # the Manager, two workers (and the forkserver)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.finish()
    assert gone(helpers) == [], "workers or Manager outlived their coordinator"

    second = Sweep(tmp_path, path)
    code, out, err = second.finish()
    assert code == 0, err
    study = study_of(tmp_path)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state == COMPLETE for t in study.trials) == 12, (
        [(t.number, t.state.name, t.user_attrs, t.system_attrs.get("sweeper:fail_reason")) for t in study.trials],
        out, err,
    )
    interrupted = [t for t in study.trials if t.system_attrs.get("sweeper:fail_reason") == "interrupted"]
    assert all(t.state == FAIL for t in interrupted)
    requeued = {t.user_attrs.get("sweeper_resumed_from") for t in study.trials} - {None}
    assert requeued == {t.number for t in interrupted}  # left-running trials are re-run once
    _, parent, children = mlflow_children(tmp_path, study)
    assert parent.info.status == "FINISHED"
    statuses = {int(r.data.tags["sweeper.trial_number"]): r.info.status for r in children}
    assert "RUNNING" not in statuses.values()
    for trial in study.trials:  # the ledgers agree: one final run per trial, same outcome
        expected = {"COMPLETE": "FINISHED", "FAIL": "KILLED"}[trial.state.name]
        assert statuses.get(trial.number, expected) == expected
    assert sum(s == "FINISHED" for s in statuses.values()) == 12
    assert len(children) == len(statuses)


def test_second_coordinator_is_refused_and_a_finished_sweep_has_nothing_to_do(tmp_path):
    path = config(tmp_path, n_trials=6)
    first = Sweep(tmp_path, path)
    first.wait_for("[1/6]")
    second = Sweep(tmp_path, path)
    code, _, err = second.finish()
    assert code == 2 and f"already running (pid {first.proc.pid})" in err
    assert first.finish()[0] == 0
    code, out, _ = Sweep(tmp_path, path).finish()
    assert code == 0 and "nothing to do" in out


def test_resume_with_a_changed_search_space_is_refused(tmp_path):
    path = config(tmp_path, n_trials=2)
    assert Sweep(tmp_path, path).finish()[0] == 0
    path.write_text(path.read_text().replace("high: 1.0", "high: 2.0"))
    code, _, err = Sweep(tmp_path, path, "--n-trials", "4").finish()
    assert code == 2
    assert "search_space" in err and "--name NEW" in err


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_first_signal_stops_scheduling_and_lets_running_trials_finish(tmp_path, signum, exit_code):
    path = config(tmp_path, n_trials=40, objective_kwargs="{sleep_s: 1.0}")
    sweep = Sweep(tmp_path, path)
    sweep.wait_for("[2/40]")
    os.killpg(sweep.proc.pid, signum)  # the whole group, as a terminal's Ctrl-C does
    code, _, err = sweep.finish()
    assert code == exit_code, err
    assert "stopping, no new trials" in err
    assert "KeyboardInterrupt" not in err and "Traceback" not in err
    study = study_of(tmp_path)
    assert len(study.trials) < 40
    states = [(t.number, t.state.name, t.system_attrs.get("sweeper:error")) for t in study.trials]
    assert all(t.state == COMPLETE for t in study.trials), (states, err)  # finished in grace
    _, parent, children = mlflow_children(tmp_path, study)
    assert parent.info.status == "KILLED"
    assert {r.info.status for r in children} == {"FINISHED"}


def test_second_ctrl_c_kills_running_trials_at_once(tmp_path):
    path = config(tmp_path, n_trials=4, objective_kwargs="{sleep_s: 60}")
    sweep = Sweep(tmp_path, path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both workers hold a trial (read from the journal)
        try:
            if sum(t.state.name == "RUNNING" for t in study_of(tmp_path).trials) >= 2:
                break
        except (KeyError, OSError):  # the study is not in the journal yet
            pass
        time.sleep(0.2)
    helpers = [p.pid for p in sweep.descendants()]
    os.killpg(sweep.proc.pid, signal.SIGINT)
    time.sleep(0.5)
    started = time.monotonic()
    os.killpg(sweep.proc.pid, signal.SIGINT)
    code, _, err = sweep.finish()
    assert time.monotonic() - started < 15
    assert code == 130, err
    assert "KeyboardInterrupt" not in err
    study = study_of(tmp_path)
    assert {t.system_attrs.get("sweeper:fail_reason") for t in study.trials} == {"interrupted"}
    _, _, children = mlflow_children(tmp_path, study)
    assert {r.info.status for r in children} <= {"KILLED"}
    assert gone(helpers) == []


def test_unreachable_tracking_server_fails_before_anything_starts(tmp_path):
    path = config(tmp_path, n_trials=2)
    code, _, err = Sweep(tmp_path, path, "--tracking-uri", "http://user:s3cret@127.0.0.1:1").finish()
    assert code == 2
    assert "unreachable" in err and "http://user:***@127.0.0.1:1" in err
    assert "s3cret" not in err
    assert not (tmp_path / ".sweeper").exists()


def test_retry_reruns_a_crashed_trial_once_with_lineage(tmp_path, tracking_uri, experiment, client):
    marker = tmp_path / "crash-once"
    marker.touch()
    study = sweeper.optimize(
        "_objectives:sigkill_once", n_trials=4, n_jobs=2, max_retries=1, objective_kwargs={"marker": str(marker)},
        tracking_uri=tracking_uri, experiment=experiment, sampler="random",
    )
    crashed = [t for t in study.trials if t.state == FAIL]
    assert len(crashed) == 1
    retry = [t for t in study.trials if t.user_attrs.get("sweeper_retry_of") == crashed[0].number]
    assert len(retry) == 1 and retry[0].state == COMPLETE and retry[0].params == crashed[0].params
    runs = {r.data.tags["sweeper.trial_number"]: r for r in children_runs(client, study.user_attrs["mlflow_parent_run_id"])}
    assert runs[str(retry[0].number)].data.tags["sweeper.retry_of"] == str(crashed[0].number)


def test_captured_output_keeps_the_segfault_stack(tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_objectives:noisy_then_segfault", n_trials=1, n_jobs=1, tracking_uri=tracking_uri,
        experiment=experiment,
    )
    run = children_runs(client, study.user_attrs["mlflow_parent_run_id"])[0]
    text = open(client.download_artifacts(run.info.run_id, "output.txt")).read()
    assert "hello from trial 0" in text and "Segmentation fault" in text


def test_output_flood_is_truncated(tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_objectives:shouting", n_trials=1, n_jobs=1, tracking_uri=tracking_uri, experiment=experiment,
    )
    run = children_runs(client, study.user_attrs["mlflow_parent_run_id"])[0]
    text = open(client.download_artifacts(run.info.run_id, "output.txt")).read()
    assert "bytes truncated" in text and len(text) < 600 * 1024


def test_artifacts_are_copied_when_logged(tmp_path, tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_objectives:same_file_artifact", n_trials=6, n_jobs=2, objective_kwargs={"artifact_dir": str(tmp_path)},
        tracking_uri=tracking_uri, experiment=experiment,
    )
    for run in children_runs(client, study.user_attrs["mlflow_parent_run_id"]):
        [artifact] = client.list_artifacts(run.info.run_id, "notes")
        text = open(client.download_artifacts(run.info.run_id, artifact.path)).read()
        assert text == f"trial {run.data.tags['sweeper.trial_number']}"


def test_workers_are_recycled_after_n_trials_or_memory_growth():
    by_count = sweeper.optimize("_objectives:pid_value", n_trials=8, n_jobs=2, max_trials_per_worker=2, track=False)
    assert len({t.value for t in by_count.trials}) >= 4
    by_memory = sweeper.optimize(
        "_objectives:leaky", n_trials=6, n_jobs=2, max_worker_memory_mb=200,
        objective_kwargs={"megabytes": 120}, track=False,
    )
    assert len({t.value for t in by_memory.trials}) >= 4  # every leaky trial ends its worker
    assert wait_no_leftovers() == []


def test_embedding_from_a_non_main_thread_installs_no_signal_handlers():
    before = signal.getsignal(signal.SIGINT)
    result: list[optuna.Study] = []
    thread = threading.Thread(
        target=lambda: result.append(sweeper.optimize("_objectives:quadratic", n_trials=3, n_jobs=2, track=False))
    )
    thread.start()
    thread.join(60)
    assert len(result[0].trials) == 3
    assert signal.getsignal(signal.SIGINT) is before


def test_study_stop_in_a_callback_stops_gracefully(tracking_uri, experiment, client):
    def stop_after_three(study, trial):
        if len(study.trials) >= 3:
            study.stop()

    study = sweeper.optimize(
        "_objectives:sleepy", n_trials=30, n_jobs=2, callbacks=[stop_after_three],
        tracking_uri=tracking_uri, experiment=experiment,
    )
    assert 3 <= len(study.trials) <= 5
    assert all(t.state == COMPLETE for t in study.trials)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["sweeper.stopped"] == "study.stop()"
    assert parent.info.status == "FINISHED"


def test_manager_listens_locally_with_a_per_sweep_key():
    from multiprocessing.connection import Client

    from sweeper.workers.local import LocalBackend

    backends = [LocalBackend(), LocalBackend()]
    try:
        for backend in backends:
            backend.start(1)
        address = backends[0].manager_address
        assert isinstance(address, str) and os.path.exists(address)  # an AF_UNIX socket path
        with pytest.raises(Exception, match="digest|authentication|Authentication"):
            Client(address, authkey=b"wrong key")
        assert backends[0]._manager._authkey != backends[1]._manager._authkey
    finally:
        for backend in backends:
            backend.close()


def _ledgers_agree(tmp_path: Path, n_trials: int) -> None:
    study = study_of(tmp_path)
    assert sum(t.state == COMPLETE for t in study.trials) == n_trials
    assert all(t.state.is_finished() for t in study.trials)
    _, parent, children = mlflow_children(tmp_path, study)
    assert parent.info.status == "FINISHED"
    runs: dict[int, list[str]] = {}
    for run in children:
        runs.setdefault(int(run.data.tags["sweeper.trial_number"]), []).append(run.info.status)
    for trial in study.trials:
        expected = {"COMPLETE": "FINISHED", "FAIL": "KILLED"}[trial.state.name]
        assert runs.get(trial.number, [expected]) == [expected], (trial.number, runs.get(trial.number))
        if trial.state == COMPLETE:
            assert trial.number in runs  # no COMPLETE trial without its run and metrics


@pytest.mark.parametrize("point", ["after_ask", "after_dispatch", "after_result", "after_tell"])
def test_crash_point_matrix_then_resume(tmp_path, point):
    path = config(tmp_path, n_trials=6, objective_kwargs="{sleep_s: 0.2}")
    code, _, err = Sweep(tmp_path, path, crash_at=(point, 3)).finish()
    assert code == 86, err  # died at the crash point, like a SIGKILL
    code, _, err = Sweep(tmp_path, path).finish()
    assert code == 0, err
    _ledgers_agree(tmp_path, 6)


def test_killed_manager_fails_running_trials_and_exits_1_without_hanging(tmp_path):
    import json

    path = config(tmp_path, n_trials=20, objective_kwargs="{sleep_s: 0.5}")
    sweep = Sweep(tmp_path, path)
    sweep.wait_for("[1/20]")
    pids = json.loads((tmp_path / ".sweeper" / "sweep" / "processes.json").read_text())
    os.kill(pids["manager_pid"], signal.SIGKILL)
    started = time.monotonic()
    code, _, err = sweep.finish(timeout_s=30)
    assert time.monotonic() - started < 30
    assert code == 1, err
    assert "lost the channel to the workers" in err and "run the same command again to resume" in err
    assert gone([w["pid"] for w in pids["workers"].values()]) == []
    study = study_of(tmp_path)
    assert not [t for t in study.trials if not t.state.is_finished()]
    assert study.user_attrs["sweeper_outcome"]["outcome"] == "interrupted"  # resumable, with why
    assert "lost the channel" in study.user_attrs["sweeper_outcome"]["reason"]
    _, parent, children = mlflow_children(tmp_path, study)
    assert parent.info.status == "KILLED" and "RUNNING" not in {r.info.status for r in children}


def test_mlflow_writer_process_killed_mid_sweep_loses_no_trial(tmp_path):
    """The writer process dies (OOM killer, say): the sweep goes on, every trial stays in the
    study, and what the writer can no longer write is spooled and reported."""
    import json

    path = config(tmp_path, n_trials=16, objective_kwargs="{sleep_s: 0.5}", report="false")
    sweep = Sweep(tmp_path, path)
    sweep.wait_for("[1/16]")
    deadline = time.monotonic() + 60
    while "mlflow_parent_run_id" not in study_of(tmp_path).user_attrs:  # the store is open
        assert time.monotonic() < deadline and sweep.proc.poll() is None, "".join(sweep.lines)
        time.sleep(0.05)
    pids = json.loads((tmp_path / ".sweeper" / "sweep" / "processes.json").read_text())
    assert pids["recorder_pid"] not in (None, pids["coordinator"])
    os.kill(pids["recorder_pid"], signal.SIGKILL)
    code, _, err = sweep.finish(timeout_s=60)
    assert code == 0, err
    assert "MLflow writer process exited" in err
    study = study_of(tmp_path)
    assert len(study.trials) == 16 and all(t.state == COMPLETE for t in study.trials)
    spooled = (tmp_path / ".sweeper" / "sweep" / "spool.jsonl").read_text().splitlines()
    assert spooled and all(json.loads(line)["what"].startswith("record trial") for line in spooled)


def test_coordinator_never_imports_mlflow_when_the_writer_is_a_process(tmp_path):
    """The property behind tracking's low overhead: mlflow's import and SQLAlchemy work happen
    in the writer process, never on the coordinator's GIL; the runs still all land."""
    script = tmp_path / "embed.py"
    script.write_text(
        "import sys, sweeper\n"
        "if __name__ == '__main__':\n"
        f"    study = sweeper.optimize('_objectives:quadratic', n_trials=6, n_jobs=2, "
        f"tracking_uri='sqlite:///{tmp_path}/mlflow.db', experiment='e')\n"
        "    print('mlflow' in sys.modules, study.user_attrs['mlflow_parent_run_id'])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    imported, parent = out.stdout.split()
    assert imported == "False"
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(parent).info.status == "FINISHED"
    children = children_runs(client, parent)
    assert sorted(int(r.data.tags["sweeper.trial_number"]) for r in children) == list(range(6))
    assert all(r.info.status == "FINISHED" and "value" in r.data.metrics for r in children)


def test_report_flood_is_capped_and_the_trial_completes(tracking_uri, experiment, client):
    study = sweeper.optimize(
        "_objectives:reports_a_lot", n_trials=1, n_jobs=1, tracking_uri=tracking_uri, experiment=experiment,
    )
    assert study.trials[0].state == COMPLETE
    [run] = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    assert int(run.data.tags["sweeper.metrics_dropped"]) > 0


def test_oversized_user_attr_fails_the_trial_in_the_worker():
    study = sweeper.optimize("_objectives:huge_user_attr", n_trials=1, n_jobs=1, track=False)
    assert study.trials[0].state == FAIL
    assert "the limit is 65536" in study.trials[0].system_attrs["sweeper:error"]


def test_credentials_never_reach_the_resolved_config_or_params():
    from sweeper.config import config_from_dict
    from sweeper.sweep import Sweep, SweepSpec, _config_yaml

    cfg = config_from_dict({
        "name": "secret-test", "objective": "_objectives:quadratic", "n_trials": 1,
        "search_space": {"x": {"low": 0.0, "high": 1.0}},
        "tracking": {"uri": "http://user:s3cret@127.0.0.1:5000"},
    })
    assert "s3cret" not in _config_yaml(cfg)
    assert "s3cret" not in repr(Sweep(SweepSpec(cfg))._parent_params(2))


def test_retry_exceptions_when_asked(tmp_path):
    study = sweeper.optimize(
        "_objectives:raises_on_odd", n_trials=4, n_jobs=2, max_retries=1, retry_exceptions=True, track=False,
        sampler="random",
    )
    failed = [t for t in study.trials if t.state == FAIL]
    retried = {t.user_attrs.get("sweeper_retry_of") for t in study.trials} - {None}
    assert retried and retried <= {t.number for t in failed}


def test_unreachable_store_with_tracking_not_required_runs_and_spools(tmp_path):
    path = config(tmp_path, n_trials=3)
    path.write_text(path.read_text().replace(
        f'tracking: {{uri: "sqlite:///{tmp_path}/mlflow.db"}}', 'tracking: {uri: "http://127.0.0.1:1", required: false}'
    ))
    code, out, err = Sweep(tmp_path, path).finish()
    assert code == 0, err
    assert "going on without it" in err and "3 complete" in out
    spool = (tmp_path / ".sweeper" / "sweep" / "spool.jsonl").read_text().splitlines()
    assert len(spool) == 3


def test_oversubscribing_inner_n_jobs_is_capped_with_a_warning(tmp_path, caplog):
    from sweeper.config import config_from_dict
    from sweeper.objectives.builtin import builtin_kwargs

    cfg = config_from_dict({
        "name": "rf", "model": {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_jobs": -1}},
        "data": "load_iris", "search_space": {"max_depth": {"low": 2, "high": 4}}, "n_trials": 1,
    })
    kwargs = builtin_kwargs(cfg, 2, share=lambda kwargs, **_: dict(kwargs))
    assert kwargs["fixed_params"]["n_jobs"] == max(1, (os.cpu_count() or 1) // 2)
    assert "would oversubscribe" in caplog.text


def test_soak_short(tracking_uri, experiment):
    """F48, short: trivial trials with full logging; the coordinator must not grow or leak."""
    me = psutil.Process()
    sweeper.optimize("_objectives:quadratic", n_trials=20, n_jobs=2, tracking_uri=tracking_uri, experiment=experiment)
    rss, fds, threads = me.memory_info().rss, me.num_fds(), me.num_threads()
    sweeper.optimize(
        "_objectives:quadratic", n_trials=200, n_jobs=2, sampler="random",
        tracking_uri=tracking_uri, experiment=experiment,
    )
    assert me.memory_info().rss - rss < 100 * 2**20
    assert me.num_fds() <= fds + 5
    assert me.num_threads() <= threads + 1


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_long(tracking_uri, experiment):
    me = psutil.Process()
    sweeper.optimize("_objectives:quadratic", n_trials=20, n_jobs=2, tracking_uri=tracking_uri, experiment=experiment)
    rss, fds = me.memory_info().rss, me.num_fds()
    sweeper.optimize(
        "_objectives:quadratic", n_trials=5000, n_jobs=2, sampler="random",
        tracking_uri=tracking_uri, experiment=experiment,
    )
    assert me.memory_info().rss - rss < 200 * 2**20
    assert me.num_fds() <= fds + 5
