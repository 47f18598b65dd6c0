"""The default store, ``sqlite:///mlflow.db``, written with Python's ``sqlite3``, without mlflow.

Opening a store through MLflow costs ~1.5 s of CPU before the first row (``import mlflow``
~0.9 s, its SQL store ~0.6 s), on the cores the workers need, and MLflow's client takes ~10 ms
a run. Every row a sweep writes -- its experiment, the parent run, one child run per trial,
their params, tags and metrics -- is a plain insert or update in a handful of MLflow's tables,
and text and file artifacts are files beside the store: here a batch of runs is one
transaction (~0.1-0.3 ms a run), exactly the rows ``create_run`` + ``log_batch`` +
``set_terminated`` leave (``tests/test_store_contract.py`` writes one sweep every way and
reads each back with MLflow's own readers).

MLflow's tables are internal and change in minor releases, so this path opens only a store
whose schema revision is in ``VERIFIED_REVISIONS`` -- revisions the contract suite passed on;
any other store goes to MLflow's client (``client_store``), silently. Whatever this path does
not know (a name outside MLflow's rule, a deleted experiment, a remote artifact root) raises
``Unsupported`` before anything is written, and the writer hands the rest of the sweep to the
client, as it does on any ``sqlite3.Error`` (every write is one all-or-nothing transaction).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import posixpath
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from . import template as _template
from .records import MAX_EXPERIMENT_NAME, MAX_KEY, MAX_PARAM, MAX_TAG_VALUE, MLFLOW_PARENT_RUN_ID, \
    MLFLOW_RUN_NAME, MLFLOW_USER, PROBE_TAG, TRIAL_NUMBER_TAG, name_problem
from .store import RunRef, RunWrite

#: Schema revisions (alembic) of MLflow's SQL store this writer was verified on: the empty store
#: of each MLflow version listed, checked by tests/test_store_contract.py. A store at any other
#: revision is written by MLflow's client. Add a revision only after that suite passes on it.
VERIFIED_REVISIONS: dict[str, str] = {
    "dc11669786a5": "mlflow 3.17.2",
}
_MAX_EXPERIMENT_TAG = 20000
_TABLES = ("runs", "tags", "params", "metrics", "latest_metrics")


class Unsupported(Exception):
    """Something this writer leaves to MLflow's client; nothing of the call was written."""


def sqlite_path(uri: str) -> str | None:
    """The file of a plain ``sqlite:///`` store URI (no query, not in memory); else None."""
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    path = uri[len("sqlite:///"):]
    return path if path and path != ":memory:" else None


class SqliteStore:
    """The writes of a sweep on one SQLite MLflow store (one connection, one thread)."""

    kind = "direct sqlite"
    transactional = True

    def __init__(self, path: str, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._experiment_id: int | None = None
        self._artifact_location = ""

    @classmethod
    def open(cls, uri: str) -> SqliteStore | None:
        """The store at a ``sqlite:///`` URI -- made from the template if it does not exist --
        or None when this writer should not touch it (MLflow's client opens it instead)."""
        path = sqlite_path(uri)
        if path is None or sys.platform == "win32":
            return None
        if any(os.environ.get(name) for name in ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")):
            return None  # a workspace-enabled MLflow scopes experiments differently
        _template.seed_store(path)  # a new store is a copy of MLflow's own empty one, if we have it
        if not os.path.isfile(path):
            return None
        try:
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
            if len(rows) != 1 or rows[0][0] not in VERIFIED_REVISIONS:
                db.close()
                return None
            if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                db.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            db.close()
            return None
        return cls(path, db)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- experiment -------------------------------------------------------------------------------

    def open_experiment(self, name: str, artifact_location: str | None, tags: Mapping[str, str]) -> str:
        """The active experiment ``name``, created (with ``tags``) if there is none."""
        if not name or len(name) > MAX_EXPERIMENT_NAME:
            raise Unsupported(f"experiment name {name!r}")
        for key, value in tags.items():
            if name_problem(key) or len(value) > _MAX_EXPERIMENT_TAG:
                raise Unsupported(f"experiment tag {key!r}")
        for _ in range(2):  # a sweep starting beside us may create it first
            row = self._db.execute(
                "SELECT experiment_id, lifecycle_stage, artifact_location FROM experiments "
                "WHERE workspace = 'default' AND name = ?", (name,)).fetchone()
            if row is not None:
                if row[1] != "active":
                    raise Unsupported(f"experiment {name!r} is deleted")  # MLflow's client restores it
                self._use_experiment(row[0], row[2])
                return str(row[0])
            try:
                with self._transaction() as db:
                    now = _now_ms()
                    cursor = db.execute(
                        "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                        "last_update_time, workspace) VALUES (?, ?, 'active', ?, ?, 'default')",
                        (name, artifact_location, now, now))
                    experiment_id = cursor.lastrowid
                    if not artifact_location:  # MLflow's default: <artifact root>/<id>
                        artifact_location = _append(_template.default_artifact_root(), str(experiment_id))
                        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                                   (artifact_location, experiment_id))
                    db.executemany("INSERT INTO experiment_tags (key, value, experiment_id) VALUES (?, ?, ?)",
                                   [(k, v, experiment_id) for k, v in tags.items()])
            except sqlite3.IntegrityError:
                continue
            assert experiment_id is not None
            self._use_experiment(experiment_id, artifact_location)
            return str(experiment_id)
        raise Unsupported(f"experiment {name!r} could not be created")

    def _use_experiment(self, experiment_id: int, artifact_location: str | None) -> None:
        self._experiment_id = int(experiment_id)
        self._artifact_location = artifact_location or ""

    # --- the check before a sweep -----------------------------------------------------------------

    def probe(self, params: Sequence[str], metrics: Sequence[str], tags: Mapping[str, str]) -> None:
        """What the sweep will do, done once and undone: a run with a param and a metric of each
        name committed and deleted again (rows and all), and a file in the artifact directory."""
        now = _now_ms()
        probe = RunWrite(None, "sweeper-probe", now, "RUNNING", params={k: "probe" for k in params},
                         tags={PROBE_TAG: "true", **tags}, metrics=[(k, 0.0, 0, now) for k in metrics])
        [run_id] = self.write([probe])
        with self._transaction() as db:
            for table in reversed(_TABLES):
                db.execute(f"DELETE FROM {table} WHERE run_uuid = ?", (run_id,))  # noqa: S608 - our names
        directory = self._local_artifact_dir(_append(self._artifact_location, run_id, "artifacts"), required=False)
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            try:
                with tempfile.NamedTemporaryFile(dir=directory):
                    pass
            finally:
                shutil.rmtree(os.path.dirname(directory), ignore_errors=True)

    # --- runs -------------------------------------------------------------------------------------

    def write(self, runs: Sequence[RunWrite]) -> list[str]:
        """All of ``runs`` in one transaction, artifacts first (a run's final status is the last
        thing it gets); nothing of it on any error."""
        if self._experiment_id is None:
            raise Unsupported("no experiment opened")
        rows: dict[str, list[dict[str, Any]]] = {table: [] for table in _TABLES}
        updates: list[RunWrite] = []
        ids: list[str] = []
        for run in runs:
            run_id = run.run_id or uuid.uuid4().hex
            ids.append(run_id)
            built = self._rows(run, run_id, new=run.run_id is None)
            for table, more in zip(_TABLES, built):
                rows[table].extend(more)
            if run.run_id is not None:
                updates.append(run)
        made: list[str] = []  # artifact directories of new runs: removed again if this fails
        try:
            for run, run_id in zip(runs, ids):
                if run.texts or run.files:
                    self._write_artifacts(run, run_id, made if run.run_id is None else None)
            with self._transaction() as db:
                self._apply(db, rows, updates)
        except BaseException:
            for directory in made:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return ids

    def _rows(self, run: RunWrite, run_id: str, *, new: bool) -> tuple[list[dict[str, Any]], ...]:
        """The rows of ``runs``, ``tags``, ``params``, ``metrics`` and ``latest_metrics`` that
        MLflow's create_run / log_batch / set_terminated leave for ``run``."""
        tags = dict(run.tags)
        if new:
            tags.setdefault(MLFLOW_RUN_NAME, run.run_name)
        elif MLFLOW_RUN_NAME in tags:
            raise Unsupported("renaming a run")
        validate_batch(run.metrics, run.params, tags)
        run_rows = []
        if new:
            assert self._experiment_id is not None
            run_rows.append({
                "run_uuid": run_id, "name": run.run_name, "source_type": "UNKNOWN", "source_name": "",
                "entry_point_name": "", "status": run.status, "user_id": tags.get(MLFLOW_USER, "unknown"),
                "start_time": run.start_ms, "end_time": run.end_ms, "deleted_time": None, "source_version": "",
                "lifecycle_stage": "active", "experiment_id": self._experiment_id,
                "artifact_uri": _append(self._artifact_location, run_id, "artifacts"),
            })
        tag_rows = [{"run_uuid": run_id, "key": k, "value": v} for k, v in tags.items()]
        param_rows = [{"run_uuid": run_id, "key": k, "value": v} for k, v in run.params.items()]
        metric_rows: dict[tuple[Any, ...], dict[str, Any]] = {}  # identical entries once, as MLflow
        latest: dict[str, dict[str, Any]] = {}
        for key, raw, step, timestamp in run.metrics:
            is_nan, value = sanitized(raw)
            row = {"run_uuid": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step,
                   "is_nan": is_nan}
            metric_rows.setdefault((key, timestamp, step, value, is_nan), row)
            best = latest.get(key)  # latest = greatest (step, timestamp, value), as MLflow keeps it
            if best is None or (step, timestamp, value) > (best["step"], best["timestamp"], best["value"]):
                latest[key] = row
        return run_rows, tag_rows, param_rows, list(metric_rows.values()), list(latest.values())

    @staticmethod
    def _apply(db: sqlite3.Connection, rows: Mapping[str, list[dict[str, Any]]], updates: Sequence[RunWrite]) -> None:
        ids = [run.run_id for run in updates if run.run_id is not None]
        existing = set(ids)
        if ids:
            marks = ",".join("?" * len(ids))
            live = {r[0] for r in db.execute(
                f"SELECT run_uuid FROM runs WHERE run_uuid IN ({marks}) AND lifecycle_stage = 'active'", ids)}
            if live != existing:
                raise Unsupported(f"runs {sorted(existing - live)} are gone or deleted")
            for p in rows["params"]:  # MLflow refuses a changed param value, in its own words
                if p["run_uuid"] in existing:
                    old = db.execute("SELECT value FROM params WHERE run_uuid = ? AND key = ?",
                                     (p["run_uuid"], p["key"])).fetchone()
                    if old is not None and old[0] != p["value"]:
                        raise Unsupported(f"param {p['key']!r} changes value")
        if rows["runs"]:
            _insert(db, "runs", rows["runs"])
        db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (:key, :value, :run_uuid)",
                       rows["tags"])
        db.executemany("INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (:key, :value, :run_uuid)",
                       rows["params"])
        db.executemany("INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                       "VALUES (:key, :value, :timestamp, :run_uuid, :step, :is_nan)", rows["metrics"])
        for row in rows["latest_metrics"]:
            if row["run_uuid"] in existing:
                old = db.execute("SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = ?",
                                 (row["run_uuid"], row["key"])).fetchone()
                if old is not None and (row["step"], row["timestamp"], row["value"]) <= tuple(old):
                    continue
            db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                       "VALUES (:key, :value, :timestamp, :step, :is_nan, :run_uuid)", row)
        ends = [(run.status, run.end_ms, run.run_id) for run in updates if run.status != "RUNNING"]
        db.executemany("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", ends)

    def set_status(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        """``set_terminated`` (with an end time) or ``update_run(status=...)`` (without)."""
        with self._transaction() as db:
            self._check_active(db, run_id)
            if end_ms is None:
                db.execute("UPDATE runs SET status = ? WHERE run_uuid = ?", (status, run_id))
            else:
                db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, end_ms, run_id))

    def delete_run(self, run_id: str) -> None:
        """``MlflowClient.delete_run``: the run stays, marked deleted."""
        with self._transaction() as db:
            db.execute("UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ? WHERE run_uuid = ?",
                       (_now_ms(), run_id))

    # --- reads ------------------------------------------------------------------------------------

    def find_runs(self, tag: str, value: str) -> list[RunRef]:
        rows = self._db.execute(
            "SELECT r.run_uuid, r.status, r.start_time FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = ? AND t.value = ? AND r.experiment_id = ? AND r.lifecycle_stage = 'active' "
            "ORDER BY r.start_time, r.run_uuid", (tag, value, self._experiment_id)).fetchall()
        return [RunRef(run_id, status, None, start or 0) for run_id, status, start in rows]

    def children(self, parent_run_id: str) -> list[RunRef]:
        rows = self._db.execute(
            "SELECT r.run_uuid, r.status, n.value, r.start_time FROM runs r "
            "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ? "
            "LEFT JOIN tags n ON n.run_uuid = r.run_uuid AND n.key = ? "
            "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active' ORDER BY r.start_time, r.run_uuid",
            (MLFLOW_PARENT_RUN_ID, parent_run_id, TRIAL_NUMBER_TAG, self._experiment_id)).fetchall()
        return [RunRef(run_id, status, int(n) if n is not None and n.isdigit() else None, start or 0)
                for run_id, status, n, start in rows]

    def run_status(self, run_id: str) -> str | None:
        row = self._db.execute(
            "SELECT status FROM runs WHERE run_uuid = ? AND experiment_id = ? AND lifecycle_stage = 'active'",
            (run_id, self._experiment_id)).fetchone()
        return None if row is None else str(row[0])

    def run_contents(self, run_id: str) -> tuple[set[str], bool]:
        params = {r[0] for r in self._db.execute("SELECT key FROM params WHERE run_uuid = ?", (run_id,))}
        metric = self._db.execute("SELECT 1 FROM latest_metrics WHERE run_uuid = ? LIMIT 1", (run_id,)).fetchone()
        return params, metric is not None

    @staticmethod
    def _check_active(db: sqlite3.Connection, run_id: str) -> None:
        row = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None or row[0] != "active":
            raise Unsupported(f"run {run_id} is gone or deleted")

    # --- artifacts --------------------------------------------------------------------------------

    def _write_artifacts(self, run: RunWrite, run_id: str, made: list[str] | None) -> None:
        """``log_text`` / ``log_artifact`` on a local artifact root: files where MLflow's local
        artifact repository puts them."""
        if run.run_id is None:
            artifact_uri = _append(self._artifact_location, run_id, "artifacts")
        else:
            row = self._db.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
            artifact_uri = row[0] if row is not None and row[0] else ""
        directory = self._local_artifact_dir(artifact_uri, required=True)
        assert directory is not None
        if made is not None:
            made.append(os.path.dirname(directory))  # <experiment root>/<run id>
        for name, text in run.texts.items():
            target = os.path.join(directory, *_relative(name).split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as handle:
                handle.write(text)
        for name, data, artifact_dir in run.files:
            target_dir = directory if not artifact_dir else os.path.join(directory, *_relative(artifact_dir).split("/"))
            os.makedirs(target_dir, exist_ok=True)
            with open(os.path.join(target_dir, _relative(os.path.basename(name))), "wb") as handle:
                handle.write(data)

    @staticmethod
    def _local_artifact_dir(artifact_uri: str, *, required: bool) -> str | None:
        parts = urlsplit(artifact_uri)
        if parts.scheme == "file" and parts.netloc in ("", "localhost"):
            return unquote(parts.path)
        if parts.scheme == "" and os.path.isabs(artifact_uri):
            return artifact_uri
        if required:
            raise Unsupported(f"artifacts go to {parts.scheme or 'a relative path'}: MLflow's artifact repositories")
        return None


def _insert(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our own names
                   f"VALUES ({', '.join(':' + c for c in columns)})", rows)


def validate_batch(metrics: Sequence[tuple[str, float, int, int]], params: Mapping[str, str],
                   tags: Mapping[str, str]) -> None:
    """MLflow's checks of a batch (``mlflow.utils.validation``), without truncating anything:
    what would not pass unchanged is ``Unsupported`` and goes to MLflow, which decides."""
    for key, value, step, timestamp in metrics:
        if (name_problem(key) or not isinstance(value, numbers.Number) or isinstance(value, bool)
                or not isinstance(timestamp, numbers.Integral) or timestamp < 0
                or not isinstance(step, numbers.Integral)):
            raise Unsupported(f"metric {key!r}")
    for key, text in params.items():
        if name_problem(key) or not isinstance(text, str) or len(text) > MAX_PARAM:
            raise Unsupported(f"param {key!r}")
    for key, text in tags.items():
        if name_problem(key) or not isinstance(text, str) or len(text) > MAX_TAG_VALUE or len(key) > MAX_KEY:
            raise Unsupported(f"tag {key!r}")


def sanitized(value: float) -> tuple[bool, float]:
    """A metric value as MLflow stores it: NaN as 0 with ``is_nan``, infinities as the largest
    doubles."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, math.copysign(sys.float_info.max, value)
    return False, float(value)


def _relative(path: str) -> str:
    norm = posixpath.normpath(path)
    if norm.startswith(("..", "/")) or norm == ".":
        raise Unsupported(f"artifact path {path!r}")
    return norm


def _append(base: str, *parts: str) -> str:
    """``mlflow.utils.uri.append_to_uri_path`` for the local paths and URIs of a SQLite store."""
    return posixpath.join(base.rstrip("/") or "/", *parts) if base else posixpath.join(*parts)


def _now_ms() -> int:
    return int(time.time() * 1000)
