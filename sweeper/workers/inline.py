"""Trials in threads of this process: for debuggers (``breakpoint()`` works) and quick runs.

Same messages and worker loop (``serve``) as the process backend, over plain ``queue.Queue``
channels; objectives are handed over as they are (nothing is pickled). A thread cannot be
killed: a cancelled trial's thread is abandoned (its later messages are dropped by the
coordinator, which knows the trial ended) and a fresh thread takes its slot. A thread cannot
die alone either, so no slot is ever lost before it is ready.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .messages import FromBackend, Shutdown, ToWorker, WorkerLost
from .serve import serve

#: How long ``close`` waits for each thread to leave.
JOIN_TIMEOUT_S = 5.0


class InlineBackend:
    """Worker threads in this process (``Backend``)."""

    name = "inline"

    def __init__(self, objectives: Mapping[str, Callable[..., Any] | bytes] | None = None) -> None:
        """``objectives``: name -> the objective itself (or pickled bytes), for ``RunTrial``."""
        self._objectives = dict(objectives or {})
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._inboxes: dict[int, queue.Queue[Any]] = {}
        self._threads: dict[int, threading.Thread] = {}

    def start(self, n_workers: int) -> None:
        for worker_id in range(n_workers):
            self._spawn(worker_id)

    def _spawn(self, worker_id: int) -> None:
        inbox: queue.Queue[Any] = queue.Queue()
        thread = threading.Thread(
            target=serve, args=(worker_id, inbox, self._outbox), kwargs={"objectives": self._objectives},
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
