"""The store is checked for real before anything runs, and tracking trouble is never silent
(issue #15 item 4, #13 items 3, 8 and run metadata): an unusable store or a name MLflow would
refuse stops the sweep before any trial with one whole error; ``tracking.required: false``
warns once and spools; ``sweeper.optimize`` reports what the CLI reports; runs carry MLflow's
own metadata and the trial's user attrs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import optuna
import psutil
import pytest
from conftest import ROOT, TESTS, children_runs

import sweeper
from sweeper.errors import ConfigError, TrackingError
from sweeper.tracking.records import run_metadata
from sweeper.tracking.uri import mlflow_ui_command

CONFIG = ("objective: _objectives:quadratic\nsearch_space:\n  {name}: {{low: -1.0, high: 1.0}}\n"
          "n_trials: 4\nn_jobs: 2\nsampler: random\nreport: false\n{extra}")


def sweep(tmp_path: Path, *args: str, name: str = "x", extra: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "s.yaml").write_text(CONFIG.format(name=name, extra=extra))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "sweeper", "run", "s.yaml", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def trials_of(tmp_path: Path) -> list:
    journal = tmp_path / ".sweeper" / "s" / "study.journal"
    if not journal.exists():
        return []
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    return optuna.load_study(study_name="s", storage=storage).trials


def test_a_corrupted_store_stops_the_sweep_before_any_trial_with_one_line(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(os.urandom(8192))
    out = sweep(tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"sweeper: error: could not open MLflow store sqlite:///{tmp_path}/mlflow.db: {tmp_path}/mlflow.db is not a "
        "readable SQLite database (file is not a database); move it away, or give the sweep another store "
        "(tracking.uri, --tracking-uri or MLFLOW_TRACKING_URI)")
    assert trials_of(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, which takes no new file")
def test_a_store_in_a_directory_that_takes_no_file_stops_the_sweep_with_one_line(tmp_path):
    out = sweep(tmp_path, "--tracking-uri", "sqlite:////proc/mlflow.db")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("sweeper: error: could not open MLflow store sqlite:////proc/mlflow.db: cannot make the "
                           "store /proc/mlflow.db: /proc does not take new files (")
    assert trials_of(tmp_path) == []


def test_a_name_mlflow_would_refuse_is_a_config_error_naming_the_rule(tmp_path):
    out = sweep(tmp_path, name='"lr@1"')
    assert out.returncode == 2
    assert "search_space.lr@1: expected letters, digits and _ - . : / and spaces only, at most 250 characters" in out.stderr
    assert "(MLflow's rule for names), got 'lr@1'" in out.stderr
    assert trials_of(tmp_path) == [] and not (tmp_path / "mlflow.db").exists()


def test_an_experiment_name_over_mlflows_limit_is_a_config_error():
    with pytest.raises(ConfigError, match="at most 500 characters"):
        sweeper.optimize("_objectives:quadratic", n_trials=1, experiment="e" * 501)


def test_a_store_error_keeps_mlflows_whole_remedy(tmp_path):
    out = sweep(tmp_path, "--tracking-uri", f"file://{tmp_path}/mlruns")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert len(line) > 300 and line.endswith("set `MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception.")


def test_not_required_warns_once_spools_every_trial_and_the_next_run_writes_them(tmp_path):
    from mlflow import MlflowClient

    (tmp_path / "mlflow.db").write_bytes(os.urandom(8192))
    out = sweep(tmp_path, extra="tracking: {required: false}\n")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("sweeper: ") and "trial " not in line[:14]]
    assert len([w for w in warnings if "could not open MLflow store" in w]) == 1, out.stderr
    assert "going on without it (tracking.required: false)" in out.stderr
    assert "4 trial record(s) were not written to MLflow; they are kept in" in out.stderr
    spool = tmp_path / ".sweeper" / "s" / "spool.jsonl"
    assert sorted(json.loads(line)["record"]["number"] for line in spool.read_text().splitlines()) == [0, 1, 2, 3]
    (tmp_path / "mlflow.db").unlink()  # the store is mended
    again = sweep(tmp_path, extra="tracking: {required: false}\n")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr
    assert "repaired: wrote 4 trial record(s) kept in the spool file" in again.stdout
    assert not spool.exists()
    study_attrs = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / ".sweeper" / "s" / "study.journal")))).user_attrs
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    children = children_runs(client, study_attrs["mlflow_parent_run_id"])
    assert sorted(int(r.data.tags["sweeper.trial_number"]) for r in children) == [0, 1, 2, 3]
    assert all("sweeper.reconciled" not in r.data.tags for r in children)  # the live records, from the spool


def test_optimize_never_loses_tracking_silently(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.db").write_bytes(os.urandom(8192))
    with pytest.raises(TrackingError, match="is not a readable SQLite database"):
        sweeper.optimize("_objectives:quadratic", n_trials=2, n_jobs=1, tracking_uri=f"sqlite:///{tmp_path}/broken.db")

    def kill_the_writer(study, trial):
        if trial.number == 1:
            for child in psutil.Process().children(recursive=True):
                if "sweeper.tracking.process" in " ".join(child.cmdline()):
                    child.kill()

    with caplog.at_level(logging.WARNING, logger="sweeper"):
        study = sweeper.optimize("_objectives:slow", n_trials=6, n_jobs=1, objective_kwargs={"sleep_s": 0.05},
                                 tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", study_name="lossy",
                                 callbacks=[kill_the_writer])
    assert len(study.trials) == 6
    reported = [r.getMessage() for r in caplog.records if r.getMessage().startswith("MLflow write failed: ")]
    assert any("MLflow writer process exited" in m for m in reported), reported
    assert any("were not written to MLflow; they are kept in" in m for m in reported), reported
    assert (tmp_path / ".sweeper" / "lossy" / "spool.jsonl").exists()


def test_child_runs_carry_mlflows_run_metadata_and_the_trials_user_attrs(tmp_path, tracking_uri, experiment, client):
    study = sweeper.optimize("_objectives:define_by_run", n_trials=3, n_jobs=1, tracking_uri=tracking_uri,
                             experiment=experiment)
    children = children_runs(client, study.user_attrs["mlflow_parent_run_id"])
    parent = client.get_run(study.user_attrs["mlflow_parent_run_id"])
    expected = run_metadata()
    for run in [parent, *children]:
        assert {k: run.data.tags.get(k) for k in expected} == expected
        assert run.info.user_id == expected["mlflow.user"]
    for run in children:
        trial = study.trials[int(run.data.tags["sweeper.trial_number"])]
        assert run.data.tags["kind_seen"] == trial.user_attrs["kind_seen"]


def test_run_metadata_is_what_mlflows_fluent_api_records(tmp_path, monkeypatch):
    from mlflow.tracking.context.default_context import DefaultRunContext
    from mlflow.tracking.context.git_context import GitRunContext

    main = ROOT / "tests" / "test_tracking_checks.py"
    monkeypatch.setattr(sys, "argv", [str(main)])
    theirs = {**DefaultRunContext().tags(), **GitRunContext().tags()}
    ours = run_metadata()
    assert {k: v for k, v in ours.items() if k != "mlflow.source.git.repoURL"} == {
        k: v for k, v in theirs.items() if k != "mlflow.source.git.repoURL"}
    assert ours["mlflow.source.git.commit"] == subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("uri, command", [
    ("sqlite:////data/mlflow.db", "mlflow ui --backend-store-uri sqlite:////data/mlflow.db"),
    ("http://alice:pw@127.0.0.1:5000/", "http://127.0.0.1:5000"),
    ("https://mlflow.example/team", "https://mlflow.example/team"),
    ("postgresql://alice:pw@db/mlflow", "mlflow ui --backend-store-uri 'postgresql://alice:<password>@db/mlflow'"),
    ("file:///data/mlruns", "MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri file:///data/mlruns"),
])
def test_the_open_it_with_hint_works_for_every_kind_of_store(uri, command, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_ui_command(uri) == command
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://alice:pw@db/mlflow")
    if uri.startswith("postgresql"):
        assert mlflow_ui_command(uri) == 'mlflow ui --backend-store-uri "$MLFLOW_TRACKING_URI"'
