"""The direct sqlite3 path (``sweeper.tracking.sqlite_store``): only for the schema revisions it
was verified on, never importing mlflow, and handing the rest of a sweep to MLflow's client --
with nothing lost or written twice -- on any ``sqlite3.Error`` or anything it does not know.
(What it writes is compared with MLflow's client in ``tests/test_store_contract.py``.)"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, children_runs
from test_store_contract import record, start, sweep_open

from sweeper.tracking import sqlite_store, template as _template
from sweeper.tracking.client_store import ClientStore
from sweeper.tracking.frames import Close, TrialEnd
from sweeper.tracking.sqlite_store import VERIFIED_REVISIONS, SqliteStore
from sweeper.tracking.writer import Writer


def empty_store_revision() -> str:
    """The schema revision of the empty store the installed MLflow makes."""
    with sqlite3.connect(_template.template()) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_the_installed_mlflow_is_a_verified_revision():
    """A new MLflow release changes this: run tests/test_store_contract.py on it, then add its
    revision to VERIFIED_REVISIONS (until then, sweeps use MLflow's client, and work)."""
    assert empty_store_revision() in VERIFIED_REVISIONS


def test_a_store_stamped_with_another_revision_goes_to_mlflows_client(tmp_path):
    stamped = tmp_path / "other.db"
    shutil.copyfile(_template.template(), stamped)
    with sqlite3.connect(stamped) as db:
        db.execute("UPDATE alembic_version SET version_num = 'f00dfeed1234'")
    assert SqliteStore.open(f"sqlite:///{stamped}") is None
    assert SqliteStore.open(f"sqlite:///{tmp_path}/new.db") is not None  # made from the template
    os.environ["MLFLOW_ENABLE_WORKSPACES"] = "true"
    try:
        assert SqliteStore.open(f"sqlite:///{tmp_path}/new.db") is None
    finally:
        del os.environ["MLFLOW_ENABLE_WORKSPACES"]


def drive(writer: Writer, numbers, now: int, *, clock: list[float]) -> None:
    """Trials start, are written RUNNING, then end; one tick per trial (one batch each)."""
    for number in numbers:
        writer.take(start(number, now))
        clock[0] += 1
        writer.tick()
        writer.take(TrialEnd(record(number, now, "FAILED" if number == 3 else "FINISHED")))
        clock[0] += 1
        writer.tick()


def children_by_trial(uri: str, parent: str) -> dict[int, list]:
    from mlflow import MlflowClient

    found: dict[int, list] = {}
    for run in children_runs(MlflowClient(uri), parent):
        found.setdefault(int(run.data.tags["sweeper.trial_number"]), []).append(run)
    return found


def test_an_mlflow_whose_revision_is_not_verified_runs_the_sweep_through_its_client(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "VERIFIED_REVISIONS", {"0123456789ab": "some other MLflow"})
    uri, clock = f"sqlite:///{tmp_path}/mlflow.db", [0.0]
    writer = Writer(sweep_open(uri, True, "k", "e"), clock=lambda: clock[0], sleep=lambda s: None)
    assert writer.open().error is None
    assert isinstance(writer.store, ClientStore)
    drive(writer, range(4), int(time.time() * 1000), clock=clock)
    assert writer.close(Close("FINISHED", {}, {})).failures == ()
    found = children_by_trial(uri, writer.parent_run_id)
    assert sorted(found) == [0, 1, 2, 3] and all(len(runs) == 1 for runs in found.values())
    assert [found[n][0].info.status for n in range(4)] == ["FINISHED", "FINISHED", "FINISHED", "FAILED"]


@pytest.mark.parametrize("fail_at", [2, 5])  # a batch of starts, a batch of ends
def test_a_sqlite_error_mid_sweep_hands_the_rest_to_the_client_with_nothing_lost_or_doubled(
        tmp_path, monkeypatch, fail_at):
    """The ``fail_at``-th batch's transaction runs its inserts, then the database fails: it
    rolls back, and MLflow's client writes that batch and the rest of the sweep."""
    calls = [-1000]  # armed once the store is open
    original = SqliteStore._apply

    def failing(db, rows, updates):
        calls[0] += 1
        original(db, rows, updates)
        if calls[0] == fail_at:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(SqliteStore, "_apply", staticmethod(failing))
    uri, clock = f"sqlite:///{tmp_path}/mlflow.db", [0.0]
    writer = Writer(sweep_open(uri, True, "k", "e"), clock=lambda: clock[0], sleep=lambda s: None)
    assert writer.open().error is None
    assert isinstance(writer.store, SqliteStore)
    calls[0] = 0  # the sweep's batches from here on
    drive(writer, range(6), int(time.time() * 1000), clock=clock)
    closed = writer.close(Close("FINISHED", {"sweeper.outcome": "finished"}, {}))
    assert isinstance(writer.store, ClientStore) and closed.failures == ()
    found = children_by_trial(uri, writer.parent_run_id)
    assert sorted(found) == list(range(6))
    assert all(len(runs) == 1 for runs in found.values()), {n: len(r) for n, r in found.items()}
    assert {n: runs[0].info.status for n, runs in found.items()} == {
        0: "FINISHED", 1: "FINISHED", 2: "FINISHED", 3: "FAILED", 4: "FINISHED", 5: "FINISHED"}
    assert all(runs[0].data.params["kernel"] == "rbf" and "duration_s" in runs[0].data.metrics
               for runs in found.values())
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # nothing half-written: one run per trial and the parent
        assert db.execute("SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'").fetchone()[0] == 7


def test_what_the_direct_path_does_not_know_mlflow_decides_with_nothing_lost_or_doubled(tmp_path):
    """A metric name outside MLflow's rule: the direct path writes none of its batch and hands
    the store to MLflow's client, whose verdict stands (refused, reported, spooled); every other
    trial is one child run."""
    uri, clock = f"sqlite:///{tmp_path}/mlflow.db", [0.0]
    spec = sweep_open(uri, True, "k", "e")
    spec = type(spec)(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__},
                         "spool_path": str(tmp_path / "spool.jsonl")})
    writer = Writer(spec, clock=lambda: clock[0], sleep=lambda s: None)
    assert writer.open().error is None
    now = int(time.time() * 1000)
    for number in range(4):
        bad = record(number, now)
        if number == 2:
            bad.metrics.append(("bad name!", 1.0, 0, now))
        writer.take(start(number, now))
        writer.take(TrialEnd(bad))
        clock[0] += 1
        writer.tick()
    closed = writer.close(Close("FINISHED", {}, {}))
    assert isinstance(writer.store, ClientStore)
    assert len(closed.failures) == 1 and closed.failures[0].startswith("record trial 2: ")
    assert "Invalid value \"bad name!\"" in closed.failures[0]  # MLflow's own words, whole
    found = children_by_trial(uri, writer.parent_run_id)
    assert all(len(runs) == 1 for runs in found.values()) and sorted(found) == [0, 1, 2, 3]
    assert found[2][0].info.status == "RUNNING"  # its record is in the spool; the rerun writes it
    assert "record trial 2" in (tmp_path / "spool.jsonl").read_text()


def test_the_writer_never_imports_mlflow_on_a_verified_store(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_store_contract import record, start, sweep_open
        from sweeper.tracking.frames import Close, TrialEnd
        from sweeper.tracking.writer import Writer
        writer = Writer(sweep_open("sqlite:///{tmp_path}/mlflow.db", True, "k", "e"))
        assert writer.open().error is None
        now = int(time.time() * 1000)
        writer.take(start(0, now)); writer.take(TrialEnd(record(0, now)))
        assert writer.close(Close("FINISHED", {{}}, {{}})).failures == ()
        print(type(writer.store).__name__, sorted({{m.split(".")[0] for m in sys.modules}} & {{"mlflow", "sqlalchemy", "alembic"}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SqliteStore []"


def test_stores_sweeper_makes_are_wal_and_a_store_mlflow_made_keeps_its_journal_mode(tmp_path):
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{tmp_path}/theirs.db").search_experiments()  # MLflow's own store
    for name in ("theirs", "ours"):
        writer = Writer(sweep_open(f"sqlite:///{tmp_path}/{name}.db", True, "k", "e"))
        assert writer.open().error is None and isinstance(writer.store, SqliteStore)
        writer.close(Close("FINISHED", {}, {}))
    modes = {}
    for name in ("theirs", "ours"):
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            modes[name] = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert modes == {"theirs": "delete", "ours": "wal"}
