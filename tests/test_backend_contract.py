"""What every backend does, driven directly with scripted messages (no coordinator): written
against the ``Backend`` protocol only, so a new backend joins by adding a factory to BACKENDS.

Local processes run under forkserver and spawn; inline threads cannot die alone or ignore a
signal, so the cases about that are marked for process backends only.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _objectives import ExitOnLoad
from conftest import wait_no_leftovers

from sweeper.workers.backend import RESTART_BUDGET, Backend
from sweeper.workers.inline import InlineBackend
from sweeper.workers.local import LocalBackend
from sweeper.workers.messages import (
    PruneDecision,
    Report,
    RunTrial,
    ShouldPrune,
    Suggest,
    Suggestion,
    TrialEnv,
    TrialEnvRequest,
    TrialFinished,
    UserAttr,
    WorkerLost,
    WorkerReady,
)
from sweeper.workers.shared import segments_in_use

pytestmark = pytest.mark.timeout(90)

#: name -> (factory taking by-value objectives, whose workers are processes)
BACKENDS: dict[str, tuple[Callable[..., Backend], bool]] = {
    "local-forkserver": (lambda objectives=None: LocalBackend("forkserver", objectives=objectives), True),
    "local-spawn": (lambda objectives=None: LocalBackend("spawn", objectives=objectives), True),
    "inline": (lambda objectives=None: InlineBackend(objectives), False),
    # a LocalCluster of 2 one-thread worker processes (dask imported only when it runs)
    "dask-local": (lambda objectives=None: __import__("sweeper.workers.dask", fromlist=["*"]).backend_for_cluster(
        "local:2", objectives=objectives), True),
}
#: Longest a cancelled worker's loss may take past its grace period.
CANCEL_BOUND_S = 5.0


@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.slow) if k.startswith("dask") else k for k in sorted(BACKENDS)])
def kind(request) -> str:
    return request.param


@pytest.fixture
def make(kind):
    made: list[Backend] = []

    def factory(objectives: dict[str, Any] | None = None) -> Backend:
        backend = BACKENDS[kind][0](objectives)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close(kill=True)


def processes_only(kind: str) -> None:
    if not BACKENDS[kind][1]:
        pytest.skip("threads of this process cannot die alone or ignore a signal")


def run(number: int, objective: str, params: dict[str, Any] | None = None, **kwargs: Any) -> RunTrial:
    return RunTrial(number, objective, params or {}, kwargs)


def drive(backend: Backend, until: Callable[[Any], bool], timeout_s: float = 30.0) -> list[Any]:
    """Every message until ``until(message)``, answering questions as a coordinator would."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = backend.receive(0.1)
        if message is None:
            continue
        seen.append(message)
        if isinstance(message, Suggest):
            backend.send(message.worker_id, Suggestion(message.trial_number, message.name, _first(message.distribution)))
        elif isinstance(message, ShouldPrune):
            backend.send(message.worker_id, PruneDecision(message.trial_number, False))
        elif isinstance(message, TrialEnvRequest):
            backend.send(message.worker_id, TrialEnv(message.trial_number, {}))
        if until(message):
            return seen
    raise AssertionError(f"nothing matched within {timeout_s}s; saw {seen}")


def _first(distribution: str) -> Any:
    data = json.loads(distribution)
    attributes = data["attributes"]
    return attributes["choices"][0] if "choices" in attributes else attributes["low"]


def count(kind: type, n: int) -> Callable[[Any], bool]:
    """``until`` for ``drive``: true at the n-th message of that kind."""
    seen = [0]

    def enough(message: Any) -> bool:
        seen[0] += isinstance(message, kind)
        return seen[0] >= n

    return enough


def ready(backend: Backend, n: int) -> dict[int, WorkerReady]:
    return {m.worker_id: m for m in drive(backend, count(WorkerReady, n)) if isinstance(m, WorkerReady)}


def test_each_slot_says_ready_once_with_where_it_runs(make, kind):
    backend = make()
    backend.start(2)
    found = ready(backend, 2)
    assert sorted(found) == [0, 1]
    for message in found.values():
        assert message.host == socket.gethostname()
        assert (message.pid != os.getpid()) == BACKENDS[kind][1]
    assert backend.receive(0.3) is None  # once, not again


def test_a_trial_runs_and_its_one_result_comes_back(make):
    backend = make()
    backend.start(1)
    ready(backend, 1)
    backend.send(0, run(7, "_objectives:quadratic", {"x": 3.0}))
    finished = drive(backend, lambda m: isinstance(m, TrialFinished))[-1]
    assert (finished.worker_id, finished.trial_number, finished.state, finished.values) == (0, 7, "complete", (1.0,))
    assert backend.receive(0.2) is None


def test_a_worker_s_messages_arrive_in_the_order_it_sent_them(make):
    backend = make()
    backend.start(1)
    ready(backend, 1)
    backend.send(0, run(0, "_objectives:define_by_run"))
    seen = drive(backend, lambda m: isinstance(m, TrialFinished))
    # (TrialEnvRequest comes first where the objective's process loaded mlflow: not here)
    kinds = [type(m).__name__ for m in seen if not isinstance(m, TrialEnvRequest)]
    assert kinds == ["Suggest", "Suggest", "UserAttr"] + ["Report", "ShouldPrune"] * 4 + ["TrialFinished"]
    assert [m.step for m in seen if isinstance(m, Report)] == [0, 1, 2, 3]
    assert [m for m in seen if isinstance(m, UserAttr)][0].value == "linear"


def test_a_worker_that_dies_mid_trial_is_lost_after_what_it_sent_and_replaced(make, kind):
    processes_only(kind)
    backend = make()
    backend.start(1)
    first = ready(backend, 1)[0]
    backend.send(0, run(0, "_objectives:reports_then_dies", steps=3))
    seen = drive(backend, lambda m: isinstance(m, WorkerReady))
    assert [type(m).__name__ for m in seen] == ["Report", "Report", "Report", "WorkerLost", "WorkerReady"]
    lost, replacement = seen[3], seen[4]
    assert lost.worker_id == 0 and lost.replaced and "exited (code 7)" in lost.reason
    assert replacement.worker_id == 0 and replacement.pid != first.pid
    backend.send(0, run(1, "_objectives:quadratic", {"x": 2.0}))  # the replacement serves
    assert drive(backend, lambda m: isinstance(m, TrialFinished))[-1].values == (0.0,)


@pytest.mark.parametrize("objective", ["hang", "hang_ignoring_sigterm"])
def test_cancel_ends_a_hung_trial_within_its_grace_and_a_bound(make, kind, objective):
    if objective == "hang_ignoring_sigterm":
        processes_only(kind)
    backend = make()
    backend.start(1)
    ready(backend, 1)
    backend.send(0, run(0, f"_objectives:{objective}", sleep_s=3.0) if objective == "hang" else run(0, f"_objectives:{objective}"))
    grace_s = 0.5
    time.sleep(0.2)  # the trial is running
    cancelled = time.monotonic()
    backend.cancel(0, grace_s)
    seen = drive(backend, lambda m: isinstance(m, WorkerLost), timeout_s=grace_s + CANCEL_BOUND_S)
    assert time.monotonic() - cancelled < grace_s + CANCEL_BOUND_S
    assert not any(isinstance(m, TrialFinished) for m in seen)
    assert seen[-1].worker_id == 0 and seen[-1].replaced
    assert drive(backend, lambda m: isinstance(m, WorkerReady))[-1].worker_id == 0  # replaced


def test_a_slot_that_dies_before_it_is_ready_is_given_up_after_the_restart_budget(make, kind):
    processes_only(kind)
    backend = make({"dies on load (by value)": pickle.dumps(ExitOnLoad())})
    backend.start(1)
    seen = drive(backend, lambda m: isinstance(m, WorkerLost) and not m.replaced, timeout_s=60)
    assert all(isinstance(m, WorkerLost) and m.worker_id == 0 for m in seen)
    assert len(seen) == RESTART_BUDGET and [m.replaced for m in seen] == [True] * (RESTART_BUDGET - 1) + [False]
    assert "exited (code 3)" in seen[-1].reason
    assert backend.receive(1.0) is None  # never an endless loop


def test_shared_data_arrives_once_not_with_every_message(make):
    backend = make()
    X = np.arange(500_000, dtype=np.float64)  # 4 MB
    before = segments_in_use()
    shared = backend.share({"X": X})
    assert shared["X"] is X or len(pickle.dumps(shared)) < 10_000  # a handle, or the very object
    backend.start(2)
    ready(backend, 2)
    numbers = iter(range(4))
    for slot in (0, 1):
        backend.send(slot, run(next(numbers), "_objectives:array_sum", **shared))

    def next_trial(message: Any) -> bool:  # each slot gets its next trial when it is free
        if isinstance(message, TrialFinished):
            number = next(numbers, None)
            if number is not None:
                backend.send(message.worker_id, run(number, "_objectives:array_sum", **shared))
        return done(message)

    done = count(TrialFinished, 4)
    results = [m for m in drive(backend, next_trial) if isinstance(m, TrialFinished)]
    assert sorted(m.trial_number for m in results) == [0, 1, 2, 3]
    assert {m.values for m in results} == {(float(X.sum()),)}
    backend.close()
    assert segments_in_use() == before


def test_close_leaves_no_process_behind(make):
    backend = make()
    backend.start(2)
    ready(backend, 2)
    backend.send(0, run(0, "_objectives:quadratic", {"x": 1.0}))
    drive(backend, lambda m: isinstance(m, TrialFinished))
    backend.close()
    backend.close()  # idempotent
    assert wait_no_leftovers() == []
