"""In-memory stand-ins for the engine's two seams: a scripted backend and a recorder that keeps
every call. The real ``Coordinator`` runs against them in milliseconds, with no process started.

A worker's behaviour per trial is a ``Script``: ``script(run_trial) -> Outcome``; the fake turns
it into the messages a real worker (or backend) would produce, in the same order.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sweeper.engine.recorder import Progress, SweepEnd, TrialRecord, TrialStarted
from sweeper.workers.messages import (
    FromBackend,
    PruneDecision,
    Report,
    RunTrial,
    ShouldPrune,
    Shutdown,
    Suggest,
    Suggestion,
    ToWorker,
    TrialFinished,
    WorkerLost,
    WorkerReady,
)


@dataclass
class Outcome:
    """What a worker does with one trial: report values, then finish, crash or hang."""

    value: float | None = 0.0  # None with state "complete": no result at all (a hang)
    state: str = "complete"  # complete | pruned | fail | crash | hang
    reports: tuple[float, ...] = ()  # intermediate values, each followed by a ShouldPrune
    suggest: Mapping[str, str] = field(default_factory=dict)  # define-by-run: name -> distribution json
    error: str | None = None
    worker_exits: bool = False


Script = Callable[[RunTrial], Outcome]


class FakeBackend:
    """A ``Backend`` whose workers follow a script, deterministically, in this thread."""

    name = "fake"

    def __init__(self, script: Script, *, die_before_ready: int = 0) -> None:
        self.script = script
        self.sent: list[tuple[int, ToWorker]] = []
        self.cancelled: list[int] = []
        self.started: list[int] = []
        self.closed = False
        self._queue: collections.deque[FromBackend] = collections.deque()
        self._pending: dict[int, tuple[int, list[Any]]] = {}  # slot -> (trial, what it still says)
        self._pids = iter(range(1000, 100000))
        self._die_before_ready = die_before_ready  # every start fails this many times

    def start(self, n_workers: int) -> None:
        for slot in range(n_workers):
            self._boot(slot)

    def _boot(self, slot: int) -> None:
        self.started.append(slot)
        if self._die_before_ready:
            self._die_before_ready -= 1
            replaced = self._die_before_ready > 0
            self._queue.append(WorkerLost(slot, "worker exited (code 1) before reporting a result", replaced))
            if replaced:
                self._boot(slot)
            return
        self._queue.append(WorkerReady(slot, "fakehost", next(self._pids)))

    def send(self, worker_id: int, message: ToWorker) -> None:
        self.sent.append((worker_id, message))
        if isinstance(message, RunTrial):
            self._run(worker_id, message)
        elif isinstance(message, (Suggestion, PruneDecision)):
            self._continue(worker_id, message)

    def _run(self, slot: int, message: RunTrial) -> None:
        outcome = self.script(message)
        number = message.trial_number
        steps: list[Any] = [Suggest(slot, number, name, dist) for name, dist in outcome.suggest.items()]
        for step, value in enumerate(outcome.reports):
            steps += [Report(slot, number, step, value), ShouldPrune(slot, number)]
        self._pending[slot] = (number, [*steps, outcome])
        self._advance(slot)

    def _continue(self, slot: int, reply: Any) -> None:
        if isinstance(reply, PruneDecision) and reply.prune and slot in self._pending:
            number, _ = self._pending[slot]
            self._pending[slot] = (number, [Outcome(state="pruned")])
        self._advance(slot)

    def _advance(self, slot: int) -> None:
        """Say what the worker says until it has to wait for an answer (or is done)."""
        if slot not in self._pending:
            return
        number, steps = self._pending[slot]
        while steps:
            step = steps.pop(0)
            if isinstance(step, Outcome):
                del self._pending[slot]
                self._end(slot, number, step)
                return
            self._queue.append(step)
            if isinstance(step, (Suggest, ShouldPrune)):
                return  # waits for the coordinator's answer

    def _end(self, slot: int, number: int, outcome: Outcome) -> None:
        if outcome.state == "hang":
            return
        if outcome.state == "crash":
            self._queue.append(WorkerLost(slot, "worker killed by SIGKILL (possibly out of memory), exit code -9",
                                          output="last words\n"))
            self._boot(slot)
            return
        values = (outcome.value,) if outcome.state == "complete" and outcome.value is not None else None
        self._queue.append(TrialFinished(
            slot, number, outcome.state, values, 0.01, error=outcome.error,  # type: ignore[arg-type]
            reason="exception" if outcome.state == "fail" else None, worker_exits=outcome.worker_exits,
        ))
        if outcome.worker_exits:
            self._queue.append(WorkerLost(slot, "worker exited (code 0) before reporting a result"))
            self._boot(slot)

    def receive(self, timeout_s: float) -> FromBackend | None:
        if self._queue:
            return self._queue.popleft()
        time.sleep(min(timeout_s, 0.005))
        return None

    def cancel(self, worker_id: int, grace_s: float) -> None:
        self.cancelled.append(worker_id)
        self._pending.pop(worker_id, None)
        self._queue.append(WorkerLost(worker_id, "cancelled", output="stuck here\n"))
        self._boot(worker_id)

    def share(self, kwargs: Mapping[str, Any], *, min_bytes: int | None = None) -> dict[str, Any]:
        return dict(kwargs)

    def processes(self) -> dict[str, Any]:
        return {"backend": self.name}

    def close(self, *, kill: bool = False) -> None:
        self.closed = True
        self.sent.extend((slot, Shutdown()) for slot in set(self.started))


class ListRecorder:
    """A ``Recorder`` that keeps every call, for assertions."""

    def __init__(self) -> None:
        self.started: list[TrialStarted] = []
        self.finished: list[TrialRecord] = []
        self.progress_seen: list[Progress] = []
        self.ended: list[SweepEnd] = []

    def trial_started(self, start: TrialStarted) -> None:
        self.started.append(start)

    def trial_finished(self, record: TrialRecord) -> None:
        self.finished.append(record)

    def trial_env(self, number: int) -> Mapping[str, str] | None:
        return {"RECORD": f"run-{number}"}

    def trial_attrs(self, number: int) -> Mapping[str, Any]:
        return {"sweeper:record_id": f"run-{number}"}

    def study_attrs(self) -> Mapping[str, Any]:
        return {"record_parent": "parent-1"}

    def progress(self, progress: Progress) -> None:
        self.progress_seen.append(progress)

    def check(self) -> None:
        pass

    def close(self, end: SweepEnd) -> list[str]:
        self.ended.append(end)
        return []

    def by_number(self) -> dict[int, TrialRecord]:
        return {r.number: r for r in self.finished}
