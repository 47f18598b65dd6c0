"""``serve``, the worker loop a remote engine runs as a task: it needs no process of its own,
no pickle on the wire, and leaves when its lifeline says the coordinator is gone."""

from __future__ import annotations

import pickle
import queue
import threading
from typing import Any

import pytest
from _objectives import UNPICKLED, CountsUnpickling

from sweeper.workers.messages import (
    RunTrial,
    Shutdown,
    TrialEnv,
    TrialEnvRequest,
    TrialFinished,
    WorkerReady,
    from_wire,
    to_wire,
)
from sweeper.workers.serve import LIFELINE_POLL_S, serve

pytestmark = pytest.mark.timeout(30)


class WireQueue:
    """A channel that carries only the plain-list wire form, as msgpack or JSON would."""

    def __init__(self) -> None:
        self._queue: queue.Queue[list[Any]] = queue.Queue()

    def put(self, item: Any) -> None:
        self._queue.put(pickle.loads(pickle.dumps(to_wire(item))))  # nothing but plain data crosses

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return from_wire(self._queue.get(block, timeout))


def start(lifeline=None, **kwargs: Any) -> tuple[WireQueue, WireQueue, threading.Thread]:
    inbox, outbox = WireQueue(), WireQueue()
    thread = threading.Thread(target=serve, args=(3, inbox, outbox, lifeline), kwargs=kwargs, daemon=True)
    thread.start()
    assert isinstance(outbox.get(timeout=10), WorkerReady)
    return inbox, outbox, thread


def result(inbox: WireQueue, outbox: WireQueue) -> TrialFinished:
    """The trial's result (where this process loaded mlflow, its environment is asked for first)."""
    while True:
        message = outbox.get(timeout=10)
        if isinstance(message, TrialEnvRequest):
            inbox.put(TrialEnv(message.trial_number, {}))
        else:
            return message


def test_serve_runs_trials_over_a_wire_form_channel_until_shutdown():
    inbox, outbox, thread = start()
    inbox.put(RunTrial(0, "_objectives:quadratic", {"x": 5.0}, {}))
    finished = result(inbox, outbox)
    assert isinstance(finished, TrialFinished) and finished.values == (9.0,) and finished.worker_id == 3
    inbox.put(Shutdown())
    thread.join(10)
    assert not thread.is_alive()


def test_serve_leaves_when_its_lifeline_says_the_coordinator_is_gone():
    alive = threading.Event()
    alive.set()
    inbox, outbox, thread = start(lifeline=alive.is_set)
    alive.clear()
    thread.join(LIFELINE_POLL_S * 3 + 1)
    assert not thread.is_alive()


def test_an_objective_sent_by_value_is_unpickled_once_per_worker():
    import cloudpickle

    before = UNPICKLED["count"]
    inbox, outbox, thread = start(objectives={"counted (by value)": cloudpickle.dumps(CountsUnpickling())})
    for number in range(3):
        inbox.put(RunTrial(number, "counted (by value)", {}, {}))
        assert result(inbox, outbox).values == (float(before + 1),)
    inbox.put(Shutdown())
    thread.join(10)


def test_an_objective_that_cannot_be_unpickled_fails_each_trial_with_why():
    inbox, outbox, thread = start(objectives={"broken (by value)": b"not a pickle"})
    for number in range(2):
        inbox.put(RunTrial(number, "broken (by value)", {}, {}))
        finished = result(inbox, outbox)
        assert finished.state == "fail" and "could not be unpickled in this worker" in finished.error
        assert "UnpicklingError" in finished.error
    inbox.put(Shutdown())
    thread.join(10)
