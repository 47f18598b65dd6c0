"""One store contract, run by every store path: the same sweep written through the direct
sqlite3 path, MLflow's public client on a SQLite store and MLflow's public client on a real
``mlflow server`` over HTTP reads back the same through MLflow's own readers -- run info,
params, tags, metric histories, artifacts and search results.

The sweep is driven through the writer (``sweeper.tracking.writer.Writer``) as the writer
process drives it, with a clock of the test's own, so which trial is written RUNNING first and
which is created finished in one go is decided here, not by timing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from conftest import children_runs

from sweeper.tracking.client_store import ClientStore
from sweeper.tracking.frames import Close, Open, ParentUpdate, TrialEnd, TrialStart
from sweeper.tracking.records import ChildRecord
from sweeper.tracking.sqlite_store import SqliteStore
from sweeper.tracking.writer import Writer

PATHS = ["direct", "client-sqlite", "client-http"]
METADATA = {"mlflow.user": "alice", "mlflow.source.name": "train.py", "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": "abc123"}


def sweep_open(uri: str, direct: bool, key: str, experiment: str, finished: tuple = ()) -> Open:
    return Open(
        uri=uri, experiment=experiment, run_name="sweep-a", sweep_key=key, parent_run_id=None, start_ms=1_700_000_000_000,
        params={"n_trials": "6", "sampler.name": "tpe", "search_space.x": '{"low": 0, "high": 1}'},
        tags={"sweeper.kind": "sweep", "sweeper.version.sweeper": "0.1.0"}, texts={"sweep.yaml": "name: a\n"},
        metadata=METADATA, probe_params=("x", "kernel"), probe_metrics=("value", "duration_s"), spool_path=None,
        direct_sqlite=direct, finished=finished,
    )


def record(number: int, now: int, status: str = "FINISHED") -> ChildRecord:
    metrics = [("intermediate_value", 0.1 * number, 0, now + 50), ("intermediate_value", 0.2, 1, now + 60),
               ("intermediate_value", 0.2, 1, now + 60),  # an exact repeat: kept once, as MLflow does
               ("fold_score", float("nan"), 0, now + 70), ("cv_mean", float("inf"), 0, now + 70),
               ("cv_std", float("-inf"), 0, now + 70), ("duration_s", 0.1, 0, now + 100)]
    if status == "FINISHED":
        metrics.append(("value", number * 1.5, 0, now + 100))
    child = ChildRecord(number, status, now + number, now + 100 + number,
                        params={"x": str(number / 4), "kernel": "rbf", "C": str(10 ** number), "long": "p" * 700},
                        metrics=metrics, tags={"sweeper.state": "complete" if status == "FINISHED" else "fail",
                                               "sweeper.duration_s": "0.100", "note": "t" * 4000})
    if status == "FAILED":
        child.texts["traceback.txt"] = "Traceback: boom\n"
        child.tags["sweeper.fail_reason"] = "exception"
    return child


def start(number: int, now: int) -> TrialStart:
    return TrialStart(number, now + number, {"sweeper.trial_number": str(number), "sweeper.state": "running",
                                             "sweeper.worker_pid": "42"})


def write_sweep(uri: str, direct: bool, experiment: str) -> Writer:
    """Trials 0-1 written RUNNING first (and trial 1 logged to by its objective, as a worker's
    plain ``mlflow.log_metric`` does), then finished; 2-3 created finished in one go (3 failed,
    with a traceback); 4 with output and a file in a subdirectory; progress; the Pareto tag."""
    from mlflow import MlflowClient

    clock = [0.0]
    writer = Writer(sweep_open(uri, direct, f"key-{experiment}", experiment), clock=lambda: clock[0],
                    sleep=lambda s: None)
    opened = writer.open()
    assert opened.error is None, opened.error
    now = 1_700_000_100_000
    for number in (0, 1, 4):
        writer.take(start(number, now))
    clock[0] += 1
    assert writer.tick() is not None
    assert set(writer.runs) == {0, 1, 4} and set(writer.statuses.values()) == {"RUNNING"}
    MlflowClient(uri).log_metric(writer.runs[1], "own_metric", 7.0, timestamp=now, step=3)
    writer.take(TrialEnd(record(0, now)))
    writer.take(TrialEnd(record(1, now)))
    writer.take(ParentUpdate({"trials_complete": 2.0, "best_value": 1.5}, {"sweeper.best_trial": "1"}, 2))
    for number in (2, 3):
        writer.take(start(number, now))
        writer.take(TrialEnd(record(number, now, "FAILED" if number == 3 else "FINISHED")))
    last = record(4, now)
    last.texts["output.txt"] = "hello from the trial\n"
    last.files.append(("notes.txt", b"a file the objective logged\n", "extra"))
    writer.take(TrialEnd(last))
    clock[0] += 2
    writer.tick()
    writer.take(ParentUpdate({"trials_complete": 4.0, "trials_failed": 1.0, "best_value": 6.0},
                             {"sweeper.best_trial": "4"}, 5))
    closed = writer.close(Close("FINISHED", {"sweeper.outcome": "finished", "sweeper.stopped": ""},
                                {4: {"sweeper.pareto_front": "true"}}))
    assert closed.failures == ()
    return writer


def snapshot(uri: str, writer: Writer, root: str) -> dict:
    """Everything MLflow reads back of the sweep, run ids replaced by names, paths taken out."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    client = MlflowClient(uri)
    ids = {writer.parent_run_id: "parent", **{run_id: f"trial-{n}" for n, run_id in writer.runs.items()}}

    def clean(value):
        text = json.dumps(value, sort_keys=True, default=str).replace(root, "<dir>")
        for run_id, name in ids.items():
            text = text.replace(run_id, name)
        return json.loads(text)

    def run_view(run_id: str) -> dict:
        run = client.get_run(run_id)
        info = run.info
        parent = run_id == writer.parent_run_id
        history = {key: sorted((m.step, 0 if parent else m.timestamp, "nan" if math.isnan(m.value) else m.value)
                               for m in client.get_metric_history(run_id, key)) for key in run.data.metrics}
        files = {}
        for item in client.list_artifacts(run_id):
            for entry in [item] if not item.is_dir else client.list_artifacts(run_id, item.path):
                local = download_artifacts(run_id=run_id, artifact_path=entry.path, tracking_uri=uri)
                files[entry.path] = Path(local).read_text()
        return {
            "info": (info.status, info.lifecycle_stage, info.user_id, info.run_name, info.start_time,
                     info.end_time if not parent else info.end_time is not None,
                     info.experiment_id == writer.experiment_id),
            "params": run.data.params, "tags": run.data.tags,
            "metrics": {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()},
            "history": history, "files": files,
        }

    experiment = client.get_experiment(writer.experiment_id)
    children = children_runs(client, writer.parent_run_id)
    return clean({
        "experiment": (experiment.name, experiment.lifecycle_stage, experiment.tags),
        "parent": run_view(writer.parent_run_id),
        "children": {ids[r.info.run_id]: run_view(r.info.run_id) for r in children},
        "found": sorted(ids[r.info.run_id] for r in client.search_runs(
            [writer.experiment_id], "metrics.value > 1 and params.kernel = 'rbf'")),
        "by_state": sorted(ids[r.info.run_id] for r in client.search_runs(
            [writer.experiment_id], "attributes.status = 'FAILED'")),
        "active": len(client.search_runs([writer.experiment_id])),
    })


@pytest.fixture(scope="module")
def written(tmp_path_factory, mlflow_server) -> dict:
    """The sweep written each way, and what MLflow reads back of it."""
    views, writers = {}, {}
    experiment = f"contract-{int(time.time() * 1000)}"
    for path in PATHS:
        root = tmp_path_factory.mktemp(path)
        uri = mlflow_server[0] if path == "client-http" else f"sqlite:///{root}/mlflow.db"
        writers[path] = write_sweep(uri, path == "direct", experiment)
        views[path] = snapshot(uri, writers[path], str(root))
    return {"views": views, "writers": writers}


def test_each_path_wrote_the_way_it_says(written):
    kinds = {path: w.store for path, w in written["writers"].items()}
    assert isinstance(kinds["direct"], SqliteStore)
    assert isinstance(kinds["client-sqlite"], ClientStore) and isinstance(kinds["client-http"], ClientStore)


@pytest.mark.parametrize("path", ["client-sqlite", "client-http"])
def test_the_direct_path_leaves_what_mlflows_client_leaves(written, path):
    direct, other = written["views"]["direct"], written["views"][path]
    assert direct["children"] == other["children"]
    assert direct["parent"] == other["parent"]
    assert direct == other


def test_the_sweep_reads_back_as_written(written):
    view = written["views"]["direct"]
    assert sorted(view["children"]) == [f"trial-{n}" for n in range(5)]
    assert view["active"] == 6  # the parent and five children; the probe run is gone
    parent = view["parent"]
    assert parent["info"][:4] == ["FINISHED", "active", "alice", "sweep-a"]
    assert parent["files"] == {"sweep.yaml": "name: a\n"}
    assert parent["params"]["sampler.name"] == "tpe"
    assert parent["tags"]["sweeper.best_run_id"] == "trial-4" and parent["tags"]["mlflow.source.git.commit"] == "abc123"
    assert parent["history"]["trials_complete"] == [[2, 0, 2.0], [5, 0, 4.0]]
    children = view["children"]
    assert children["trial-4"]["files"] == {"extra/notes.txt": "a file the objective logged\n",
                                            "output.txt": "hello from the trial\n"}
    assert children["trial-3"]["files"] == {"traceback.txt": "Traceback: boom\n"}
    assert children["trial-3"]["info"][0] == "FAILED" and children["trial-4"]["tags"]["sweeper.pareto_front"] == "true"
    assert children["trial-1"]["metrics"]["own_metric"] == 7.0  # the objective's own logging kept
    assert children["trial-0"]["history"]["intermediate_value"] == [[0, 1_700_000_100_050, 0.0],
                                                                     [1, 1_700_000_100_060, 0.2]]
    assert children["trial-2"]["metrics"]["fold_score"] == "nan"
    assert all(c["tags"]["mlflow.parentRunId"] == "parent" and c["info"][2] == "alice" for c in children.values())
    assert view["found"] == ["trial-1", "trial-2", "trial-4"] and view["by_state"] == ["trial-3"]
