"""Results: the verbs ``ls/status/best/export`` (human and --json), the end-of-sweep report on
the MLflow parent run (plots, trials table, dataset, best model) and ``run --register``.

Verb tests build studies with Optuna directly (fast, no MLflow); two end-to-end tests run real
sweeps under tmp_path: a finished grid sweep (report, model, registry) and a running one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeper import cli
from sweeper import results as _results
from sweeper.report import report as _report
from sweeper.engine.study import SweepLock, journal_storage

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "configs" / "digits_svc_grid.yaml"
PNG = b"\x89PNG\r\n\x1a\n"

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --- synthetic sweeps ---------------------------------------------------------------------------


def make_sweep(root: Path, name: str, *, directions=("maximize",), values=(0.5, 0.9, 0.7),
               failed=0, pruned=0, running=0, lock_pid=None, interrupted_last=False,
               outcome=None) -> optuna.Study:
    """A sweep directory as a coordinator leaves it: journal, run ids in system attrs, lock
    (``lock_pid``: this process holds it as a live coordinator would, another pid is the file a
    dead one left), and the outcome its session wrote (``sweeper_outcome``)."""
    study = optuna.create_study(
        study_name=name, storage=journal_storage(root / name), directions=list(directions),
    )
    dist = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    for i, value in enumerate(values):
        vals = list(value) if isinstance(value, tuple) else [value]
        study.add_trial(create_trial(
            state=TrialState.COMPLETE, values=vals, params={"x": i / 10, "y": 1 - i / 10},
            distributions=dist, system_attrs={"sweeper:mlflow_run_id": f"run{i:04d}"},
            intermediate_values={0: vals[0] / 2, 1: vals[0]},
        ))
    for _ in range(failed):
        study.add_trial(create_trial(
            state=TrialState.FAIL, params={"x": 0.5, "y": 0.5}, distributions=dist,
            system_attrs={"sweeper:fail_reason": "timeout"},
        ))
    for _ in range(pruned):
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.9, "y": 0.1}, distributions=dist))
    if interrupted_last:
        study.add_trial(create_trial(
            state=TrialState.FAIL, params={"x": 0.1, "y": 0.1}, distributions=dist,
            system_attrs={"sweeper:fail_reason": "interrupted"},
        ))
    for _ in range(running):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
    study.set_user_attr("mlflow_parent_run_id", "parent0001")
    study.set_user_attr("mlflow_experiment_id", "7")
    if outcome is not None:
        study.set_user_attr("sweeper_outcome", outcome)
    if lock_pid == os.getpid():
        lock = SweepLock(root / name)
        lock.acquire()
        HELD.append(lock)
    elif lock_pid is not None:
        (root / name / "lock").write_text(str(lock_pid))
    return study


HELD: list[SweepLock] = []  # locks make_sweep took as a running coordinator would


@pytest.fixture(autouse=True)
def release_held_locks():
    yield
    while HELD:
        HELD.pop().release()


def verb(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def verb_json(capsys, *argv: str):
    code, out, err = verb(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    make_sweep(tmp_path, "alpha", failed=1, pruned=1)
    make_sweep(tmp_path, "beta", values=(0.2,), running=2, lock_pid=os.getpid())
    make_sweep(tmp_path, "gamma", values=(0.3, 0.1), running=1, lock_pid=dead_pid())
    return tmp_path


# --- ls -----------------------------------------------------------------------------------------


def test_ls_lists_every_sweep_with_state_counts_and_best(capsys, root):
    code, out, _ = verb(capsys, "ls", "--dir", str(root))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:8] == ["NAME", "STATE", "DONE", "COMPLETE", "FAILED", "PRUNED", "RUNNING", "BEST"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"alpha", "beta", "gamma"}
    assert rows["alpha"].split()[1:9] == ["finished", "5", "3", "1", "1", "0", "0.9", "#1"]
    assert f"running (pid {os.getpid()})" in rows["beta"]
    assert rows["gamma"].split()[1] == "interrupted"  # its lock names a dead process


def test_ls_json_is_one_object_per_sweep(capsys, root):
    rows = {row["name"]: row for row in verb_json(capsys, "ls", "--dir", str(root))}
    alpha, beta = rows["alpha"], rows["beta"]
    assert alpha["state"] == "finished" and alpha["pid"] is None
    assert alpha["counts"] == {"complete": 3, "pruned": 1, "fail": 1, "running": 0, "waiting": 0}
    assert alpha["n_finished"] == 5 and alpha["best_value"] == 0.9 and alpha["best_trial"] == 1
    assert beta["state"] == "running" and beta["pid"] == os.getpid() and beta["counts"]["running"] == 2
    assert rows["gamma"]["state"] == "interrupted"


def test_ls_in_an_empty_directory_says_so(capsys, tmp_path):
    code, out, _ = verb(capsys, "ls", "--dir", str(tmp_path / "none"))
    assert code == 0 and "no sweeps in" in out
    assert verb_json(capsys, "ls", "--dir", str(tmp_path)) == []


def test_ls_defaults_to_dot_sweeper_in_the_working_directory(capsys, tmp_path, monkeypatch):
    make_sweep(tmp_path / ".sweeper", "here")
    monkeypatch.chdir(tmp_path)
    assert [row["name"] for row in verb_json(capsys, "ls")] == ["here"]


def test_a_sweep_stopped_by_ctrl_c_is_interrupted_not_finished(capsys, tmp_path):
    make_sweep(tmp_path, "stopped", interrupted_last=True)
    assert verb_json(capsys, "ls", "--dir", str(tmp_path))[0]["state"] == "interrupted"


def _queued(study: optuna.Study) -> None:
    study.enqueue_trial({"x": 0.5, "y": 0.5})


@pytest.mark.parametrize("setup, state, reason", [
    (dict(outcome={"outcome": "finished", "reason": None, "n_trials": 3}), "finished", None),
    (dict(outcome={"outcome": "interrupted", "reason": "interrupted by SIGINT", "n_trials": 20},
          interrupted_last=True), "interrupted", "interrupted by SIGINT"),
    (dict(outcome={"outcome": "running", "reason": None, "n_trials": 20}),
     "interrupted", "its coordinator stopped without finishing (killed?)"),
    (dict(outcome={"outcome": "running", "reason": None, "n_trials": 20}, running=2, lock_pid="dead"),
     "interrupted", "its coordinator stopped without finishing (killed?); 2 trial(s) left running"),
    (dict(outcome={"outcome": "finished", "reason": None, "n_trials": 20}, queued=True),
     "interrupted", "1 trial(s) queued"),
    (dict(outcome={"outcome": "failed", "reason": "crash loop: 10 failures in a row", "n_trials": 20}, failed=3),
     "failed", "crash loop: 10 failures in a row"),
    (dict(values=(), outcome={"outcome": "running", "reason": None, "n_trials": 20}), "empty", None),
    (dict(outcome={"outcome": "running", "reason": None, "n_trials": 20}, lock_pid="me"), "running", None),
])
def test_every_state_a_sweep_can_be_in_with_its_reason(capsys, tmp_path, setup, state, reason):
    """One source of truth (issue #13 item 1): an interrupted sweep is never "finished"."""
    setup = dict(setup)
    queued = setup.pop("queued", False)
    lock = setup.pop("lock_pid", None)
    lock_pid = {"dead": dead_pid(), "me": os.getpid(), None: None}[lock]
    study = make_sweep(tmp_path, "s", lock_pid=lock_pid, **setup)
    if queued:
        _queued(study)
    (row,) = verb_json(capsys, "ls", "--dir", str(tmp_path))
    status = verb_json(capsys, "status", "s", "--dir", str(tmp_path))
    for view in (row, status):
        assert (view["state"], view["reason"]) == (state, reason)
        assert view["n_trials"] == setup["outcome"]["n_trials"]
        assert view["pid"] == (os.getpid() if state == "running" else None)
    _, out, _ = verb(capsys, "status", "s", "--dir", str(tmp_path))
    first = out.splitlines()[0]
    assert first.startswith(f"sweep 's': {state}") and (reason is None or f": {reason};" in first)
    assert ("run the same config again to resume it" in out) == (state == "interrupted")


def test_done_counts_what_the_progress_line_counts(capsys, tmp_path):
    """n_done is Totals.counted: trials a Ctrl-C interrupted and retries of failed ones do not
    use up n_trials; n_trials is the sweep's target, not what is done."""
    study = make_sweep(tmp_path, "s", values=(0.1, 0.2), failed=1, interrupted_last=True,
                       outcome={"outcome": "interrupted", "reason": "interrupted by SIGINT", "n_trials": 20})
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.5, "y": 0.5},
                                 distributions={"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)},
                                 user_attrs={"sweeper_retry_of": 2}))
    from sweeper.engine.study import Totals, directions_maximize

    totals = Totals.of(study.trials, directions_maximize(study))
    (row,) = verb_json(capsys, "ls", "--dir", str(tmp_path))
    assert row["n_done"] == totals.counted == 3 and row["n_finished"] == 5 and row["n_trials"] == 20
    _, out, _ = verb(capsys, "ls", "--dir", str(tmp_path))
    assert out.splitlines()[1].split()[1:3] == ["interrupted", "3/20"]
    _, out, _ = verb(capsys, "status", "s", "--dir", str(tmp_path))
    assert "trials: 3/20 done; 5 finished (2 complete, 3 failed, 0 pruned), 0 running, 0 waiting" in out


def test_status_of_a_running_sweep_lists_its_processes(capsys, tmp_path):
    make_sweep(tmp_path, "s", lock_pid=os.getpid(), outcome={"outcome": "running", "reason": None, "n_trials": 9})
    processes = {"coordinator": os.getpid(), "backend": "local", "manager_pid": 11, "recorder_pid": 12,
                 "workers": {"0": {"host": "h1", "pid": 21}, "1": {"host": "h2", "pid": 22}}}
    (tmp_path / "s" / "processes.json").write_text(json.dumps(processes))
    assert verb_json(capsys, "status", "s", "--dir", str(tmp_path))["processes"] == processes
    _, out, _ = verb(capsys, "status", "s", "--dir", str(tmp_path))
    assert f"processes: coordinator {os.getpid()}; Manager 11; MLflow writer 12; workers h1:21, h2:22" in out
    HELD.pop().release()
    assert verb_json(capsys, "status", "s", "--dir", str(tmp_path))["processes"] is None  # a stale file


# --- status -------------------------------------------------------------------------------------


def test_status_of_a_running_sweep_shows_counts_running_trials_and_best(capsys, root):
    code, out, _ = verb(capsys, "status", "beta", "--dir", str(root))
    assert code == 0
    assert f"sweep 'beta': running (coordinator pid {os.getpid()}); maximize" in out
    assert "trials: 1 done; 1 finished (1 complete, 0 failed, 0 pruned), 2 running, 0 waiting" in out
    assert "best so far: #0 value 0.2  run run0000  x=0 y=1" in out
    assert "running now:" in out and "  #1 " in out and "  #2 " in out
    assert "MLflow: experiment 7, parent run parent0001" in out


def test_status_json(capsys, root):
    status = verb_json(capsys, "status", "alpha", "--dir", str(root))
    assert status["state"] == "finished" and status["running"] == []
    assert status["counts"] == {"complete": 3, "pruned": 1, "fail": 1, "running": 0, "waiting": 0}
    assert status["failure_reasons"] == {"timeout": 1}
    assert [t["number"] for t in status["best"]] == [1]
    assert status["best"][0]["run_id"] == "run0001" and status["best"][0]["value"] == 0.9
    assert status["parent_run_id"] == "parent0001" and status["experiment_id"] == "7"
    running = verb_json(capsys, "status", "beta", "--dir", str(root))["running"]
    assert [t["number"] for t in running] == [1, 2]
    assert all(t["state"] == "running" and t["running_for_s"] >= 0 for t in running)


def test_status_human_lists_failure_reasons(capsys, root):
    _, out, _ = verb(capsys, "status", "alpha", "--dir", str(root))
    assert "failures: timeout x1" in out and "running now" not in out


def test_unknown_sweep_is_one_line_naming_the_known_ones_and_exit_2(capsys, root):
    code, out, err = verb(capsys, "status", "nope", "--dir", str(root))
    assert code == 2 and out == ""
    assert err.strip() == (f"sweeper: error: no sweep 'nope' in {root} (sweeps there: alpha, beta, gamma); "
                           "run it first, or pass --dir")


# --- best ---------------------------------------------------------------------------------------


def test_best_prints_the_studys_best_trial(capsys, root):
    study = optuna.load_study(study_name="alpha", storage=journal_storage(root / "alpha"))
    code, out, _ = verb(capsys, "best", "alpha", "--dir", str(root))
    assert code == 0
    assert f"sweep 'alpha': best trial #{study.best_trial.number} (maximize)" in out
    assert "  value:  0.9" in out and "  run id: run0001" in out and "    x: 0.1" in out
    best = verb_json(capsys, "best", "alpha", "--dir", str(root))
    assert best["best"]["number"] == study.best_trial.number
    assert best["best"]["value"] == study.best_value
    assert best["best"]["params"] == study.best_params
    assert best["directions"] == ["maximize"] and best["parent_run_id"] == "parent0001"


def test_best_of_a_multi_objective_sweep_is_its_pareto_front(capsys, tmp_path):
    study = make_sweep(tmp_path, "multi", directions=("maximize", "minimize"),
                       values=((1.0, 1.0), (2.0, 3.0), (0.5, 2.0), (3.0, 4.0)))
    front = sorted(t.number for t in study.best_trials)
    best = verb_json(capsys, "best", "multi", "--dir", str(tmp_path))
    assert [t["number"] for t in best["pareto_front"]] == front == [0, 1, 3]
    assert best["pareto_front"][1]["values"] == [2.0, 3.0] and "best" not in best
    code, out, _ = verb(capsys, "best", "multi", "--dir", str(tmp_path))
    assert code == 0
    assert "Pareto front of 3 trial(s) over values[0] (maximize), values[1] (minimize)" in out
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["#0", "#1", "#3"]


def test_best_without_a_complete_trial_exits_1(capsys, tmp_path):
    make_sweep(tmp_path, "nothing", values=(), failed=2)
    code, out, _ = verb(capsys, "best", "nothing", "--dir", str(tmp_path))
    assert code == 1 and "no trial complete yet" in out


# --- export -------------------------------------------------------------------------------------


def test_export_writes_every_trial_with_its_run_id(capsys, root, tmp_path):
    target = tmp_path / "alpha.csv"
    code, out, _ = verb(capsys, "export", "alpha", "--dir", str(root), "--csv", str(target))
    assert code == 0 and out.strip() == f"wrote 5 trials of sweep 'alpha' to {target}"
    rows = list(csv.DictReader(target.open()))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["FAIL", "PRUNED"]
    assert [r["mlflow_run_id"] for r in rows[:3]] == ["run0000", "run0001", "run0002"]
    assert rows[3]["fail_reason"] == "timeout"
    assert {"params_x", "params_y", "value", "duration_s"} <= set(rows[0])
    assert not any(key.startswith("system_attrs") for key in rows[0])


def test_export_to_stdout_and_of_a_running_sweep(capsys, root):
    code, out, _ = verb(capsys, "export", "beta", "--dir", str(root), "--csv", "-")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [r["state"] for r in rows] == ["COMPLETE", "RUNNING", "RUNNING"]


# --- end to end: a real finished sweep ----------------------------------------------------------


def sweeper_cli(*args: str, cwd: Path, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """A real 4-trial SVC grid sweep, registered as a model: the store is shared by the tests."""
    cwd = tmp_path_factory.mktemp("grid")
    uri = f"sqlite:///{cwd}/mlflow.db"
    done = sweeper_cli("run", str(GRID), "--n-trials", "4", "--n-jobs", "2", "--tracking-uri", uri,
                       "--register", "digits-svc", cwd=cwd)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="digits_svc_grid", storage=journal_storage(cwd / ".sweeper" / "digits_svc_grid"))
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    return SimpleNamespace(cwd=cwd, uri=uri, study=study, client=client, parent=parent, done=done)


def test_run_prints_the_model_the_ui_command_and_the_registration(grid_sweep):
    out = grid_sweep.done.stdout
    model_uri = grid_sweep.parent.data.tags[_report.BEST_MODEL_URI_TAG]
    assert f"best model (refit on all data): {model_uri}" in out
    assert "or:  sweeper ui digits_svc_grid" in out
    assert "registered the best model as 'digits-svc' version 1  (models:/digits-svc/1)" in out
    assert "warning" not in grid_sweep.done.stderr


def test_parent_run_holds_plots_trials_table_best_json_and_dataset(grid_sweep, tmp_path):
    client, parent = grid_sweep.client, grid_sweep.parent
    run_id = parent.info.run_id
    top = {a.path for a in client.list_artifacts(run_id)}
    assert top == {"sweep.yaml", "plots", "trials.csv", "best.json"}
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert {"optimization_history.png", "param_importances.png", "parallel_coordinate.png", "slice.png",
            "contour.png", "timeline.png"} <= plots
    local = Path(client.download_artifacts(run_id, "", str(tmp_path)))
    assert all((local / "plots" / name).read_bytes()[:8] == PNG for name in plots)
    rows = list(csv.DictReader((local / "trials.csv").open()))
    assert len(rows) == 4 and all(r["mlflow_run_id"] for r in rows)
    best = json.loads((local / "best.json").read_text())
    assert best["best"]["number"] == grid_sweep.study.best_trial.number
    assert best["model_uri"] == parent.data.tags[_report.BEST_MODEL_URI_TAG]
    (dataset_input,) = parent.inputs.dataset_inputs
    assert dataset_input.dataset.name == "load_digits" and len(dataset_input.dataset.digest) >= 8
    assert json.loads(dataset_input.dataset.profile)["features_shape"] == [1797, 64]
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert {f"importance.{p}" for p in ("C", "gamma", "kernel")} <= set(parent.data.metrics)
    note = parent.data.tags["mlflow.note.content"]
    assert f"Best trial #{grid_sweep.study.best_trial.number}" in note and "load_digits" in note
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_best_child_run_has_a_model_that_loads_and_predicts(grid_sweep):
    import mlflow
    import mlflow.sklearn
    from sklearn.datasets import load_digits

    study, client, parent = grid_sweep.study, grid_sweep.client, grid_sweep.parent
    best_run_id = parent.data.tags["sweeper.best_run_id"]
    assert best_run_id == _results.run_id_of(study, study.best_trial)
    assert parent.data.tags[_report.BEST_MODEL_RUN_URI_TAG] == f"runs:/{best_run_id}/model"
    child = client.get_run(best_run_id)
    assert child.info.status == "FINISHED" and child.data.tags["sweeper.best_model"] == "true"
    X, y = load_digits(return_X_y=True)
    mlflow.set_tracking_uri(grid_sweep.uri)
    try:
        for uri in (parent.data.tags[_report.BEST_MODEL_URI_TAG], f"runs:/{best_run_id}/model",
                    "models:/digits-svc/1"):
            model = mlflow.sklearn.load_model(uri)
            assert model.get_params()["C"] == study.best_params["C"]
            assert (model.predict(X) == y).mean() > 0.95, uri  # refit on all the data
        info = mlflow.models.get_model_info(parent.data.tags[_report.BEST_MODEL_URI_TAG])
        assert info.signature is not None and info.saved_input_example_info is not None
    finally:
        mlflow.set_tracking_uri(None)
    assert parent.data.tags[_report.REGISTERED_TAG] == "digits-svc/1"


def test_best_verb_agrees_with_the_study_and_mlflow(grid_sweep, capsys):
    study, parent = grid_sweep.study, grid_sweep.parent
    directory = str(grid_sweep.cwd / ".sweeper")
    best = verb_json(capsys, "best", "digits_svc_grid", "--dir", directory)
    assert best["best"]["number"] == study.best_trial.number
    assert best["best"]["value"] == study.best_value and best["best"]["params"] == study.best_params
    assert best["best"]["run_id"] == parent.data.tags["sweeper.best_run_id"]
    assert best["tracking_uri"] == grid_sweep.uri and best["parent_run_id"] == parent.info.run_id
    assert best["model_uri"] == parent.data.tags[_report.BEST_MODEL_URI_TAG]
    code, out, _ = verb(capsys, "best", "digits_svc_grid", "--dir", directory)
    assert code == 0 and f"best trial #{study.best_trial.number}" in out and best["model_uri"] in out


def test_ls_status_export_on_the_finished_real_sweep(grid_sweep, capsys, tmp_path):
    directory = str(grid_sweep.cwd / ".sweeper")
    (row,) = verb_json(capsys, "ls", "--dir", directory)
    assert row["state"] == "finished" and row["n_finished"] == 4 and row["best_value"] == grid_sweep.study.best_value
    status = verb_json(capsys, "status", "digits_svc_grid", "--dir", directory)
    assert status["counts"]["complete"] == 4 and status["running"] == []
    code, _, _ = verb(capsys, "export", "digits_svc_grid", "--dir", directory, "--csv", str(tmp_path / "t.csv"))
    assert code == 0 and len(list(csv.DictReader((tmp_path / "t.csv").open()))) == 4


@pytest.mark.slow
def test_resuming_rewrites_the_report_and_keeps_one_best_model(grid_sweep, capsys, tmp_path):
    """Last of the grid tests: it adds two trials to the shared sweep."""
    uri, client, parent_id = grid_sweep.uri, grid_sweep.client, grid_sweep.parent.info.run_id
    done = sweeper_cli("run", str(GRID), "--n-trials", "6", "--n-jobs", "2", "--tracking-uri", uri, cwd=grid_sweep.cwd)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="digits_svc_grid",
                              storage=journal_storage(grid_sweep.cwd / ".sweeper" / "digits_svc_grid"))
    assert len(study.trials) == 6 and study.user_attrs["mlflow_parent_run_id"] == parent_id
    parent = client.get_run(parent_id)
    best_run_id = _results.run_id_of(study, study.best_trial)
    assert parent.data.tags[_report.BEST_MODEL_RUN_URI_TAG] == f"runs:/{best_run_id}/model"
    flagged = client.search_runs([parent.info.experiment_id],
                                 filter_string="tags.`sweeper.best_model` = 'true'")
    assert [r.info.run_id for r in flagged] == [best_run_id]
    assert len(parent.inputs.dataset_inputs) == 1
    local = Path(client.download_artifacts(parent_id, "trials.csv", str(tmp_path)))
    assert len(list(csv.DictReader(local.open()))) == 6, done.stderr
    best = verb_json(capsys, "best", "digits_svc_grid", "--dir", str(grid_sweep.cwd / ".sweeper"))
    assert best["best"]["number"] == study.best_trial.number
    assert best["model_uri"] == parent.data.tags[_report.BEST_MODEL_URI_TAG]


def test_register_needs_the_builtin_objective(tmp_path):
    config = tmp_path / "user.yaml"
    (tmp_path / "userobj.py").write_text("def objective(trial):\n    return trial.suggest_float('x', 0, 1)\n")
    config.write_text("objective: userobj:objective\nsearch_space:\n  x: {low: 0.0, high: 1.0}\nn_trials: 1\n")
    done = sweeper_cli("run", str(config), "--register", "m", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "--register needs the built-in scikit-learn objective" in done.stderr
    assert not (tmp_path / ".sweeper").exists()


# --- end to end: verbs on a sweep while it runs ---------------------------------------------------


SLOW_OBJECTIVE = """
import time

def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    y = trial.suggest_float("y", 0, 1)
    time.sleep(0.8)
    return x, (1 - x) ** 2 + y
"""


@pytest.mark.slow
def test_verbs_follow_a_running_multi_objective_sweep(tmp_path, capsys):
    (tmp_path / "slowobj.py").write_text(SLOW_OBJECTIVE)
    config = tmp_path / "mo.yaml"
    config.write_text(
        "objective: slowobj:objective\nsearch_space:\n  x: {low: 0.0, high: 1.0}\n  y: {low: 0.0, high: 1.0}\n"
        f"directions: [maximize, minimize]\nsampler: random\nseed: 0\nn_trials: 8\nn_jobs: 2\n"
        f"tracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
    )
    directory = str(tmp_path / ".sweeper")
    process = subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(config)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            if (tmp_path / ".sweeper" / "mo" / "study.journal").exists():
                status = verb_json(capsys, "status", "mo", "--dir", directory)
                if status["state"] == "running" and status["counts"]["running"] and status["counts"]["complete"]:
                    break
            time.sleep(0.2)
        assert status is not None and status["state"] == "running", status
        assert status["pid"] == process.pid and status["running"][0]["params"]
        code, out, _ = verb(capsys, "status", "mo", "--dir", directory)
        assert code == 0 and "sweep 'mo': running (coordinator pid" in out and "running now:" in out
        (row,) = verb_json(capsys, "ls", "--dir", directory)
        assert row["state"] == "running" and row["pid"] == process.pid
        code, out, _ = verb(capsys, "export", "mo", "--dir", directory, "--csv", "-")
        assert code == 0 and "RUNNING" in out and "COMPLETE" in out
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    status = verb_json(capsys, "status", "mo", "--dir", directory)
    assert status["state"] == "finished" and status["counts"]["complete"] == 8 and status["pid"] is None
    study = optuna.load_study(study_name="mo", storage=journal_storage(tmp_path / ".sweeper" / "mo"))
    best = verb_json(capsys, "best", "mo", "--dir", directory)
    assert [t["number"] for t in best["pareto_front"]] == sorted(t.number for t in study.best_trials)
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent_id = study.user_attrs["mlflow_parent_run_id"]
    plots = {Path(a.path).name for a in client.list_artifacts(parent_id, "plots")}
    assert "pareto_front.png" in plots and "optimization_history.png" not in plots
    assert _report.BEST_MODEL_URI_TAG not in client.get_run(parent_id).data.tags  # user objective: no model


# --- sweeper ui: everything short of starting a server (tests/test_browser.py starts one) -------


def test_ui_points_at_the_sweeps_own_store_and_experiment(tmp_path):
    from sweeper import ui as _ui

    study = make_sweep(tmp_path, "alpha")
    study.set_user_attr(_results.TRACKING_URI_ATTR, "sqlite:////somewhere/mlflow.db")
    target = _ui.resolve_target("alpha", str(tmp_path), None)
    assert target == _ui.UiTarget("sqlite:////somewhere/mlflow.db", "7", "parent0001", "alpha")
    assert _ui.urls(target, "http://127.0.0.1:5000") == {
        "experiment": "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning",
        "parent_run": "http://127.0.0.1:5000/#/experiments/7/runs/parent0001?workflowType=machine_learning",
    }
    assert _ui.resolve_target("alpha", str(tmp_path), "sqlite:////other.db").tracking_uri == "sqlite:////other.db"
    assert _ui.server_command("127.0.0.1", 5001)[1:] == [  # the store goes by environment, never argv
        "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "5001", "--workers", "1",
    ]
    assert _ui.server_env("sqlite:////x.db")["MLFLOW_BACKEND_STORE_URI"] == "sqlite:////x.db"


def test_ui_on_a_missing_store_or_sweep_is_one_line_exit_2(capsys, tmp_path):
    code, _, err = verb(capsys, "ui", "--tracking-uri", f"sqlite:///{tmp_path}/none.db", "--port", "0")
    assert code == 2 and err.strip() == (
        f"sweeper: error: no MLflow store at {tmp_path}/none.db (from sqlite:///{tmp_path}/none.db); "
        "run a sweep first, or pass --tracking-uri"
    )
    code, _, err = verb(capsys, "ui", "nope", "--dir", str(tmp_path))
    assert code == 2 and "no sweep 'nope'" in err


def test_ui_refuses_a_busy_port_before_starting_anything(capsys, tmp_path):
    import socket

    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = verb(capsys, "ui", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port 0 for any free port" in err


def test_ui_on_a_tracking_server_just_prints_its_urls(capsys, tmp_path):
    make_sweep(tmp_path, "alpha")
    code, out, _ = verb(capsys, "ui", "alpha", "--dir", str(tmp_path), "--tracking-uri", "http://u:pw@mlflow.example:8080/")
    assert code == 0
    assert "MLflow server already: http://u:***@mlflow.example:8080" in out
    assert "experiment: http://u:***@mlflow.example:8080/#/experiments/7/runs?workflowType=machine_learning" in out


def test_the_trials_table_keeps_each_param_as_the_trial_holds_it(tmp_path):
    """A categorical of [0.1, 1, 10, 100] exported as 1.0/100.0 read as another value (issue #13)."""
    import optuna

    from sweeper import results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"C": [0.1, 1, 10, 100], "k": ["rbf", "linear"]}))
    study.optimize(lambda t: t.suggest_categorical("C", [0.1, 1, 10, 100]) + len(t.suggest_categorical("k", ["rbf", "linear"])),
                   n_trials=8)
    path = tmp_path / "t.csv"
    results.trials_frame(study).to_csv(path, index=False)
    text = path.read_text()
    assert ",1,rbf" in text or ",1,linear" in text
    assert ",1.0," not in text and ",100.0," not in text
