"""What the writer asks of an MLflow store, whichever way it is written.

    Writer --RunWrite / RunRef--> SqliteStore  (sqlite3 into MLflow's tables: the default store)
                              --> ClientStore  (MLflow's public client: every store)

A ``RunWrite`` creates a run (``run_id`` None) or adds to one, as ``create_run`` +
``log_batch`` + artifacts + ``set_terminated`` would, the final status always last: a run
whose status is final holds everything it will hold. ``open_store`` picks the path (and says
in sweeper's words why a SQLite file cannot be a store). Stdlib only at import.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RunWrite:
    run_id: str | None  # None: create the run
    run_name: str
    start_ms: int
    status: str  # RUNNING: created (or left) running; else the final status, written last
    end_ms: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, step, ms
    texts: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, bytes, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class RunRef:
    """A run found in the store: its id, status and (children) trial number."""

    run_id: str
    status: str
    number: int | None = None
    start_ms: int = 0


class PartialWrite(Exception):
    """A run was created but what followed failed: write the rest to ``run_id``, never create
    it again."""

    def __init__(self, run_id: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.run_id = run_id
        self.cause = cause


class StoreProblem(Exception):
    """A store that cannot be used, said in sweeper's words (with what to do)."""


def check_sqlite_file(path: str) -> None:
    """A SQLite store's file must be a SQLite database, or its directory must take a new one:
    MLflow's own errors for these are lines of SQL."""
    if not os.path.exists(path):
        directory = os.path.dirname(os.path.abspath(path))
        try:  # a new store: its directory must take files (the database, its journal, artifacts)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".sweeper-probe-"):
                pass
        except OSError as exc:
            raise StoreProblem(f"cannot make the store {path}: {directory} does not take new files "
                               f"({exc.strerror or exc}); give the sweep a store in a writable directory "
                               "(tracking.uri, --tracking-uri or MLFLOW_TRACKING_URI)") from None
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreProblem(f"{path} is not a readable SQLite database ({exc}); move it away, or give the "
                           "sweep another store (tracking.uri, --tracking-uri or MLFLOW_TRACKING_URI)") from None


def open_store(uri: str, direct_sqlite: bool) -> Store:
    """The direct path for a SQLite store at a verified revision, else MLflow's client."""
    from . import template as _template
    from .client_store import ClientStore
    from .sqlite_store import SqliteStore, sqlite_path

    path = sqlite_path(uri)
    if path is not None:
        check_sqlite_file(path)
        if not os.path.exists(path):
            _template.ensure_template()  # once per MLflow version (imports mlflow): the new store is a copy
    if direct_sqlite:
        store = SqliteStore.open(uri)
        if store is not None:
            return store
    return ClientStore.open(uri)


class Store(Protocol):
    #: How it writes, for messages: "direct sqlite" or "MLflow client".
    kind: str
    #: ``write`` takes many runs in one all-or-nothing transaction (else one run per call).
    transactional: bool

    def open_experiment(self, name: str, artifact_location: str | None, tags: Mapping[str, str]) -> str: ...

    def probe(self, params: Sequence[str], metrics: Sequence[str], tags: Mapping[str, str]) -> None:
        """Create a run with a param and a metric of each name, then delete it."""
        ...

    def find_runs(self, tag: str, value: str) -> list[RunRef]:
        """Active runs of the experiment whose tag ``tag`` is ``value``, oldest first."""
        ...

    def children(self, parent_run_id: str) -> list[RunRef]: ...

    def run_status(self, run_id: str) -> str | None:
        """The status of an active run of the experiment; None if there is none."""
        ...

    def run_contents(self, run_id: str) -> tuple[set[str], bool]:
        """The run's param keys, and whether it holds any metric."""
        ...

    def write(self, runs: Sequence[RunWrite]) -> list[str]:
        """Write ``runs``; their run ids, in order."""
        ...

    def set_status(self, run_id: str, status: str, end_ms: int | None = None) -> None: ...

    def delete_run(self, run_id: str) -> None: ...

    def close(self) -> None: ...
