"""A new SQLite store made from sweeper's template is the store MLflow would have made there."""

from __future__ import annotations

import sqlite3
from importlib.metadata import version

from sweeper.tracking import template as _store_template


def dump(path) -> tuple[list, tuple]:
    """The store's schema and rows, in a stable order, and its Default experiment apart."""
    with sqlite3.connect(path) as db:
        default = db.execute("SELECT name, artifact_location, lifecycle_stage, workspace FROM experiments "
                             "WHERE experiment_id = 0").fetchone()
        statements = [s for s in db.iterdump() if not s.startswith('INSERT INTO "experiments"')]
    # MLflow's migrations order a table's constraints differently from one run to the next
    # (two stores MLflow makes differ that way too): compare each statement's lines as a set
    return sorted(sorted(line.strip().rstrip(",").strip() for line in s.split("\n")) for s in statements), default


def test_a_store_from_the_template_is_the_store_mlflow_makes(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    MlflowClient("sqlite:///" + str(tmp_path / "a" / "mlflow.db")).search_experiments()
    monkeypatch.chdir(tmp_path / "b")
    assert _store_template.seed_store(str(tmp_path / "b" / "mlflow.db")) is False  # no template: never makes one
    assert _store_template.ensure_template() is not None  # MLflow makes it (MLflow's client path does this)
    assert _store_template.seed_store(str(tmp_path / "b" / "mlflow.db")) is True
    assert (tmp_path / "cache" / f"mlflow-{version('mlflow')}-empty.db").exists()

    made, default_made = dump(tmp_path / "a" / "mlflow.db")
    copied, default_copied = dump(tmp_path / "b" / "mlflow.db")
    assert copied == made
    with sqlite3.connect(tmp_path / "b" / "mlflow.db") as db:  # a store sweeper makes is a WAL store
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert default_made == ("Default", str(tmp_path / "a" / "mlruns" / "0"), "active", "default")
    assert default_copied == ("Default", str(tmp_path / "b" / "mlruns" / "0"), "active", "default")
    client = MlflowClient("sqlite:///" + str(tmp_path / "b" / "mlflow.db"))  # and MLflow uses it as is
    run = client.create_run(client.create_experiment("e")).info.run_id
    client.log_metric(run, "m", 1.0)
    assert client.get_run(run).data.metrics == {"m": 1.0}


def test_an_existing_file_is_never_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "cache"))
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"someone else's")
    assert _store_template.seed_store(str(store)) is False
    assert store.read_bytes() == b"someone else's" and list(tmp_path.iterdir()) == [store]


def test_off_switch_and_a_broken_template_leave_the_store_to_mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SWEEPER_STORE_TEMPLATE", "0")
    assert _store_template.seed_store(str(tmp_path / "off.db")) is False
    assert not (tmp_path / "cache").exists() and not (tmp_path / "off.db").exists()
    monkeypatch.delenv("SWEEPER_STORE_TEMPLATE")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f"mlflow-{version('mlflow')}-empty.db").write_bytes(b"not a database")
    assert _store_template.seed_store(str(tmp_path / "broken.db")) is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing half-made left
