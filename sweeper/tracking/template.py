"""A new SQLite MLflow store is copied from an empty, migrated template, not migrated again.

MLflow makes a SQLite store by running its schema migrations: ~0.9 s of CPU here (opening a
new store takes 1.5 s, an existing one 0.6 s), paid at the start of every sweep in a new
directory, on cores the workers need. For one MLflow version that new store is the same file
every time but for one row -- the Default experiment's artifact location and timestamps (a dump
of two new stores differs only there) -- so the first one is made by MLflow into sweeper's
cache and each later one is a copy of it, with that row set the way MLflow sets it.

The cache: ``$SWEEPER_CACHE_DIR``, else ``$XDG_CACHE_HOME/sweeper``, else ``~/.cache/sweeper``;
one file per MLflow version. ``SWEEPER_STORE_TEMPLATE=0`` turns this off. Any failure leaves
things as they were without it: MLflow creates the store. Copying needs no mlflow import; making
the template (``ensure_template``, on MLflow's client path) does. The template is switched to
WAL journaling, so the stores sweeper makes are WAL stores (MLflow and ``mlflow ui`` read them
as usual); a store sweeper did not make keeps its journal mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("SWEEPER_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sweeper"


def seed_store(path: str) -> bool:
    """Make the SQLite store at ``path`` from the template, unless something is there already;
    True if it did. Never replaces a file: a store made meanwhile by another process wins."""
    if os.environ.get("SWEEPER_STORE_TEMPLATE", "1") == "0" or os.path.exists(path):
        return False
    staged = f"{path}.sweeper-{os.getpid()}.tmp"
    try:
        source = _template_path()
        if not source.exists():
            return False  # MLflow makes this store (and, on its client path, the template)
        shutil.copyfile(source, staged)
        _adopt(staged)
        os.link(staged, path)  # fails if ``path`` exists by now
        return True
    except Exception:  # noqa: BLE001 - MLflow makes the store instead
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(staged)


def _template_path() -> Path:
    from importlib.metadata import version

    return cache_dir() / f"mlflow-{version('mlflow')}-empty.db"


def ensure_template() -> Path | None:
    """The empty, migrated store for the installed MLflow, made by MLflow on first use (imports
    mlflow); None when it cannot be made or ``SWEEPER_STORE_TEMPLATE=0``."""
    if os.environ.get("SWEEPER_STORE_TEMPLATE", "1") == "0":
        return None
    try:
        return template()
    except Exception:  # noqa: BLE001 - no template: MLflow migrates each new store itself
        return None


def template() -> Path:
    """``ensure_template``, raising what went wrong."""
    path = _template_path()
    if path.exists():
        return path
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        MlflowClient(tracking_uri="sqlite:///" + staged.as_posix()).search_experiments(max_results=1)  # migrates
        with contextlib.closing(sqlite3.connect(staged)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: every copy is a WAL store
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.replace(staged, path)
    finally:
        for leftover in (staged, Path(f"{staged}-wal"), Path(f"{staged}-shm")):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
    return path


def _adopt(path: str) -> None:
    """Give the copied store's Default experiment what MLflow would give a store made here
    and now: ``<artifact root>/0``, the root being MLflow's default (``./mlruns`` from the
    current directory, or a tracking server's own root), and the current time."""
    location = default_artifact_root().rstrip("/") + "/0"
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        updated = db.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, last_update_time = ? "
            "WHERE experiment_id = 0 AND name = 'Default'", (location, now, now),
        ).rowcount
        if updated != 1 or db.execute("SELECT count(*) FROM experiments").fetchone()[0] != 1:
            raise ValueError(f"{path} is not an empty MLflow store")


def default_artifact_root() -> str:
    """MLflow's artifact root for a store opened here without one: a tracking server's own
    (``_MLFLOW_SERVER_ARTIFACT_ROOT``), else ``./mlruns`` made absolute (as
    ``mlflow.utils.uri.resolve_uri_if_local`` does on POSIX)."""
    root = os.environ.get("_MLFLOW_SERVER_ARTIFACT_ROOT") or "./mlruns"
    if "://" in root or root.startswith("file:"):
        return root
    return os.path.abspath(root)
