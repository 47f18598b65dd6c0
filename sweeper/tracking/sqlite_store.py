"""A sweep's runs written into MLflow's SQLite store with the standard library, without mlflow.

Opening the store through MLflow costs ~1.5 s of CPU before the first row (``import mlflow``
~0.9 s, its SQL store module and engine ~0.6 s), on the same two cores the workers need: on a
sweep of 0.3 s trials that alone made tracking 1.5x slower than no tracking (benchmark B3).
Every row a sweep writes -- its experiment, the parent run and one child run per trial, their
params, tags and metrics, the ``sweep.yaml`` and trial text artifacts beside the store -- is
a plain insert or update in a handful of MLflow's tables, so here they are written with
``sqlite3`` (~0.1 s to open, ~0.2 ms a run).

They are MLflow's rows: the child rows come from the same builder as the SQLAlchemy bulk writer
(``_mlflow_bulk.child_rows``), and ``tests/test_tracking_direct.py`` writes the same sweep both
ways and compares everything MLflow reads back. The schema is internal, so this writer only
opens a store whose schema revision is the one of the empty store MLflow itself made for the
installed version (``_store_template``); anything else it does not know -- another revision, a
workspace-enabled server, an invalid name, a changed param, a remote artifact root, a deleted
experiment -- raises ``Unsupported`` with nothing written, and the caller hands the sweep to
MLflow's own client from then on.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import posixpath
import re
import shutil
import sqlite3
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from . import template as _store_template
from .bulk import ChildRun, Conflict, Metric, Param, RunTag, child_rows

MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_USER = "mlflow.user"
_TABLES = ("runs", "tags", "params", "metrics", "latest_metrics")  # child_rows' order
_NAME = re.compile(r"^[/\w.\- :]*$")  # MLflow's rule for param, metric and tag names (POSIX)
_MAX_KEY, _MAX_PARAM, _MAX_TAG, _MAX_EXPERIMENT_NAME, _MAX_EXPERIMENT_TAG = 250, 6000, 8000, 500, 20000


class Unsupported(Exception):
    """Something this writer leaves to MLflow's client; nothing of the call was written."""


class SqliteStore:
    """The few writes a sweep makes, on one SQLite MLflow store (one connection, one thread)."""

    def __init__(self, path: str, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._experiment_id: int | None = None
        self._artifact_location = ""

    @classmethod
    def open(cls, uri: str) -> SqliteStore | None:
        """The store at a ``sqlite:///`` URI -- made from the template if it does not exist --
        or None when this writer should not touch it (MLflow's client opens it instead)."""
        if not uri.startswith("sqlite:///") or sys.platform == "win32" or "?" in uri:
            return None
        if os.environ.get("SWEEPER_DIRECT_SQLITE", "1") == "0":
            return None
        if any(os.environ.get(name) for name in ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE")):
            return None
        path = uri[len("sqlite:///"):]
        try:
            expected = _store_template.known_revision()
            if expected is None:
                return None  # no template yet: MLflow makes the store, and the template
            _store_template.seed_store(path)
            if not os.path.exists(path):
                return None
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
            if revision != [(expected,)]:
                db.close()
                return None
            db.execute("PRAGMA journal_mode=WAL")  # as _tracking.tune_sqlite gives MLflow's engine
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error):
            return None
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Any:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- experiment -------------------------------------------------------------------------------

    def open_experiment(self, name: str, artifact_location: str | None, tags: Mapping[str, str]) -> str:
        """The active experiment ``name``, created (with ``tags``) if there is none."""
        if not name or not isinstance(name, str) or len(name) > _MAX_EXPERIMENT_NAME:
            raise Unsupported(f"experiment name {name!r}")
        for key, value in tags.items():
            _check_name(key)
            if len(key) > _MAX_KEY or not isinstance(value, str) or len(value) > _MAX_EXPERIMENT_TAG:
                raise Unsupported(f"experiment tag {key!r}")
        for _ in range(2):  # a sweep starting beside us may create it first
            row = self._db.execute(
                "SELECT experiment_id, lifecycle_stage, artifact_location FROM experiments "
                "WHERE workspace = 'default' AND name = ?", (name,)).fetchone()
            if row is not None:
                if row[1] != "active":
                    raise Unsupported(f"experiment {name!r} is deleted")  # MLflow restores it
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
                        artifact_location = _append(_store_template.default_artifact_root(), str(experiment_id))
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

    # --- runs -------------------------------------------------------------------------------------

    def create_run(self, start_ms: int, run_name: str, tags: Mapping[str, str],
                   params: Mapping[str, str] | None = None) -> str:
        """A RUNNING run in the experiment (as ``MlflowClient.create_run`` + params)."""
        run_id = uuid.uuid4().hex
        self._write([ChildRun(run_id, run_name, "RUNNING", start_ms, None,
                             params=[Param(k, v) for k, v in (params or {}).items()],
                             tags=[RunTag(k, v) for k, v in tags.items()])], [])
        return run_id

    def write(self, created: Sequence[ChildRun], finished: Sequence[ChildRun]) -> None:
        """``_mlflow_bulk.BulkWriter.write``, with sqlite3: all of it in one transaction, or
        nothing. ``Conflict`` if a run to finish is deleted or was logged to by someone else.
        (``create_run`` calls ``_write`` itself: this is the bulk writer's entry point, which the
        writer stops using after a failed batch without giving up this store.)"""
        self._write(created, finished)

    def _write(self, created: Sequence[ChildRun], finished: Sequence[ChildRun]) -> None:
        rows: list[list[dict[str, Any]]] = [[] for _ in _TABLES]
        for new, runs in ((True, created), (False, finished)):
            for run in runs:
                for table_rows, more in zip(rows, self._rows(run, new=new)):
                    table_rows.extend(more)
        ids = [run.run_id for run in finished]
        with self._transaction() as db:
            if ids:
                marks = ",".join("?" * len(ids))
                live = {r[0] for r in db.execute(
                    f"SELECT run_uuid FROM runs WHERE run_uuid IN ({marks}) AND lifecycle_stage = 'active'", ids)}
                if live != set(ids):
                    raise Conflict(f"runs {sorted(set(ids) - live)} are gone or deleted")
                for table in ("params", "latest_metrics"):
                    if db.execute(f"SELECT 1 FROM {table} WHERE run_uuid IN ({marks}) LIMIT 1", ids).fetchone():
                        raise Conflict(f"a run to finish already has {table}")
                db.executemany("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                               [(run.status, run.end_ms, run.run_id) for run in finished])
                db.executemany("DELETE FROM tags WHERE run_uuid = ? AND key = ?",
                               [(t["run_uuid"], t["key"]) for t in rows[1] if t["run_uuid"] in live])
            for table, table_rows in zip(_TABLES, rows):
                if table_rows:
                    columns = list(table_rows[0])
                    db.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})",
                        table_rows)

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = ()) -> None:
        """``MlflowClient.log_batch`` on an active run: new params, tags set (added or
        overwritten), metrics appended (an exact repeat kept once) and the latest of each key
        kept in ``latest_metrics`` as MLflow keeps it. The rows are ``child_rows``'."""
        if any(t.key == MLFLOW_RUN_NAME for t in tags):
            raise Unsupported("renaming a run")
        try:
            _, tag_rows, param_rows, metric_rows, latest_rows = self._rows(
                ChildRun(run_id, "", "RUNNING", 0, None, params, tags, metrics), new=False)
        except ValueError as exc:  # a tag given twice: MLflow's client decides what that means
            raise Unsupported(str(exc)) from None
        with self._transaction() as db:
            self._check_active(db, run_id)
            for p in param_rows:
                old = db.execute("SELECT value FROM params WHERE run_uuid = ? AND key = ?", (run_id, p["key"])).fetchone()
                if old is not None and old[0] != p["value"]:
                    raise Unsupported(f"param {p['key']!r} changes value")  # MLflow refuses, in its words
            db.executemany("INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (:key, :value, :run_uuid)",
                           param_rows)
            db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (:key, :value, :run_uuid)",
                           tag_rows)
            db.executemany("INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                           "VALUES (:key, :value, :timestamp, :run_uuid, :step, :is_nan)", metric_rows)
            for row in latest_rows:
                old = db.execute("SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = ?",
                                 (run_id, row["key"])).fetchone()
                if old is None or (row["step"], row["timestamp"], row["value"]) > tuple(old):
                    db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                               "VALUES (:key, :value, :timestamp, :step, :is_nan, :run_uuid)", row)

    def _rows(self, run: ChildRun, *, new: bool) -> tuple[list[dict[str, Any]], ...]:
        if self._experiment_id is None:
            raise Unsupported("no experiment opened")
        return child_rows(run, new=new, experiment_id=self._experiment_id, artifact_root=self._artifact_location,
                          validate=validate_batch, run_tag=RunTag, join=_append)

    def bulk_writer(self) -> SqliteStore:
        return self

    def set_status(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        """``set_terminated`` (with an end time) or ``update_run(status=...)`` (without)."""
        with self._transaction() as db:
            self._check_active(db, run_id)
            if end_ms is None:
                db.execute("UPDATE runs SET status = ? WHERE run_uuid = ?", (status, run_id))
            else:
                db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?", (status, end_ms, run_id))

    def children(self, parent_run_id: str) -> list[tuple[str, str, str | None]]:
        """(run id, status, ``sweeper.trial_number`` tag) of the parent's active child runs."""
        return self._db.execute(
            "SELECT r.run_uuid, r.status, n.value FROM runs r "
            "JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ? "
            "LEFT JOIN tags n ON n.run_uuid = r.run_uuid AND n.key = 'sweeper.trial_number' "
            "WHERE r.experiment_id = ? AND r.lifecycle_stage = 'active'",
            (MLFLOW_PARENT_RUN_ID, parent_run_id, self._experiment_id)).fetchall()

    @staticmethod
    def _check_active(db: sqlite3.Connection, run_id: str) -> None:
        row = db.execute("SELECT lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None or row[0] != "active":
            raise Unsupported(f"run {run_id} is gone or deleted")

    # --- artifacts --------------------------------------------------------------------------------

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        target = os.path.join(self._artifact_dir(run_id), *_relative(artifact_file).split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        directory = self._artifact_dir(run_id)
        if artifact_path:
            directory = os.path.join(directory, *_relative(artifact_path).split("/"))
        os.makedirs(directory, exist_ok=True)
        shutil.copy2(local_path, os.path.join(directory, os.path.basename(local_path)))

    def log_bytes(self, run_id: str, name: str, data: bytes, artifact_path: str | None = None) -> None:
        directory = self._artifact_dir(run_id)
        if artifact_path:
            directory = os.path.join(directory, *_relative(artifact_path).split("/"))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, _relative(name)), "wb") as handle:
            handle.write(data)

    def _artifact_dir(self, run_id: str) -> str:
        row = self._db.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None or not row[0]:
            raise Unsupported(f"run {run_id} has no artifact location")
        parts = urlsplit(row[0])
        if parts.scheme == "file" and parts.netloc in ("", "localhost"):
            return unquote(parts.path)
        if parts.scheme == "" and os.path.isabs(row[0]):
            return row[0]
        raise Unsupported(f"artifacts go to {parts.scheme}:// (MLflow's artifact repositories)")


def validate_batch(metrics: list[Any], params: list[Any], tags: list[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """MLflow's checks of a batch (``mlflow.utils.validation``), without truncating anything:
    what would not pass unchanged is ``Unsupported`` and goes to MLflow, which decides."""
    for m in metrics:
        _check_name(m.key)
        if (not isinstance(m.value, numbers.Number) or isinstance(m.value, bool)
                or not isinstance(m.timestamp, numbers.Integral) or m.timestamp < 0
                or not isinstance(m.step, numbers.Integral)):
            raise Unsupported(f"metric {m.key!r}")
    for p in params:
        _check_name(p.key)
        if not isinstance(p.value, str) or len(p.value) > _MAX_PARAM:
            raise Unsupported(f"param {p.key!r}")
    for t in tags:
        _check_name(t.key)
        if not isinstance(t.value, str) or len(t.value) > _MAX_TAG:
            raise Unsupported(f"tag {t.key!r}")
    if len({p.key for p in params}) != len(params):
        raise Unsupported("a param key is given twice")
    return metrics, params, tags


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or len(name) > _MAX_KEY or not _NAME.match(name):
        raise Unsupported(f"name {name!r}")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(("..", "/")):
        raise Unsupported(f"name {name!r}")


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
