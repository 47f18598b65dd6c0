"""Finished trials written to MLflow's SQL store in one transaction per batch.

MLflow's client needs three calls for a trial that is already over (``create_run``,
``log_batch``, ``set_terminated``); each opens its own session and re-reads the experiment and
the run through the ORM: ~10 ms a run on SQLite, which made the writer the bottleneck of a
sweep of short trials (benchmark B3). Here the rows those three calls leave behind are inserted
with SQLAlchemy Core into MLflow's own tables (``mlflow.store.tracking.dbmodels.models``), after
MLflow's own validation: ~1 ms for a lone run, ~0.2 ms a run in batches of 50. A trial still
running when the writer gets to it is created RUNNING here and finished here later.

The rows are the client's rows: ``tests/test_tracking_bulk.py`` writes the same trial both ways
and compares everything MLflow reads back (run info, data, metric histories, search). Those
tables are internal, which is why mlflow is pinned to one minor version in ``pyproject.toml``;
and anything unexpected -- another kind of store, a moved import, a failed insert -- makes
``BulkWriter.for_client`` return None, or ``write`` raise with nothing committed, and the
caller writes those trials the public way.

``child_rows`` builds those rows from plain data, so ``_mlflow_sqlite`` (the same writes with
the standard library's sqlite3, no mlflow import) leaves the same ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class Param(NamedTuple):
    key: str
    value: str


class RunTag(NamedTuple):
    key: str
    value: str


class Metric(NamedTuple):
    key: str
    value: float
    timestamp: int
    step: int


class Conflict(Exception):
    """A run to finish is not as this writer left it (deleted, or logged to by someone else)."""


@dataclass(frozen=True)
class ChildRun:
    """One child run's rows to write (``Param``, ``RunTag``, ``Metric``: this module's or
    MLflow's entities)."""

    run_id: str
    run_name: str
    status: str
    start_ms: int
    end_ms: int | None
    params: Sequence[Any] = ()
    tags: Sequence[Any] = ()
    metrics: Sequence[Any] = ()


class BulkWriter:
    """Creates and finishes child runs in one experiment of a SQLAlchemy-backed MLflow store."""

    def __init__(self, store: Any, experiment: Any) -> None:
        from mlflow.entities import RunTag
        from mlflow.store.tracking.dbmodels import models
        from mlflow.utils.uri import append_to_uri_path

        self._store = store
        self._experiment_id = int(experiment.experiment_id)
        self._artifact_location = experiment.artifact_location
        self._tables = (models.SqlRun.__table__, models.SqlTag.__table__, models.SqlParam.__table__,
                        models.SqlMetric.__table__, models.SqlLatestMetric.__table__)
        self._runs, self._tags, self._params, self._metrics, self._latest = self._tables
        self._run_tag = RunTag
        self._append_to_uri_path = append_to_uri_path

    @classmethod
    def for_client(cls, client: Any, experiment_id: str) -> BulkWriter | None:
        """A writer for ``client``'s store, or None when it is not a SQL store we know."""
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
            if type(store) is not SqlAlchemyStore:  # a subclass may write differently
                return None
            return cls(store, client.get_experiment(experiment_id))
        except Exception:  # noqa: BLE001 - any surprise means: use the public API
            return None

    def write(self, created: Sequence[ChildRun], finished: Sequence[ChildRun]) -> None:
        """In one transaction -- all of it or, on any error, none -- insert ``created`` as new
        runs (RUNNING ones have ``end_ms`` None), and finish ``finished``: runs ``write`` created
        RUNNING, which get their status, end time, params and metrics, and whose tags are set
        (added or overwritten, like ``set_tag``). ``Conflict`` if one of those is deleted or has
        params or metrics from elsewhere (an objective's own ``mlflow.log_*``)."""
        rows: list[list[dict[str, Any]]] = [[] for _ in self._tables]  # per table, in _tables' order
        for new, runs in ((True, created), (False, finished)):
            for run in runs:
                built = child_rows(run, new=new, experiment_id=self._experiment_id,
                                   artifact_root=self._artifact_location, validate=mlflow_checks,
                                   run_tag=self._run_tag, join=self._append_to_uri_path)
                for table_rows, more in zip(rows, built):
                    table_rows.extend(more)
        ends = [{"b_run": run.run_id, "b_status": run.status, "b_end": run.end_ms} for run in finished]
        try:
            self._insert(rows, ends)
        except Exception as exc:
            if isinstance(exc.__cause__, Conflict):  # MLflow's session wraps what it sees
                raise exc.__cause__ from None
            raise

    def _insert(self, rows: list[list[dict[str, Any]]], ends: list[dict[str, Any]]) -> None:
        from sqlalchemy import bindparam, delete, select, update

        ids = [end["b_run"] for end in ends]
        with self._store.ManagedSessionMaker(read_only=False) as session:
            if ids:
                live = set(session.execute(select(self._runs.c.run_uuid).where(
                    self._runs.c.run_uuid.in_(ids), self._runs.c.lifecycle_stage == "active")).scalars())
                if live != set(ids):
                    raise Conflict(f"runs {sorted(set(ids) - live)} are gone or deleted")
                for table in (self._params, self._latest):
                    if session.execute(select(table.c.run_uuid).where(table.c.run_uuid.in_(ids)).limit(1)).first():
                        raise Conflict(f"a run to finish already has {table.name}")
                session.execute(update(self._runs).where(self._runs.c.run_uuid == bindparam("b_run")).values(
                    status=bindparam("b_status"), end_time=bindparam("b_end")), ends)
                overwritten = [{"b_run": t["run_uuid"], "b_key": t["key"]} for t in rows[1] if t["run_uuid"] in live]
                if overwritten:
                    tag = self._tags.c
                    session.execute(delete(self._tags).where(
                        tag.run_uuid == bindparam("b_run"), tag.key == bindparam("b_key")), overwritten)
            for table, table_rows in zip(self._tables, rows):
                if table_rows:
                    session.execute(table.insert(), table_rows)


def child_rows(
    run: ChildRun,
    *,
    new: bool,
    experiment_id: int,
    artifact_root: str,
    validate: Callable[[list[Any], list[Any], list[Any]], tuple[list[Any], list[Any], list[Any]]],
    run_tag: Callable[[str, str], Any],
    join: Callable[..., str],
) -> tuple[list[dict[str, Any]], ...]:
    """The rows of ``runs``, ``tags``, ``params``, ``metrics`` and ``latest_metrics`` that
    MLflow's create_run / log_batch / set_terminated would leave for ``run``, after
    ``validate`` (MLflow's own checks, or ``_mlflow_sqlite``'s copy of them); ``run_tag`` makes
    a tag entity and ``join`` appends to the experiment's artifact location."""
    run_name_tag, user_tag = "mlflow.runName", "mlflow.user"
    if not re.match(r"^[a-zA-Z0-9][\w\-]{0,255}$", run.run_id):
        raise ValueError(f"invalid run id {run.run_id!r}")
    tags = list(run.tags)
    named = [t.value for t in tags if t.key == run_name_tag]
    if named and named[0] != run.run_name:
        raise ValueError(f"mlflow.runName {named[0]!r} is not the run name {run.run_name!r}")
    if new and not named:
        tags.append(run_tag(run_name_tag, run.run_name))
    metrics, params, tags = validate(list(run.metrics), list(run.params), tags)
    if len({t.key for t in tags}) != len(tags):
        raise ValueError("a tag key is given twice")
    run_rows = []
    if new:
        run_rows.append({
            "run_uuid": run.run_id, "name": run.run_name, "source_type": "UNKNOWN",
            "source_name": "", "entry_point_name": "", "status": run.status,
            "user_id": next((t.value for t in tags if t.key == user_tag), "unknown"),
            "start_time": run.start_ms, "end_time": run.end_ms, "deleted_time": None,
            "source_version": "", "lifecycle_stage": "active", "experiment_id": experiment_id,
            "artifact_uri": join(artifact_root, run.run_id, "artifacts"),
        })
    tag_rows = [{"run_uuid": run.run_id, "key": t.key, "value": t.value} for t in tags]
    param_rows = [{"run_uuid": run.run_id, "key": p.key, "value": p.value} for p in params]
    metric_rows: dict[tuple[Any, ...], dict[str, Any]] = {}  # identical entries once, as MLflow
    latest: dict[str, dict[str, Any]] = {}
    for m in metrics:
        is_nan, value = sanitized(m.value)
        row = {"run_uuid": run.run_id, "key": m.key, "value": value, "timestamp": m.timestamp,
               "step": m.step, "is_nan": is_nan}
        metric_rows.setdefault((m.key, m.timestamp, m.step, value, is_nan), row)
        best = latest.get(m.key)  # latest = greatest (step, timestamp, value), as MLflow
        if best is None or (m.step, m.timestamp, value) > (best["step"], best["timestamp"], best["value"]):
            latest[m.key] = row
    return run_rows, tag_rows, param_rows, list(metric_rows.values()), list(latest.values())


def mlflow_checks(metrics: list[Any], params: list[Any], tags: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """MLflow's own validation of a batch, as ``log_batch`` does it (it may truncate values)."""
    from mlflow.utils import validation

    metrics, params, tags = validation._validate_batch_log_data(metrics, params, tags)
    validation._validate_param_keys_unique(params)
    return metrics, params, tags


def sanitized(value: float) -> tuple[bool, float]:
    """A metric value as MLflow stores it: NaN as 0 with ``is_nan``, infinities as the largest
    doubles."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, math.copysign(1.7976931348623157e308, value)
    return False, float(value)
