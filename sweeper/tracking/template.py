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
the template the first time does. The template's schema revision is also what
``_mlflow_sqlite`` requires of a store before it writes one without MLflow.
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
        shutil.copyfile(template(), staged)
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


def known_revision() -> str | None:
    """The schema revision (alembic) of the installed MLflow's empty store, read from the
    template; None if there is no template yet or it cannot be read."""
    try:
        path = _template_path()
        if not path.exists():
            return None
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except Exception:  # noqa: BLE001 - no known revision: MLflow opens the store
        return None
    return rows[0][0] if len(rows) == 1 else None


def template() -> Path:
    """The empty, migrated store for the installed MLflow, made on first use."""
    path = _template_path()
    if path.exists():
        return path
    from mlflow import MlflowClient

    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        client = MlflowClient(tracking_uri="sqlite:///" + staged.as_posix())
        client.search_experiments(max_results=1)  # creates and migrates it
        client._tracking_client.store.engine.dispose()
        os.replace(staged, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(staged)
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
