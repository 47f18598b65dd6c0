"""MLflow converges to the study (issue #15 items 1-2, #13 item 4): the parent run is found by
the sweep key the study recorded before the run existed, child runs by trial number, and every
run of a sweep first makes MLflow agree with the study -- missing runs made, RUNNING ones ended,
duplicates removed, the spool replayed and removed -- on both store paths."""

from __future__ import annotations

import dataclasses
import json
import time

import optuna
import pytest
from conftest import children_runs
from test_store_contract import record, start, sweep_open

import sweeper
from sweeper.tracking.frames import Close, TrialEnd
from sweeper.tracking.records import SWEEP_KEY_TAG, ChildRecord
from sweeper.tracking.writer import Writer

PATHS = ["direct", "client"]


def writer_for(uri: str, path: str, *, finished=(), spool_path=None, parent_run_id=None, key="k") -> Writer:
    spec = dataclasses.replace(sweep_open(uri, path == "direct", key, "e", tuple(finished)),
                               spool_path=spool_path, parent_run_id=parent_run_id)
    return Writer(spec, sleep=lambda s: None)


def opened(writer: Writer) -> list[str]:
    result = writer.open()
    assert result.error is None, result.error
    return list(result.repaired)


def parents(uri: str, key: str = "k") -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("e")
    return client.search_runs([experiment.experiment_id], f"tags.`{SWEEP_KEY_TAG}` = '{key}'")


def by_trial(uri: str, parent: str) -> dict[int, list[str]]:
    from mlflow import MlflowClient

    found: dict[int, list[str]] = {}
    for run in children_runs(MlflowClient(uri), parent):
        found.setdefault(int(run.data.tags["sweeper.trial_number"]), []).append(run.info.status)
    return found


def recovered(number: int, now: int, status: str = "FINISHED") -> ChildRecord:
    child = record(number, now, status)
    child.recovered = True
    return child


@pytest.mark.parametrize("path", PATHS)
def test_a_parent_made_by_a_writer_that_died_is_found_by_its_key(tmp_path, path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = writer_for(uri, path)
    opened(first)  # made the parent, then its coordinator died before recording the id
    second = writer_for(uri, path)
    repaired = opened(second)
    assert second.parent_run_id == first.parent_run_id
    assert repaired == [f"the parent run {first.parent_run_id} was left RUNNING by a coordinator that was killed"]
    assert len(parents(uri)) == 1


@pytest.mark.parametrize("path", PATHS)
def test_reconciling_makes_every_finished_trial_one_child_with_the_studys_status(tmp_path, path):
    uri, now = f"sqlite:///{tmp_path}/mlflow.db", int(time.time() * 1000)
    first = writer_for(uri, path)
    opened(first)
    for number in range(4):
        first.take(start(number, now))
    first._flush_trials()  # 0-3 RUNNING
    first.take(TrialEnd(record(0, now)))
    first._flush_trials()  # 0 finished; then the coordinator is killed: 1-3 stay RUNNING
    finished = [recovered(0, now), recovered(1, now), recovered(2, now, "FAILED"), recovered(4, now)]
    second = writer_for(uri, path, finished=finished)
    repaired = opened(second)
    assert repaired[1:] == ["made 1 missing child run(s): trials 4", "ended 2 child run(s) left RUNNING: trials 1, 2",
                            "ended 1 child run(s) of trials that never finished (KILLED): trials 3"]
    assert second.close(Close("FINISHED", {}, {})).failures == ()
    assert by_trial(uri, second.parent_run_id) == {0: ["FINISHED"], 1: ["FINISHED"], 2: ["FAILED"],
                                                   3: ["KILLED"], 4: ["FINISHED"]}
    third = writer_for(uri, path, finished=finished)  # converged: nothing more to do
    assert opened(third) == []


def test_duplicate_children_are_removed_keeping_the_one_that_agrees_with_the_study(tmp_path):
    from mlflow import MlflowClient

    uri, now = f"sqlite:///{tmp_path}/mlflow.db", int(time.time() * 1000)
    first = writer_for(uri, "direct")
    opened(first)
    first.take(start(0, now))
    first.take(TrialEnd(record(0, now)))
    first.close(Close("FINISHED", {}, {}))
    client = MlflowClient(uri)  # a second child for trial 0, as older versions could leave
    extra = client.create_run(first.experiment_id, tags={"mlflow.parentRunId": first.parent_run_id,
                                                         "sweeper.trial_number": "0"}).info.run_id
    second = writer_for(uri, "direct", finished=[recovered(0, now)])
    assert opened(second) == ["removed 1 duplicate child run(s): trials 0"]
    assert by_trial(uri, second.parent_run_id) == {0: ["FINISHED"]}
    assert client.get_run(extra).info.lifecycle_stage == "deleted"
    assert second.runs[0] == first.runs[0]


@pytest.mark.parametrize("path", PATHS)
def test_the_spool_is_replayed_whole_and_then_removed(tmp_path, path):
    from mlflow import MlflowClient

    from sweeper.tracking import spool

    uri, now = f"sqlite:///{tmp_path}/mlflow.db", int(time.time() * 1000)
    spool_path = str(tmp_path / "spool.jsonl")
    live = record(5, now)
    live.texts["output.txt"] = "printed by trial 5\n"
    assert spool.append(spool_path, "record trial 5", live) is None
    assert spool.append(spool_path, "end parent run") is None
    with open(spool_path, "a") as handle:
        handle.write('{"what": "record trial 6", "rec')  # torn by a kill mid-line
    writer = writer_for(uri, path, finished=[recovered(5, now)], spool_path=spool_path)
    repaired = opened(writer)
    assert repaired == ["made 1 missing child run(s): trials 5",
                        f"wrote 1 trial record(s) kept in the spool file {spool_path}"]
    assert not (tmp_path / "spool.jsonl").exists()
    client = MlflowClient(uri)
    run = client.get_run(writer.runs[5])
    assert "sweeper.reconciled" not in run.data.tags  # the live record, not the study's rebuild
    assert [a.path for a in client.list_artifacts(writer.runs[5])] == ["output.txt"]


def test_a_deleted_store_gets_a_new_parent_and_every_trial_its_child(tmp_path):
    now = int(time.time() * 1000)
    first = writer_for(f"sqlite:///{tmp_path}/a.db", "direct")
    opened(first)
    second = writer_for(f"sqlite:///{tmp_path}/b.db", "direct", parent_run_id=first.parent_run_id,
                        finished=[recovered(0, now), recovered(1, now, "FAILED")])
    repaired = opened(second)
    assert repaired[0].startswith(f"the parent run {first.parent_run_id} is not in the store: made parent run ")
    assert repaired[1] == "made 2 missing child run(s): trials 0, 1"
    assert by_trial(f"sqlite:///{tmp_path}/b.db", second.parent_run_id) == {0: ["FINISHED"], 1: ["FAILED"]}


def test_a_sweep_from_before_the_key_continues_the_parent_the_study_recorded(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e")
    old = client.create_run(experiment, run_name="sweep-a").info.run_id
    client.set_terminated(old, "KILLED")
    writer = writer_for(uri, "direct", parent_run_id=old)
    assert opened(writer) == []
    assert writer.parent_run_id == old
    run = client.get_run(old)
    assert run.info.status == "RUNNING" and run.data.tags[SWEEP_KEY_TAG] == "k"


def test_optimize_with_load_if_exists_continues_the_same_parent_run(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri, storage = f"sqlite:///{tmp_path}/mlflow.db", f"sqlite:///{tmp_path}/optuna.db"
    seen = []
    for n_trials in (2, 4, 6):  # each call runs at least two more trials (n_trials: a total or more)
        study = sweeper.optimize("_objectives:quadratic", n_trials=n_trials, n_jobs=1, study_name="resume_me",
                                 storage=storage, load_if_exists=True, tracking_uri=uri, experiment="e")
        seen.append(study.user_attrs["mlflow_parent_run_id"])
    assert len(set(seen)) == 1 and len(study.trials) >= 6
    client = MlflowClient(uri)
    assert len(client.search_runs([client.get_experiment_by_name("e").experiment_id],
                                  "tags.`sweeper.kind` = 'sweep'")) == 1
    assert by_trial(uri, seen[0]) == {t.number: ["FINISHED"] for t in study.trials}
    parent = client.get_run(seen[0])
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == len(study.trials)


def test_run_on_a_complete_sweep_repairs_mlflow_and_says_what_it_did(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from sweeper.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("objective: _objectives:quadratic\nsearch_space:\n  x: {low: -1.0, high: 1.0}\n"
                                     "n_trials: 4\nn_jobs: 1\nsampler: random\nreport: false\n")
    assert main(["run", "s.yaml"]) == 0
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / ".sweeper" / "s" / "study.journal"))))
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = {int(r.data.tags["sweeper.trial_number"]): r.info.run_id for r in children_runs(client, parent)}
    client.update_run(parent, status="RUNNING")  # as a kill just after the last tell leaves them
    client.update_run(runs[3], status="RUNNING")
    client.delete_run(runs[2])  # and as a writer killed before writing one
    capsys.readouterr()
    assert main(["run", "s.yaml"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do" in out
    assert f"repaired: the parent run {parent} was left RUNNING by a coordinator that was killed" in out
    assert "repaired: made 1 missing child run(s): trials 2" in out
    assert "repaired: ended 1 child run(s) left RUNNING: trials 3" in out
    assert client.get_run(parent).info.status == "FINISHED"
    assert by_trial(f"sqlite:///{tmp_path}/mlflow.db", parent) == {n: ["FINISHED"] for n in range(4)}
    capsys.readouterr()
    assert main(["run", "s.yaml"]) == 0
    assert "repaired" not in capsys.readouterr().out  # converged


def test_a_deleted_store_under_an_existing_sweep_burns_no_trial(tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from sweeper.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("objective: _objectives:quadratic\nsearch_space:\n  x: {low: -1.0, high: 1.0}\n"
                                     "n_trials: 3\nn_jobs: 1\nsampler: random\nreport: false\n")
    assert main(["run", "s.yaml"]) == 0
    for leftover in tmp_path.glob("mlflow.db*"):
        leftover.unlink()
    capsys.readouterr()
    assert main(["run", "s.yaml", "--n-trials", "5"]) == 0
    err = capsys.readouterr().err
    assert "not found" not in err and "MLflow write failed" not in err, err
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / ".sweeper" / "s" / "study.journal"))))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert by_trial(f"sqlite:///{tmp_path}/mlflow.db", parent) == {n: ["FINISHED"] for n in range(5)}
    ids = json.loads(json.dumps(study.user_attrs["mlflow_run_ids"]))
    from sweeper.tracking.records import run_id_of

    for trial in study.trials:  # the study names each trial's run in the new store
        assert client.get_run(run_id_of(study, trial)).data.tags["sweeper.trial_number"] == str(trial.number), ids
