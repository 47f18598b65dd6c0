"""Trials in threads of this process: for debuggers (``breakpoint()`` works) and quick runs.

Same messages and worker loop as the process backend, over plain ``queue.Queue`` channels. A
thread cannot be killed: a cancelled trial's thread is abandoned (its later messages are
dropped by the coordinator, which knows the trial ended) and a fresh thread takes its slot.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Mapping
from typing import Any

from .messages import FromBackend, RunTrial, Shutdown, ToWorker, WorkerLost, WorkerReady
from .worker import run_trial

#: How long ``close`` waits for each thread to leave.
JOIN_TIMEOUT_S = 5.0


class InlineBackend:
    """Worker threads in this process (``Backend``)."""

    name = "inline"

    def __init__(self) -> None:
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._inboxes: dict[int, queue.Queue[Any]] = {}
        self._threads: dict[int, threading.Thread] = {}

    def start(self, n_workers: int) -> None:
        for worker_id in range(n_workers):
            self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> None:
        inbox: queue.Queue[Any] = queue.Queue()
        thread = threading.Thread(
            target=_inline_worker, args=(worker_id, inbox, self._outbox),
            name=f"sweeper-inline-{worker_id}", daemon=True,
        )
        self._inboxes[worker_id] = inbox
        self._threads[worker_id] = thread
        thread.start()

    def send(self, worker_id: int, message: ToWorker) -> None:
        self._inboxes[worker_id].put(message)

    def receive(self, timeout_s: float) -> FromBackend | None:
        try:
            message: FromBackend = self._outbox.get(timeout=timeout_s)
        except queue.Empty:
            return None
        return message

    def cancel(self, worker_id: int, grace_s: float) -> None:
        self._inboxes[worker_id].put(Shutdown())  # an abandoned thread leaves when it can
        self._outbox.put(WorkerLost(worker_id, "cancelled (its thread is abandoned)"))
        self._spawn(worker_id)

    def share(self, kwargs: Mapping[str, Any], *, min_bytes: int | None = None) -> dict[str, Any]:
        return dict(kwargs)  # one process: nothing to share

    def processes(self) -> dict[str, Any]:
        return {"backend": self.name}

    def close(self, *, kill: bool = False) -> None:
        for inbox in self._inboxes.values():
            inbox.put(Shutdown())
        if not kill:
            for thread in self._threads.values():
                thread.join(JOIN_TIMEOUT_S)
        self._threads.clear()


def _inline_worker(worker_id: int, inbox: Any, outbox: Any) -> None:
    outbox.put(WorkerReady(worker_id, socket.gethostname(), os.getpid()))
    while True:
        message = inbox.get()
        if isinstance(message, Shutdown):
            return
        if isinstance(message, RunTrial):
            outbox.put(run_trial(worker_id, message, inbox, outbox))
