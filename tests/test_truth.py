"""One source of truth (issue #13, "Done when"): every view of a sweep agrees with its study after
any mix of runs, Ctrl-C, SIGKILL and resume; and one definition of best (item 5), Optuna's
``study.best_trial``, on ties too.

Real processes throughout: ``sweeper run`` in a process group of its own (Ctrl-C is SIGINT to
the group, as a terminal sends it), a real journal, a real MLflow store. Each step waits for the
event it needs (trials finished, the process gone), never a fixed time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from sweeper.engine.study import Totals, directions_maximize, journal_storage, lock_holder
from sweeper.tracking.records import run_id_of

pytestmark = pytest.mark.timeout(240)
TESTS = Path(__file__).resolve().parent
N_TRIALS = 14
NAME = "life"

OBJECTIVE = """
import time

def objective(trial):
    x = trial.suggest_float("x", 0, 1)
    y = trial.suggest_int("y", 0, 3)
    time.sleep(0.25)
    return round(x, 1) + y  # ties: one decimal
"""


# --- driving the CLI ---------------------------------------------------------------------------------


def sweeper(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def start(cwd: Path, config: Path) -> subprocess.Popen[str]:
    """``sweeper run`` as a terminal starts it: the leader of its own process group."""
    return subprocess.Popen([sys.executable, "-m", "sweeper", "run", str(config)], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_finished_trials(process: subprocess.Popen[str], count: int, seen: list[str]) -> None:
    """Read the run's stderr (one line per finished trial off a terminal) until ``count`` trials
    of this session finished."""
    assert process.stderr is not None
    finished = 0
    while finished < count:
        line = process.stderr.readline()
        assert line, f"the sweep ended first: {''.join(seen)}"
        seen.append(line)
        if re.match(r"trial \d+ (complete|pruned|fail)", line):
            finished += 1


def load(cwd: Path) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=journal_storage(cwd / ".sweeper" / NAME))


def json_verb(cwd: Path, *args: str) -> Any:
    done = sweeper(cwd, *args, "--json")
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


# --- what every view must say ------------------------------------------------------------------------


def expected_views(study: optuna.Study) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    totals = Totals.of(trials, directions_maximize(study))
    best = study.best_trial
    return {"totals": totals, "best": best, "best_run_id": run_id_of(study, best), "n_trials": len(trials)}


def check_results_agree(cwd: Path, state: str, reason: str | None = None) -> dict[str, Any]:
    """``ls --json``, ``status --json``, ``best --json`` and ``sweeper export`` against the study."""
    study = load(cwd)
    want = expected_views(study)
    totals: Totals = want["totals"]
    counts = {s: sum(t.state.name.lower() == s for t in study.trials)
              for s in ("complete", "pruned", "fail", "running", "waiting")}
    (row,) = json_verb(cwd, "ls")
    status = json_verb(cwd, "status", NAME)
    for view in (row, status):
        assert view["state"] == state, view
        if reason is not None:
            assert reason in (view["reason"] or ""), view
        assert view["n_trials"] == N_TRIALS and view["n_done"] == totals.counted
        assert view["counts"] == counts and view["n_finished"] == totals.finished
        assert (view["best_trial"], view["best_value"]) == (want["best"].number, want["best"].value)
    assert status["best"][0]["number"] == want["best"].number
    best = json_verb(cwd, "best", NAME)["best"]
    assert (best["number"], best["value"], best["params"]) == (want["best"].number, want["best"].value,
                                                               want["best"].params)
    assert best["run_id"] == want["best_run_id"]
    exported = sweeper(cwd, "export", NAME, "--csv", "-")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(int(r["number"]), r["state"]) for r in rows] == [(t.number, t.state.name) for t in study.trials]
    return {**want, "export": exported.stdout, "study": study}


def check_summary_line(stdout: str, totals: Totals) -> None:
    (line,) = [line for line in stdout.splitlines() if line.startswith(f"sweep '{NAME}': ")]
    assert line.startswith(f"sweep '{NAME}': {totals.complete} complete, {totals.fail} failed, "
                           f"{totals.pruned} pruned of {N_TRIALS} "), line


def check_parent_run(cwd: Path, want: dict[str, Any], status: str, outcome: str) -> Any:
    from mlflow import MlflowClient

    study = want["study"]
    totals: Totals = want["totals"]
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    metrics, tags = parent.data.metrics, parent.data.tags
    assert parent.info.status == status
    assert (metrics["trials_complete"], metrics["trials_failed"], metrics["trials_pruned"]) == (
        totals.complete, totals.fail, totals.pruned)
    assert metrics["best_value"] == want["best"].value
    assert tags["sweeper.best_trial"] == str(want["best"].number)
    assert tags["sweeper.best_run_id"] == want["best_run_id"]
    assert tags["sweeper.outcome"] == outcome
    if outcome == "finished":
        assert not tags.get("sweeper.stopped"), tags.get("sweeper.stopped")  # no stale "interrupted by SIGINT"
    return client, parent


# --- the lifecycle ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_view_agrees_with_the_study_through_ctrl_c_kill_and_resume(tmp_path):
    (tmp_path / "lifeobj.py").write_text(OBJECTIVE)
    config = tmp_path / f"{NAME}.yaml"
    config.write_text(
        f"objective: lifeobj:objective\nsearch_space:\n  x: {{low: 0.0, high: 1.0}}\n  y: {{low: 0, high: 3}}\n"
        f"direction: maximize\nsampler: random\nseed: 3\nn_trials: {N_TRIALS}\nn_jobs: 2\n"
        f"tracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
    )
    # 1. run, then Ctrl-C: running trials finish, nothing new starts, exit 130, the report waits
    seen: list[str] = []
    run = start(tmp_path, config)
    try:
        wait_for_finished_trials(run, 3, seen)
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, "".join(seen) + err
    want = check_results_agree(tmp_path, "interrupted", "interrupted by SIGINT")
    assert want["totals"].counted < N_TRIALS
    check_summary_line(out, want["totals"])
    client, parent = check_parent_run(tmp_path, want, "KILLED", "interrupted")
    assert "trials.csv" not in {a.path for a in client.list_artifacts(parent.info.run_id)}

    # 2. resume, then SIGKILL the coordinator mid-sweep: a dead coordinator is "interrupted", not "running"
    before = want["totals"].finished
    run = start(tmp_path, config)
    try:
        wait_for_finished_trials(run, 3, seen)
        run.kill()
        run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    deadline = time.monotonic() + 30
    while lock_holder(tmp_path / ".sweeper" / NAME) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # a process it forked lets go of the lock as it exits
    want = check_results_agree(tmp_path, "interrupted", "its coordinator stopped without finishing")
    assert want["totals"].finished >= before + 3

    # 3. resume to the end: everything agrees, the parent is FINISHED with the totals, and the
    #    report's trials.csv is the study as `sweeper export` gives it
    done = sweeper(tmp_path, "run", str(config))
    assert done.returncode == 0, done.stderr
    want = check_results_agree(tmp_path, "finished")
    assert want["totals"].counted == N_TRIALS
    assert not [t for t in want["study"].trials if not t.state.is_finished()]
    check_summary_line(done.stdout, want["totals"])
    client, parent = check_parent_run(tmp_path, want, "FINISHED", "finished")
    local = Path(client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path / "artifacts")))
    assert local.read_text() == want["export"]
    best_json = json.loads(Path(client.download_artifacts(parent.info.run_id, "best.json",
                                                          str(tmp_path / "artifacts"))).read_text())
    assert best_json["best"]["number"] == want["best"].number and best_json["best"]["run_id"] == want["best_run_id"]
    assert parent.data.tags["sweeper.report"].startswith(f"{want['n_trials']} trials")


# --- one definition of best, on ties -----------------------------------------------------------------


@pytest.mark.slow
def test_ties_finishing_out_of_order_name_the_same_best_trial_everywhere(tmp_path):
    """Every configuration scores the same; trials finish in an order their delays choose, not
    by number. Optuna's best_trial (ties to the lower number on a journal) is the best trial of
    the parent's tags, the logged model, best.json, `sweeper best`, `ls` and the closing table."""
    config = tmp_path / "ties.yaml"
    config.write_text(
        "model:\n  estimator: _truth_estimators.SlowConstantClassifier\nallow_imports: [_truth_estimators]\n"
        "data: {loader: make_classification, kwargs: {n_samples: 60, random_state: 0}}\n"
        "evaluation: {holdout: 0.3}\n"
        "search_space:\n  delay: [0.45, 0.0, 0.3, 0.15]\n  tag: [a, b]\n"
        "sampler: grid\nseed: 1\nn_jobs: 2\n"
        f"tracking: {{uri: 'sqlite:///{tmp_path}/mlflow.db'}}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = sweeper(tmp_path, "run", str(config), env=env)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="ties", storage=journal_storage(tmp_path / ".sweeper" / "ties"))
    trials = study.trials
    assert len(trials) == 8 and len({t.value for t in trials}) == 1  # all tied
    by_end = sorted(trials, key=lambda t: t.datetime_complete)
    assert [t.number for t in by_end] != sorted(t.number for t in trials), "trials finished in number order"
    best = study.best_trial
    assert best.number == 0  # Optuna on a journal: the lowest number among the tied
    best_run = run_id_of(study, best)

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["sweeper.best_trial"] == str(best.number)
    assert parent.data.tags["sweeper.best_run_id"] == best_run
    assert parent.data.tags["sweeper.best_model_run_uri"] == f"runs:/{best_run}/model"
    flagged = client.search_runs([parent.info.experiment_id], filter_string="tags.`sweeper.best_model` = 'true'")
    assert [r.info.run_id for r in flagged] == [best_run]
    best_json = json.loads(Path(client.download_artifacts(parent.info.run_id, "best.json",
                                                          str(tmp_path / "artifacts"))).read_text())
    assert best_json["best"]["number"] == best.number
    cli_best = json.loads(sweeper(tmp_path, "best", "ties", "--json").stdout)["best"]
    assert cli_best["number"] == best.number and cli_best["run_id"] == best_run
    (row,) = json.loads(sweeper(tmp_path, "ls", "--json").stdout)
    assert row["best_trial"] == best.number
    top = done.stdout.split("top ", 1)[1].splitlines()[1]
    assert top.split()[0] == f"#{best.number}", done.stdout
