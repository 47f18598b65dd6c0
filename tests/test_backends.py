"""The backend's Manager outbox: several waiting messages come back in one round trip, in order."""

from __future__ import annotations

import queue
import time

import pytest

from sweeper.workers.local import SweepManager
from sweeper.workers.messages import WorkerReady


def test_the_outbox_hands_over_every_waiting_message_at_once_in_order():
    with SweepManager() as manager:
        outbox = manager.Outbox()
        for worker_id in range(5):
            outbox.put(WorkerReady(worker_id, "h", 100 + worker_id))
        assert [m.worker_id for m in outbox.get_all(1.0)] == [0, 1, 2, 3, 4]
        t0 = time.monotonic()
        with pytest.raises(queue.Empty):
            outbox.get_all(0.2)  # nothing waiting: Empty after the timeout, as Queue.get
        assert time.monotonic() - t0 >= 0.15
        outbox.put(WorkerReady(7, "h", 1))
        assert outbox.get(timeout=1.0) == WorkerReady(7, "h", 1)  # the Manager queue it is


def test_receive_returns_batched_messages_one_by_one():
    from sweeper.workers.local import LocalBackend

    backend = LocalBackend("spawn")
    backend.start(0)
    try:
        for worker_id in range(3):
            backend._outbox.put(WorkerReady(worker_id, "h", 1))
        assert [backend.receive(1.0).worker_id for _ in range(3)] == [0, 1, 2]
        assert backend.receive(0.05) is None
    finally:
        backend.close()


def test_the_forkserver_preloads_the_module_workers_start_in():
    """The preload names the worker module (renamed, the forkserver would skip it silently and
    every worker would import it cold)."""
    import importlib

    from sweeper.workers.local import LocalBackend
    from sweeper.workers.process import worker_main

    backend = LocalBackend("forkserver", preload=["sklearn.svm"])
    assert backend._preload[0] == worker_main.__module__
    assert importlib.import_module(backend._preload[0]).worker_main is worker_main
    assert backend._preload[1:] == ["sklearn.svm"]
