"""Shared fixtures: one real MLflow SQLite store per test session (creating one costs ~3.6 s),
a fresh experiment per test, and a check that no sweep leaves processes behind."""

from __future__ import annotations

import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # so workers can import tests/_objectives.py as `_objectives`


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="also run the soak tests (many minutes)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak tests run only when asked for, so the plain ``python -m pytest`` stays the whole suite
    minus them and ``-m 'not slow'`` still means what it says."""
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def environment_kept():
    """Each test gets the environment the one before it started with: MLflow's
    ``set_tracking_uri`` writes ``MLFLOW_TRACKING_URI`` into it, and a CLI subprocess started by a
    later test would otherwise write its runs into that store instead of its own."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


@pytest.fixture(scope="session", autouse=True)
def sweeper_cache(tmp_path_factory: pytest.TempPathFactory):
    """The store template (``sweeper.tracking.template``) goes to a cache of this session's own,
    inherited by every CLI subprocess, not to the user's ~/.cache. It is made up front, as the
    first sweep on a machine makes it, so every sweep's MLflow writer is the direct SQLite one
    (``writer`` runs a test through MLflow's client too), whatever order the tests run in."""
    before = os.environ.get("SWEEPER_CACHE_DIR")
    os.environ["SWEEPER_CACHE_DIR"] = str(tmp_path_factory.mktemp("sweeper-cache"))
    from sweeper.tracking import template as _store_template

    _store_template.template()
    yield Path(os.environ["SWEEPER_CACHE_DIR"])
    if before is None:
        os.environ.pop("SWEEPER_CACHE_DIR", None)
    else:
        os.environ["SWEEPER_CACHE_DIR"] = before


@pytest.fixture(params=["client", "direct"])
def writer(request, monkeypatch) -> str:
    """Which way a sweep on a SQLite store is written: MLflow's public client or the direct
    sqlite3 path (``sweeper.tracking.sqlite_store``); CLI subprocesses inherit it."""
    if request.param == "client":
        monkeypatch.setenv("SWEEPER_DIRECT_SQLITE", "0")
    else:
        monkeypatch.delenv("SWEEPER_DIRECT_SQLITE", raising=False)
    return request.param


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "sqlite:///" + str(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture
def experiment() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def helper_pids() -> set[int]:
    """Processes multiprocessing keeps for the whole session by design (not sweep leftovers)."""
    pids = set()
    forkserver_pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    tracker_pid = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    for pid in (forkserver_pid, tracker_pid):
        if pid:
            pids.add(pid)
    return pids


def leftover_children() -> list[psutil.Process]:
    """Live descendants of this test process other than the forkserver and resource tracker
    (workers started through the forkserver are its children, so ``recursive`` finds them)."""
    keep = helper_pids()
    alive = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if child.pid not in keep and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            continue
    return alive


def wait_no_leftovers(timeout_s: float = 5.0) -> list[psutil.Process]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        alive = leftover_children()
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def children_runs(client, parent_run_id: str):
    parent = client.get_run(parent_run_id)
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
        max_results=1000,
    )


def start_mlflow_server(store_uri: str, port: int, cwd: Path, timeout_s: float = 90.0):
    """A real ``mlflow server`` on loopback over ``store_uri`` (its artifacts under ``cwd``), up
    and answering /health; stop it with ``sweeper.ui.stop``."""
    import subprocess
    import time
    import urllib.request

    from sweeper.ui import server_command, server_env, stop

    process = subprocess.Popen(server_command("127.0.0.1", port), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, env=server_env(store_uri),
                               cwd=cwd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return process
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.25)
    stop(process)
    raise AssertionError(f"mlflow server did not start within {timeout_s:.0f}s")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """An ``mlflow server`` (HTTP) for a test module, on a SQLite store of its own: ``(uri, directory)``.
    Per module, not per session: tests that check no process outlives a sweep must not find it."""
    from sweeper.ui import free_port, stop

    directory = tmp_path_factory.mktemp("mlflow-server")
    port = free_port("127.0.0.1")
    process = start_mlflow_server(f"sqlite:///{directory}/server.db", port, directory)
    yield f"http://127.0.0.1:{port}", directory
    stop(process)
