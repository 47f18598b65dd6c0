"""The direct SQLite writer (``sweeper.tracking.sqlite_store``): a sweep it writes is the sweep MLflow's
client writes, read back through MLflow; it never imports mlflow; and whatever it does not know
goes to MLflow's client with nothing lost or doubled."""

from __future__ import annotations

from pathlib import Path

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, children_runs

from sweeper.tracking import template as _store_template
from sweeper.tracking.client_store import ClientStore
from sweeper.tracking.sqlite_store import SqliteStore
from sweeper.tracking.records import ChildRecord
from sweeper.tracking.writer import Tracker


def write_sweep(uri: str, experiment: str, artifact_file: str, now: int) -> Tracker:
    """A small sweep as the coordinator sends it: parent params, tags and sweep.yaml, trials
    that start and end (one with output and a file artifact, one failed, one still running at
    its first progress), progress updates and a tagged end."""
    tracker = Tracker(uri, experiment, "sweep-a")
    tracker.start({"n_trials": 4, "sampler": "TPESampler", "space": {"x": [0, 1]}},
                  {"sweeper.version": "0.1.0", "sweeper.git_commit": "abc"}, {"sweep.yaml": "name: a\n"})
    tracker.wait_ready()
    for number in range(4):
        tracker.child_started(number, now + number, {"sweeper.trial_number": str(number), "sweeper.state": "running",
                                                     "sweeper.worker_pid": "42"})
        if number == 1:  # written RUNNING before its end arrives
            deadline = time.monotonic() + 30
            while number not in tracker.run_ids and time.monotonic() < deadline:
                time.sleep(0.01)
        status = "FAILED" if number == 2 else "FINISHED"
        record = ChildRecord(number, status, now + number, now + 100 + number,
                             params={"x": number / 4, "kernel": "rbf", "C": 10 ** number},
                             metrics=[("intermediate_value", 0.1 * number, 0, now + 50), ("intermediate_value", 0.2, 1, now + 60),
                                      ("fold_score", float("nan"), 0, now + 70), ("cv_mean", float("inf"), 0, now + 70)]
                             + ([] if status == "FAILED" else [("value", number * 1.5, 0, now + 100)]),
                             tags={"sweeper.state": "fail" if status == "FAILED" else "complete", "sweeper.duration_s": "0.1"})
        if number == 2:
            record.texts["traceback.txt"] = "Traceback: boom\n"
        if number == 3:
            record.texts["output.txt"] = "hello from the trial\n"
            record.files.append(("notes.txt", Path(artifact_file).read_bytes(), "extra"))
        tracker.child_finished(record)
        tracker.parent_progress({"best_value": number * 1.5, "trials_complete": float(number)},
                                {"sweeper.best_trial": str(number)}, number + 1)
    tracker.close("FINISHED", {"sweeper.trials_complete": "3"}, {3: {"sweeper.pareto": "true"}})
    return tracker


def snapshot_sweep(client, tracker: Tracker, root: str) -> dict:
    """All MLflow reads back of the sweep, run ids replaced by trial numbers, ``root`` by <dir>."""
    from mlflow.artifacts import download_artifacts

    ids = {tracker.parent_run_id: "parent", **{run_id: f"trial-{n}" for n, run_id in tracker.run_ids.items()}}

    def clean(value):
        text = json.dumps(value, sort_keys=True, default=str).replace(root, "<dir>")
        for run_id, name in ids.items():
            text = text.replace(run_id, name)
        return json.loads(text)

    def run_view(run_id: str) -> dict:
        run = client.get_run(run_id)
        info = run.info
        history = {key: sorted((m.step, m.timestamp if run_id != tracker.parent_run_id else 0,  # the writer's clock
                                "nan" if math.isnan(m.value) else m.value)
                               for m in client.get_metric_history(run_id, key)) for key in run.data.metrics}
        files = {}
        for item in client.list_artifacts(run_id):
            paths = [item] if not item.is_dir else client.list_artifacts(run_id, item.path)
            for entry in paths:
                local = download_artifacts(run_id=run_id, artifact_path=entry.path, tracking_uri=tracker.uri)
                with open(local, encoding="utf-8") as handle:
                    files[entry.path] = handle.read()
        tags = dict(run.data.tags)
        return {
            "info": (info.status, info.lifecycle_stage, info.user_id, info.run_name,
                     info.end_time is not None, info.artifact_uri.replace(run_id, "<id>")),
            "params": run.data.params, "tags": tags,
            "metrics": {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items() if k != "best_value"},
            "history": history, "files": files,
        }

    experiment = client.get_experiment(tracker.experiment_id)
    children = children_runs(client, tracker.parent_run_id)
    return clean({
        "experiment": (experiment.lifecycle_stage, experiment.tags,
                       experiment.artifact_location.replace(experiment.name, "<name>")),
        "parent": run_view(tracker.parent_run_id),
        "children": {ids[r.info.run_id]: run_view(r.info.run_id) for r in children},
        "found": sorted(ids[r.info.run_id] for r in client.search_runs(
            [tracker.experiment_id], "metrics.value > 1 and params.kernel = 'rbf'")),
    })


@pytest.fixture
def template():
    return _store_template.template()


def test_a_sweep_written_directly_reads_back_as_the_one_mlflow_writes(tmp_path, monkeypatch, template):
    from mlflow import MlflowClient

    artifact = tmp_path / "notes.txt"
    artifact.write_text("a file the objective logged\n")
    views, now = {}, int(time.time() * 1000)
    for way in ("mlflow", "direct"):
        monkeypatch.setenv("SWEEPER_DIRECT_SQLITE", "0" if way == "mlflow" else "1")
        (tmp_path / way).mkdir()
        uri = "sqlite:///" + str(tmp_path / way / "mlflow.db")
        tracker = write_sweep(uri, "exp", str(artifact), now)
        assert isinstance(tracker._store, SqliteStore if way == "direct" else ClientStore)
        assert tracker.failures == []
        views[way] = snapshot_sweep(MlflowClient(uri), tracker, str(tmp_path / way))
    assert views["direct"] == views["mlflow"]
    direct = views["direct"]
    assert sorted(direct["children"]) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert direct["children"]["trial-3"]["files"] == {"extra/notes.txt": "a file the objective logged\n",
                                                      "output.txt": "hello from the trial\n"}
    assert direct["parent"]["files"] == {"sweep.yaml": "name: a\n"}
    assert direct["parent"]["tags"]["sweeper.best_run_id"] == "trial-3"
    assert direct["found"] == ["trial-1", "trial-3"]


def test_the_writer_process_never_imports_mlflow_on_a_known_store(tmp_path, template):
    code = textwrap.dedent(f"""
        import sys, time
        from sweeper.tracking.records import ChildRecord
        from sweeper.tracking.writer import Tracker
        tracker = Tracker("sqlite:///{tmp_path}/mlflow.db", "e", "s")
        tracker.start({{"a": 1}}, {{}}, {{"sweep.yaml": "x: 1"}})
        tracker.wait_ready()
        now = int(time.time() * 1000)
        tracker.child_started(0, now, {{"sweeper.trial_number": "0"}})
        tracker.child_finished(ChildRecord(0, "FINISHED", now, now + 1, {{"x": 1}}, [("value", 1.0, 0, now)],
                                           texts={{"output.txt": "hi"}}))
        tracker.close("FINISHED")
        assert tracker.failures == [], tracker.failures
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"mlflow", "sqlalchemy", "alembic"}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_store_at_another_schema_revision_or_without_a_template_goes_to_mlflow(tmp_path, monkeypatch, template):
    import shutil

    old = tmp_path / "old.db"
    shutil.copyfile(template, old)
    with sqlite3.connect(old) as db:
        db.execute("UPDATE alembic_version SET version_num = 'somewhere_else'")
    assert SqliteStore.open(f"sqlite:///{old}") is None
    assert SqliteStore.open(f"sqlite:///{tmp_path}/new.db") is not None  # made from the template
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert SqliteStore.open(f"sqlite:///{tmp_path}/other.db") is None
    assert not (tmp_path / "other.db").exists()
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert SqliteStore.open(f"sqlite:///{tmp_path}/new.db") is None


def test_what_the_direct_writer_refuses_mlflow_decides_with_nothing_lost_or_doubled(tmp_path, template):
    """A metric name outside MLflow's rule, a bool as a metric value: the direct writer writes
    neither and hands the store to MLflow's client, whose verdict stands (the name refused and
    reported, the bool logged as 1.0); every trial is one child run."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracker = Tracker(uri, "e", "s")
    tracker.start({}, {}, {})
    tracker.wait_ready()
    assert isinstance(tracker._store, SqliteStore)
    now = int(time.time() * 1000)
    for number in range(6):
        tracker.child_started(number, now, {"sweeper.trial_number": str(number)})
        metrics = [("value", float(number), 0, now)]
        if number == 2:
            metrics.append(("bad name!", 1.0, 0, now))
        if number == 3:
            metrics.append(("value", True, 1, now))
        tracker.child_finished(ChildRecord(number, "FINISHED", now, now + 1, {"x": number}, metrics))
        time.sleep(0.1)
    tracker.close("FINISHED")
    assert isinstance(tracker._store, ClientStore)  # handed over at trial 2
    client = MlflowClient(uri)
    children = children_runs(client, tracker.parent_run_id)
    numbers = sorted(int(r.data.tags["sweeper.trial_number"]) for r in children)
    assert numbers == list(range(6))  # each trial once, the refused ones included
    refused = [f for f in tracker.failures if "record trial" in f]
    assert len(refused) == 1 and "record trial 2: Invalid value \"bad name!\"" in refused[0]  # MLflow's words
    assert client.get_run(tracker.run_ids[3]).data.metrics == {"value": 1.0}  # True at step 1, as MLflow logs it
    assert all(client.get_run(tracker.run_ids[n]).data.metrics == {"value": float(n)} for n in (0, 1, 4, 5))

