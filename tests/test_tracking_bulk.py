"""Both bulk writers -- SQLAlchemy's (``sweeper.tracking.bulk``) and the direct sqlite3 one
(``sweeper.tracking.sqlite_store``) -- leave exactly the rows MLflow's client would, on a real SQLite
store: every trial is written both ways and everything MLflow reads back is compared. And when
a bulk transaction fails, the writer falls back to the public API and loses nothing."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest
from conftest import children_runs

from sweeper.tracking.bulk import BulkWriter, ChildRun, Conflict
from sweeper.tracking.client_store import ClientStore
from sweeper.tracking.sqlite_store import SqliteStore
from sweeper.tracking.records import ChildRecord
from sweeper.tracking.writer import Tracker

WRITERS = ["sqlalchemy", "direct"]


def trial_data(now: int):
    from mlflow.entities import Metric, Param, RunTag

    params = [Param("x", "0.5"), Param("kernel", "rbf"), Param("long", "p" * 700)]
    tags = [RunTag("sweeper.trial_number", "3"), RunTag("sweeper.state", "complete"),
            RunTag("note", "t" * 4000)]
    metrics = [
        Metric("value", 0.9, now, 0),
        Metric("intermediate", 0.5, now, 0), Metric("intermediate", 0.7, now + 1, 1),
        Metric("intermediate", 0.7, now + 1, 1),  # an exact repeat: kept once, as MLflow does
        Metric("intermediate", float("nan"), now + 2, 2), Metric("intermediate", 0.6, now + 3, 1),
        Metric("loss", float("inf"), now, 0), Metric("gain", float("-inf"), now, 0),
    ]
    return params, tags, metrics


def snapshot(client, run_id: str) -> dict:
    """Everything about a run that MLflow reads back, with its id taken out."""
    run = client.get_run(run_id)
    info = run.info
    history = {
        key: sorted((m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value)
                    for m in client.get_metric_history(run_id, key))
        for key in run.data.metrics
    }
    return {
        "info": (info.status, info.start_time, info.end_time, info.lifecycle_stage, info.user_id,
                 info.run_name, info.experiment_id, info.artifact_uri.replace(run_id, "<id>")),
        "params": run.data.params,
        "tags": run.data.tags,
        "metrics": {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()},
        "history": history,
    }


@pytest.fixture(params=WRITERS)
def store(request, client, tracking_uri, experiment):
    experiment_id = client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name="parent").info.run_id
    if request.param == "sqlalchemy":
        bulk = BulkWriter.for_client(client, experiment_id)
    else:
        bulk = SqliteStore.open(tracking_uri)
        assert bulk is not None, "a store at MLflow's own schema revision must get the direct writer"
        assert bulk.open_experiment(experiment, None, {}) == experiment_id
        request.addfinalizer(bulk.close)
    assert bulk is not None, "a SQLite store must get a bulk writer"
    return client, experiment_id, parent, bulk


def uses(tracker: Tracker, writer: str) -> bool:
    return isinstance(tracker._store, SqliteStore if writer == "direct" else ClientStore)


def test_a_trial_created_finished_is_the_same_run_as_the_clients(store):
    client, experiment_id, parent, bulk = store
    now = int(time.time() * 1000)
    params, tags, metrics = trial_data(now)
    from mlflow.entities import RunTag

    name, parent_tag = "trial-0003", RunTag("mlflow.parentRunId", parent)
    public = client.create_run(experiment_id, start_time=now, run_name=name,
                               tags={t.key: t.value for t in [parent_tag, *tags]}).info.run_id
    client.log_batch(public, metrics=metrics, params=params)
    client.set_terminated(public, "FINISHED", end_time=now + 50)

    ours = uuid.uuid4().hex
    bulk.write([ChildRun(ours, name, "FINISHED", now, now + 50, params, [parent_tag, *tags], metrics)], [])

    assert snapshot(client, ours) == snapshot(client, public)
    assert snapshot(client, ours)["metrics"]["intermediate"] == "nan"  # the highest step wins, NaN or not
    found = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent}' and metrics.value > 0.8",
                               order_by=["metrics.intermediate DESC"])
    assert {r.info.run_id for r in found} == {public, ours}


def test_a_trial_created_running_then_finished_is_the_same_run_as_the_clients(store):
    client, experiment_id, parent, bulk = store
    now = int(time.time() * 1000)
    params, tags, metrics = trial_data(now)
    from mlflow.entities import RunTag

    name = "trial-0007"
    start_tags = [RunTag("mlflow.parentRunId", parent), RunTag("sweeper.state", "running"),
                  RunTag("sweeper.worker_pid", "123")]
    public = client.create_run(experiment_id, start_time=now, run_name=name,
                               tags={t.key: t.value for t in start_tags}).info.run_id
    ours = uuid.uuid4().hex
    bulk.write([ChildRun(ours, name, "RUNNING", now, None, tags=start_tags)], [])
    assert snapshot(client, ours) == snapshot(client, public)
    assert client.get_run(ours).info.status == "RUNNING"

    client.log_batch(public, metrics=metrics, params=params, tags=tags)  # overwrites sweeper.state
    client.set_terminated(public, "FAILED", end_time=now + 80)
    bulk.write([], [ChildRun(ours, name, "FAILED", now, now + 80, params, tags, metrics)])
    assert snapshot(client, ours) == snapshot(client, public)
    assert client.get_run(ours).data.tags["sweeper.state"] == "complete"


def test_finishing_a_run_someone_else_logged_to_is_refused_and_changes_nothing(store):
    client, experiment_id, parent, bulk = store
    now = int(time.time() * 1000)
    params, tags, metrics = trial_data(now)
    from mlflow.entities import RunTag

    ours = uuid.uuid4().hex
    bulk.write([ChildRun(ours, "trial-0001", "RUNNING", now, None, tags=[RunTag("mlflow.parentRunId", parent)])], [])
    client.log_metric(ours, "value", 0.1, timestamp=now, step=0)  # the objective's own mlflow.log_metric
    before = snapshot(client, ours)
    with pytest.raises(Conflict):
        bulk.write([], [ChildRun(ours, "trial-0001", "FINISHED", now, now + 5, params, tags, metrics)])
    assert snapshot(client, ours) == before and before["info"][0] == "RUNNING"


def test_an_invalid_batch_writes_nothing_at_all(store):
    client, experiment_id, parent, bulk = store
    from mlflow.entities import Param

    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    with pytest.raises(Exception):  # noqa: B017 - MLflow's own validation error
        bulk.write([ChildRun(good, "trial-0001", "FINISHED", 1, 2, [Param("x", "1")]),
                    ChildRun(bad, "trial-0002", "FINISHED", 1, 2, [Param("x", "1"), Param("x", "2")])], [])
    assert [r.info.run_name for r in children_runs(client, parent)] == []


def record(number: int, status: str = "FINISHED") -> ChildRecord:
    now = int(time.time() * 1000)
    return ChildRecord(number, status, now, now + 10, params={"x": number / 10},
                       metrics=[("value", number * 1.5, 0, now + 10)], tags={"sweeper.state": status.lower()})


def sweep_through(tracker: Tracker, numbers: range, running: set[int], while_running: Any = None) -> None:
    """Send starts and ends the way the coordinator does; trials in ``running`` are written
    RUNNING first (the writer gets their start before their end), then ``while_running(run_id)``."""
    tracker.start({"n_trials": len(numbers)}, {}, {})
    tracker.wait_ready()
    for number in numbers:
        tracker.child_started(number, int(time.time() * 1000), {"sweeper.trial_number": str(number),
                                                                  "sweeper.state": "running"})
        if number in running:
            deadline = time.monotonic() + 30
            while number not in tracker.run_ids and time.monotonic() < deadline:
                time.sleep(0.01)
            if while_running is not None:
                while_running(tracker.run_ids[number])
        tracker.child_finished(record(number))
    tracker.close("FINISHED")


def check_children(client, tracker: Tracker, numbers: range, extra_metrics: Any = None) -> None:
    children = children_runs(client, tracker.parent_run_id)
    by_number = {int(r.data.tags["sweeper.trial_number"]): r for r in children}
    assert sorted(by_number) == list(numbers) and len(children) == len(numbers)  # each exactly once
    for number, run in by_number.items():
        assert run.info.status == "FINISHED" and run.info.run_name == f"trial-{number:04d}"
        assert run.data.params == {"x": str(number / 10)}
        assert run.data.metrics == {"value": number * 1.5, **(extra_metrics or {})}
        assert run.data.tags["sweeper.state"] == "finished" and tracker.run_ids[number] == run.info.run_id


def test_the_writer_uses_the_bulk_path_on_sqlite_for_running_and_finished_trials(
    client, tracking_uri, experiment, writer
):
    tracker = Tracker(tracking_uri, experiment, "bulk")
    sweep_through(tracker, range(12), running={0, 5})
    assert uses(tracker, writer) and tracker._bulk is not None and tracker.failures == []  # no fallback
    assert {0, 5} <= tracker._bulk_created
    check_children(client, tracker, range(12))


def test_a_failed_bulk_transaction_falls_back_to_the_client_and_loses_nothing(
    client, tracking_uri, experiment, monkeypatch, writer
):
    calls = []

    def fails_on_the_third(self, created, finished):
        calls.append(len(created) + len(finished))
        if len(calls) == 3:
            raise RuntimeError("database is locked")
        return real(self, created, finished)

    bulk_class = SqliteStore if writer == "direct" else BulkWriter
    real = bulk_class.write
    monkeypatch.setattr(bulk_class, "write", fails_on_the_third)
    tracker = Tracker(tracking_uri, experiment, "fallback")
    sweep_through(tracker, range(10), running=set(range(10)))
    assert len(calls) == 3 and tracker._bulk is None and tracker.failures == [] and uses(tracker, writer)
    check_children(client, tracker, range(10))


def test_runs_an_objective_logs_to_itself_are_finished_through_the_client(client, tracking_uri, experiment, writer):
    """A worker's own ``mlflow.log_metric`` into its trial's run makes the bulk finish refuse
    (Conflict); those runs are then finished the public way, with both sides' data kept."""
    tracker = Tracker(tracking_uri, experiment, "own-logging")
    sweep_through(tracker, range(6), running=set(range(6)),
                  while_running=lambda run_id: client.log_metric(run_id, "epoch_loss", 0.25, step=3))
    assert tracker._bulk is not None and not tracker._bulk_finishes and tracker.failures == [] and uses(tracker, writer)
    check_children(client, tracker, range(6), extra_metrics={"epoch_loss": 0.25})


def test_a_trial_that_ends_within_the_gather_window_is_created_once_finished(client, tracking_uri, experiment, writer):
    """The bulk writer waits BULK_GATHER_S after a quiet spell, so a trial whose end follows its
    start by less than that is one run created finished, not a RUNNING run updated afterwards."""
    from sweeper.tracking.writer import BULK_GATHER_S

    assert BULK_GATHER_S >= 0.03
    tracker = Tracker(tracking_uri, experiment, "gather")
    tracker.start({}, {}, {})
    tracker.wait_ready()
    for number in range(4):
        tracker.child_started(number, int(time.time() * 1000), {"sweeper.trial_number": str(number),
                                                                  "sweeper.state": "running"})
        time.sleep(0.01)  # the writer wakes on the start; without the window it would write it alone
        tracker.child_finished(record(number))
        time.sleep(0.2)  # a quiet spell before the next trial
    tracker.close("FINISHED")
    assert tracker._bulk is not None and tracker._bulk_created == set() and uses(tracker, writer)
    check_children(client, tracker, range(4))
