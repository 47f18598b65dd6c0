"""The coordinator: the one process that decides, and the only writer of the study and MLflow.

    study.ask() --RunTrial--> inbox[w] --> worker w runs objective(trial)
                                              | Suggest / Report / ShouldPrune / Metrics
    study.tell() <--TrialFinished-- outbox <--+ (one shared Manager queue)
         |
         +--> Tracker (writer process or thread) --> MLflow parent run + one child run per trial

A single-threaded loop, no locks: keep every idle worker busy (no batch barrier), handle one
message at a time, notice dead workers and overdue trials, and send *every* ending (result,
crash, timeout, interruption) through ``_finish`` so Optuna and MLflow always agree.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..workers.local import Backend
from ..workers.messages import (
    Artifact,
    FromWorker,
    Metrics,
    PruneDecision,
    Report,
    RunTrial,
    RunIdReply,
    RunIdRequest,
    ShouldPrune,
    Suggest,
    Suggestion,
    TrialFinished,
    UserAttr,
    WorkerReady,
)
from ..config.space import suggest_from_json, suggest_on
from .study import PARENT_RUN_ATTR, RETRY_ATTR
from ..tracking.writer import ChildRecord, Tracker, metric_names, mlflow_status
from ..tracking.process import ProcessTracker

logger = logging.getLogger("sweeper")

#: Longest the loop sleeps waiting for a message; bounds how late a crash or deadline is seen.
POLL_S = 0.05
#: Longest a worker waits for its trial's MLflow run to exist before running without it.
RUN_ID_WAIT_S = 30.0
#: How long a recycled worker may take to exit on its own before it is killed.
RECYCLE_GRACE_S = 10.0
#: Metric values one trial may log; past it they are counted, not kept (a flood guard).
MAX_METRICS_PER_TRIAL = 20_000
#: Intermediate values one trial may report to the pruner (each is a study write).
MAX_REPORTS_PER_TRIAL = 10_000
#: Captured output kept per trial: the head and the tail around a truncation marker.
OUTPUT_HEAD_BYTES, OUTPUT_TAIL_BYTES = 64 * 1024, 448 * 1024
#: Longest a traceback kept in the study's system attrs (the full text goes to MLflow).
MAX_TRACEBACK_ATTR = 8000


@dataclass(frozen=True)
class SweepPlan:
    """What to run; built by ``api`` from a YAML config or from ``optimize`` arguments."""

    objective: str  # import path "pkg.mod:fn"
    objective_kwargs: dict[str, Any] = field(default_factory=dict)
    space: tuple[Any, ...] = ()  # declared params, pre-sampled by the coordinator
    n_trials: int | None = None  # trials to start in this call (None: until timeout/stop)
    timeout_s: float | None = None  # no new trial starts after this
    trial_timeout_s: float | None = None
    kill_grace_s: float = 2.0  # SIGTERM -> SIGKILL
    stop_grace_s: float = 30.0  # first Ctrl-C: how long running trials may finish
    max_consecutive_failures: int | None = None
    max_retries: int = 0  # re-run a crashed or timed-out trial's params this many times
    retry_exceptions: bool = False  # ... and one whose objective raised
    tracking_required: bool = True  # False: a store that fails to open is a warning, not an abort
    scratch_dir: str | None = None  # per-sweep temp dir: staged artifacts, captured output
    capture_output: bool = False  # each trial's stdout/stderr -> output.txt on its child run


@dataclass
class SweepSummary:
    """How a sweep went, for the CLI's exit code and closing table."""

    n_complete: int = 0
    n_pruned: int = 0
    n_fail: int = 0
    elapsed_s: float = 0.0
    stopped: str | None = None  # why it ended early: "interrupted", "crash loop", "stop()"
    failed_fast: bool = False  # the failure brake (max_consecutive_failures / fail_fast) fired
    best: tuple[float, int] | None = None  # single objective: best value so far and its trial
    signal: int | None = None
    worker_pids: set[int] = field(default_factory=set)
    failure_reasons: dict[str, int] = field(default_factory=dict)
    tracking_failures: list[str] = field(default_factory=list)

    @property
    def n_finished(self) -> int:
        return self.n_complete + self.n_pruned + self.n_fail


@dataclass
class _Running:
    trial: Any  # optuna.Trial, the live handle (the worker has only a mirror)
    worker_id: int
    started: float  # time.monotonic()
    start_ms: int
    deadline: float | None
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)
    files: list[tuple[str, str | None]] = field(default_factory=list)
    retry_of: int | None = None
    metrics_dropped: int = 0
    reports: int = 0


class Coordinator:
    """Runs a ``SweepPlan`` on a ``Backend`` against an Optuna study. ``run`` once."""

    def __init__(
        self,
        study: Any,
        plan: SweepPlan,
        backend: Backend,
        n_workers: int,
        *,
        tracker: Tracker | ProcessTracker | None = None,
        on_trial_finished: Callable[[Any, SweepSummary, int], None] | None = None,
        callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
        pids_path: str | None = None,
    ) -> None:
        self.study = study
        self._pids_path = pids_path
        self._callbacks = list(callbacks or ())
        self.plan = plan
        self.backend = backend
        self.n_workers = n_workers
        self.tracker = tracker
        self.summary = SweepSummary()
        self._on_trial_finished = on_trial_finished
        self._n_objectives = len(study.directions)
        self._running: dict[int, _Running] = {}  # worker_id -> its trial
        self._idle: set[int] = set()
        self._retiring: dict[int, float] = {}  # worker_id -> when to SIGKILL it
        self._pids: dict[int, int] = {}
        self._awaiting_run_id: dict[int, tuple[int, float]] = {}  # worker_id -> (trial, asked at)
        self._started = 0
        self._retries: dict[int, int] = {}  # trial number -> its attempt count
        self._retry_queue: list[tuple[dict[str, Any], int]] = []
        self._consecutive_failures = 0
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._abort = threading.Event()
        self._stop_deadline: float | None = None
        self._t0 = 0.0
        self._parent_noted = False
        crash = os.environ.get("SWEEPER_CRASH_AT", "")
        point, _, nth = crash.partition(":")
        self._crash_point = (point, int(nth or 1)) if point else None
        self._crash_count = 0

    def _crash_at(self, point: str) -> None:
        """Fault injection for the crash-point tests (RELIABILITY.md B19): with
        ``SWEEPER_CRASH_AT=after_tell:3`` the coordinator dies, as if SIGKILLed, the 3rd time
        it passes ``after_tell``. Does nothing unless the variable is set."""
        if self._crash_point is None or self._crash_point[0] != point:
            return
        self._crash_count += 1
        if self._crash_count >= self._crash_point[1]:
            os._exit(86)

    # --- control (any thread) -------------------------------------------------------------------

    def stop(self, reason: str = "stop()", *, immediate: bool = False) -> None:
        """Start no new trial; let running ones finish (``immediate``: fail them now)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()
        if immediate:
            self._abort.set()

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> SweepSummary:
        self._t0 = time.monotonic()
        # We are the study's optimize loop: samplers and callbacks may call study.stop()
        # (GridSampler does once the grid is covered), which Optuna refuses outside one.
        self.study._thread_local.in_optimize_loop = True
        self.study._stop_flag = False
        self.backend.start(self.n_workers)
        self._write_pids()
        try:
            self._loop()
        finally:
            self.study._thread_local.in_optimize_loop = False
            self._shutdown()
        return self.summary

    def _loop(self) -> None:
        while True:
            if self._abort.is_set():
                self._fail_all_running("interrupted", "sweep interrupted")
                return
            if self._stop.is_set() and self._stop_deadline is None:
                self._stop_deadline = time.monotonic() + self.plan.stop_grace_s
                if self._running:
                    logger.warning(
                        "stopping: no new trials; waiting up to %.0fs for %d running trial(s)",
                        self.plan.stop_grace_s, len(self._running),
                    )
            if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                self._fail_all_running("interrupted", "sweep interrupted (grace period over)")
                return
            if self.tracker is not None:
                if self.plan.tracking_required:
                    self.tracker.raise_if_failed()
                self._note_parent_run()
            self._fill_idle_workers()
            if not self._running and not self._may_start_more():
                return
            # One message per round: probing an empty Manager queue is a round trip of its own
            # (~0.3 ms), and the rest of the round (sentinels, deadlines) costs microseconds.
            message = self.backend.receive(POLL_S)
            if message is not None:
                self._handle(message)
            if self._awaiting_run_id:
                self._answer_run_id_requests()
            self._reap_dead_workers()
            self._enforce_deadlines()

    def _write_pids(self) -> None:
        """Who is running this sweep, for ``sweeper status`` and for tests that kill processes."""
        if self._pids_path is None:
            return
        manager = getattr(self.backend, "manager_pid", lambda: None)()
        data = {"coordinator": os.getpid(), "manager": manager, "workers": self.backend.pids(),
                "mlflow_writer": getattr(self.tracker, "pid", None)}
        temporary = f"{self._pids_path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self._pids_path)

    def _note_parent_run(self) -> None:
        """Store the parent run id in the study as soon as it exists, so a sweep whose
        coordinator is killed resumes into the same parent run."""
        if self._parent_noted or self.tracker is None or not self.tracker.ready:
            return
        self._parent_noted = True
        if self.study.user_attrs.get(PARENT_RUN_ATTR) != self.tracker.parent_run_id:
            self.study.set_user_attr(PARENT_RUN_ATTR, self.tracker.parent_run_id)

    def _may_start_more(self) -> bool:
        if self._stop.is_set():
            return False
        budget_left = self.plan.n_trials is None or self._started < self.plan.n_trials
        if not budget_left and not self._retry_queue:
            return False
        if self.plan.timeout_s is not None and time.monotonic() - self._t0 >= self.plan.timeout_s:
            return False
        if self.study._stop_flag:  # asked for by a sampler or callback, before the budget ran out
            self.stop("study.stop()")
            return False
        return True

    def _fill_idle_workers(self) -> None:
        while self._idle and self._may_start_more():
            worker_id = min(self._idle)
            self._idle.discard(worker_id)
            self._dispatch(worker_id)

    def _dispatch(self, worker_id: int) -> None:
        retry_of = None
        if self._retry_queue:
            params, retry_of = self._retry_queue.pop(0)
            self.study.enqueue_trial(params, user_attrs={RETRY_ATTR: retry_of})
        trial = self.study.ask()
        self._crash_at("after_ask")
        if retry_of is None:
            self._started += 1  # retries do not use up n_trials
        if retry_of is not None:
            self._retries[trial.number] = self._retries.get(retry_of, 0) + 1
        try:
            params = {spec_name(spec): suggest_on(trial, spec) for spec in self.plan.space}
        except Exception as exc:  # noqa: BLE001 - e.g. a sampler that cannot sample this space
            self._idle.add(worker_id)
            self._tell_failure(trial, f"{type(exc).__name__}: {exc}", "sampler")
            return
        now = time.monotonic()
        deadline = None if self.plan.trial_timeout_s is None else now + self.plan.trial_timeout_s
        self._running[worker_id] = _Running(
            trial, worker_id, now, _now_ms(), deadline, retry_of=retry_of
        )
        self.backend.send(
            worker_id,
            RunTrial(
                trial.number, self.plan.objective, params, self.plan.objective_kwargs,
                output_path=self._output_path(trial.number), scratch_dir=self.plan.scratch_dir,
            ),
        )
        self._crash_at("after_dispatch")
        if self.tracker is not None:
            tags = {"sweeper.trial_number": str(trial.number), "sweeper.state": "running"}
            if worker_id in self._pids:
                tags["sweeper.worker_pid"] = str(self._pids[worker_id])
            if retry_of is not None:
                tags["sweeper.retry_of"] = str(retry_of)
            self.tracker.child_started(trial.number, _now_ms(), tags)

    # --- messages ---------------------------------------------------------------------------------

    def _handle(self, message: FromWorker) -> None:
        if isinstance(message, WorkerReady):
            if message.worker_id not in self._retiring:
                self._pids[message.worker_id] = message.pid
                self.summary.worker_pids.add(message.pid)
                if message.worker_id not in self._running:
                    self._idle.add(message.worker_id)
            return
        running = self._running.get(message.worker_id)
        if running is None or running.trial.number != message.trial_number:
            return  # from a trial that already ended (timed out, worker replaced): drop it
        trial = running.trial
        if isinstance(message, TrialFinished):
            self._finish(message)
        elif isinstance(message, Suggest):
            try:
                value = suggest_from_json(trial, message.name, message.distribution)
                reply = Suggestion(trial.number, message.name, value)
            except Exception as exc:  # noqa: BLE001 - the objective gets the error, not us
                reply = Suggestion(trial.number, message.name, None, error=f"{type(exc).__name__}: {exc}")
            self.backend.send(message.worker_id, reply)
        elif isinstance(message, Report):
            running.reports += 1
            if running.reports > MAX_REPORTS_PER_TRIAL:  # a flood: no more pruning input, counted
                running.metrics_dropped += 1
                return
            if len(running.metrics) < MAX_METRICS_PER_TRIAL:
                running.metrics.append(("intermediate_value", message.value, message.step, _now_ms()))
            else:
                running.metrics_dropped += 1
            if self._n_objectives == 1:
                try:
                    trial.report(message.value, message.step)
                except Exception as exc:  # noqa: BLE001
                    logger.debug("trial %d: report ignored: %s", trial.number, exc)
        elif isinstance(message, ShouldPrune):
            try:
                prune = bool(trial.should_prune()) if self._n_objectives == 1 else False
            except Exception:  # noqa: BLE001 - a pruner failure must not stop the trial
                prune = False
            self.backend.send(message.worker_id, PruneDecision(trial.number, prune))
        elif isinstance(message, Metrics):
            now = _now_ms()
            step = 0 if message.step is None else message.step
            room = MAX_METRICS_PER_TRIAL - len(running.metrics)
            if room < len(message.values):
                running.metrics_dropped += len(message.values) - max(room, 0)
            running.metrics.extend(list((k, v, step, now) for k, v in message.values.items())[: max(room, 0)])
        elif isinstance(message, UserAttr):
            try:
                trial.set_user_attr(message.key, message.value)
            except Exception as exc:  # noqa: BLE001
                logger.warning("trial %d: user attr %r not stored: %s", trial.number, message.key, exc)
        elif isinstance(message, Artifact):
            running.files.append((message.path, message.artifact_path))
        elif isinstance(message, RunIdRequest):
            self._awaiting_run_id[message.worker_id] = (trial.number, time.monotonic())
            self._answer_run_id_requests()

    def _answer_run_id_requests(self) -> None:
        """Reply once the writer thread has created the child run (or cannot)."""
        for worker_id, (number, asked_at) in list(self._awaiting_run_id.items()):
            running = self._running.get(worker_id)
            if running is None or running.trial.number != number:
                del self._awaiting_run_id[worker_id]
                continue
            tracker = self.tracker
            run_id = None if tracker is None else tracker.run_ids.get(number)
            waited_s = time.monotonic() - asked_at
            if run_id is None and tracker is not None and not tracker.failed and waited_s < RUN_ID_WAIT_S:
                continue  # not created yet: asked again next round
            del self._awaiting_run_id[worker_id]
            uri = None if tracker is None else tracker.uri
            self.backend.send(worker_id, RunIdReply(number, run_id, uri))

    # --- every ending goes through here -----------------------------------------------------------

    def _finish(self, outcome: TrialFinished) -> None:
        running = self._running.pop(outcome.worker_id)
        if outcome.worker_exits:  # recycled: replaced once it has exited (killed if it lingers)
            self._retiring[outcome.worker_id] = time.monotonic() + RECYCLE_GRACE_S
        elif outcome.worker_id not in self._retiring:
            self._idle.add(outcome.worker_id)
        trial = running.trial
        state, error, reason = outcome.state, outcome.error, outcome.reason
        values = outcome.values
        if state == "complete" and values is not None and len(values) != self._n_objectives:
            state, reason = "fail", "bad_value"
            error = f"objective returned {len(values)} value(s), but the study has {self._n_objectives} direction(s)"
        self._crash_at("after_result")
        frozen = self._tell(trial, state, values, error, reason, outcome)
        self._crash_at("after_tell")
        if frozen is None:
            state = "fail"
        self._count(state, reason)
        retryable = ("crashed", "timeout", "exception") if self.plan.retry_exceptions else ("crashed", "timeout")
        if state == "fail" and reason in retryable and self._attempts(trial.number) < self.plan.max_retries:
            self._retry_queue.append((dict(frozen.params if frozen else trial.params), trial.number))
        if state == "complete":
            self._consecutive_failures = 0
            self._update_best(trial.number, values)
        elif state == "fail":
            self._consecutive_failures += 1
            limit = self.plan.max_consecutive_failures
            if limit is not None and self._consecutive_failures >= limit and not self._stop.is_set():
                common = max(self.summary.failure_reasons, key=self.summary.failure_reasons.__getitem__)
                self.summary.failed_fast = True
                self.stop(f"crash loop: {limit} trial(s) failed in a row (most often: {common})")
        self._record(running, outcome, state, values, error, reason, frozen)
        if frozen is not None:
            if self._on_trial_finished is not None:
                self._on_trial_finished(frozen, self.summary, len(self._running))
            for callback in self._callbacks:  # Optuna's contract: (study, frozen_trial)
                callback(self.study, frozen)

    def _tell(self, trial: Any, state: str, values: Any, error: str | None, reason: str | None,
              outcome: TrialFinished) -> Any:
        from optuna.trial import TrialState

        storage, trial_id = self.study._storage, trial._trial_id
        pid = self._pids.get(outcome.worker_id)
        if pid is not None:
            storage.set_trial_system_attr(trial_id, "sweeper:worker_pid", pid)
        storage.set_trial_system_attr(trial_id, "sweeper:duration_s", round(outcome.duration_s, 4))
        run_id = None if self.tracker is None else self.tracker.run_ids.get(trial.number)
        if run_id is not None:  # a finished trial can no longer be annotated: link it now
            storage.set_trial_system_attr(trial_id, "sweeper:mlflow_run_id", run_id)
        try:
            if state == "complete":
                return self.study.tell(trial, list(values))
            if state == "pruned":
                return self.study.tell(trial, state=TrialState.PRUNED)
            return self._tell_failure(trial, error or "failed", reason or "exception", outcome.traceback)
        except Exception as exc:  # noqa: BLE001 - e.g. optuna refusing a value: fail, don't crash
            return self._tell_failure(trial, f"{type(exc).__name__}: {exc}", "tell")

    def _tell_failure(self, trial: Any, error: str, reason: str, tb: str | None = None) -> Any:
        from optuna.trial import TrialState

        storage, trial_id = self.study._storage, trial._trial_id
        recorded = storage.get_trial(trial_id)
        if recorded.state.is_finished():  # the tell went through before something raised
            logger.warning("trial %d: %s after it was recorded", trial.number, error)
            return recorded
        storage.set_trial_system_attr(trial_id, "sweeper:fail_reason", reason)
        storage.set_trial_system_attr(trial_id, "sweeper:error", error[:2000])
        if tb:
            storage.set_trial_system_attr(trial_id, "sweeper:traceback", tb[-MAX_TRACEBACK_ATTR:])
        logger.warning("trial %d failed (%s): %s", trial.number, reason, error.splitlines()[0] if error else "")
        return self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def _count(self, state: str, reason: str | None) -> None:
        if state == "complete":
            self.summary.n_complete += 1
        elif state == "pruned":
            self.summary.n_pruned += 1
        else:
            self.summary.n_fail += 1
            key = reason or "exception"
            self.summary.failure_reasons[key] = self.summary.failure_reasons.get(key, 0) + 1

    def _attempts(self, number: int) -> int:
        return self._retries.get(number, 0)

    def _update_best(self, number: int, values: Any) -> None:
        if self._n_objectives != 1 or not values:
            return
        value = values[0]
        sign = -1.0 if self.study.direction.name == "MAXIMIZE" else 1.0
        best = self.summary.best
        if best is None or sign * value < sign * best[0]:
            self.summary.best = (value, number)

    def _output_path(self, number: int) -> str | None:
        if self.plan.scratch_dir is None or not self.plan.capture_output:
            return None
        return os.path.join(self.plan.scratch_dir, f"trial-{number}.out")

    def _record(self, running: _Running, outcome: TrialFinished, state: str, values: Any,
                error: str | None, reason: str | None, frozen: Any) -> None:
        output = read_capped(self._output_path(running.trial.number))
        if self.tracker is None:
            return
        now = _now_ms()
        record = ChildRecord(
            running.trial.number, mlflow_status(state, reason), running.start_ms, now,
            params=dict(frozen.params) if frozen is not None else {},
            metrics=list(running.metrics), files=list(running.files),
        )
        if state == "complete" and values is not None:
            names = metric_names(self.study)
            record.metrics += [(name, float(v), 0, now) for name, v in zip(names, values) if math.isfinite(v)]
        record.metrics.append(("duration_s", float(outcome.duration_s), 0, now))
        record.tags.update({
            "sweeper.trial_number": str(running.trial.number),
            "sweeper.state": state,
            "sweeper.duration_s": f"{outcome.duration_s:.3f}",
        })
        pid = self._pids.get(outcome.worker_id)
        if pid is not None:
            record.tags["sweeper.worker_pid"] = str(pid)
        if output:
            record.texts["output.txt"] = output
        if running.metrics_dropped:
            record.tags["sweeper.metrics_dropped"] = str(running.metrics_dropped)
        if state == "fail":
            record.tags["sweeper.fail_reason"] = reason or "exception"
            if error:
                record.tags["sweeper.error"] = error[:4000]
            if outcome.traceback:
                record.texts["traceback.txt"] = outcome.traceback
        self.tracker.child_finished(record)
        metrics = {
            "trials_complete": float(self.summary.n_complete),
            "trials_failed": float(self.summary.n_fail),
            "trials_pruned": float(self.summary.n_pruned),
        }
        tags = {}
        if self.summary.best is not None:
            metrics["best_value"] = self.summary.best[0]
            tags["sweeper.best_trial"] = str(self.summary.best[1])
        self.tracker.parent_progress(metrics, tags, self.summary.n_finished)

    # --- faults -----------------------------------------------------------------------------------

    def _reap_dead_workers(self) -> None:
        dead = self.backend.dead_workers()
        if not dead:
            return
        # A worker may have sent its result and then died (atexit crash): read what it said first.
        message = self.backend.receive(0)
        while message is not None:
            self._handle(message)
            message = self.backend.receive(0)
        for worker_id, exitcode in dead.items():
            self._idle.discard(worker_id)
            self._pids.pop(worker_id, None)
            if worker_id in self._running:
                running = self._running[worker_id]
                self._finish(TrialFinished(
                    worker_id, running.trial.number, "fail",
                    duration_s=time.monotonic() - running.started,
                    error=describe_exit(exitcode), reason="crashed",
                ))
                self._idle.discard(worker_id)
            self._retiring.pop(worker_id, None)
            if not self._abort.is_set():
                self.backend.restart(worker_id)
                self._write_pids()

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for worker_id, running in list(self._running.items()):
            if running.deadline is not None and now > running.deadline:
                timeout = self.plan.trial_timeout_s
                self._retiring[worker_id] = now + self.plan.kill_grace_s
                self._finish(TrialFinished(
                    worker_id, running.trial.number, "fail", duration_s=now - running.started,
                    error=f"TrialTimeout: exceeded trial_timeout={timeout}s", reason="timeout",
                ))
                self.backend.terminate(worker_id)
                if not getattr(self.backend, "can_kill", True):
                    self._retiring.pop(worker_id)
                    self.backend.restart(worker_id)
        for worker_id, kill_at in list(self._retiring.items()):
            if now > kill_at:
                self.backend.kill(worker_id)  # ignored SIGTERM: reaped as dead next round

    def _fail_all_running(self, reason: str, error: str) -> None:
        for worker_id, running in list(self._running.items()):
            self._finish(TrialFinished(
                worker_id, running.trial.number, "fail",
                duration_s=time.monotonic() - running.started, error=error, reason=reason,
            ))

    def _shutdown(self) -> None:
        self.summary.elapsed_s = time.monotonic() - self._t0
        self.summary.stopped = self._stop_reason
        if self._running:  # an exception escaped the loop: nothing may stay RUNNING
            try:
                self._fail_all_running("interrupted", "sweep ended abnormally")
            except Exception:  # noqa: BLE001
                logger.exception("could not record running trials as failed")
        self.backend.close(kill=self._abort.is_set() or bool(self._retiring))


def read_capped(path: str | None) -> str:
    """A trial's captured output, at most head + tail bytes, and the file removed."""
    if path is None or not os.path.exists(path):
        return ""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if size <= OUTPUT_HEAD_BYTES + OUTPUT_TAIL_BYTES:
                data = handle.read()
            else:
                head = handle.read(OUTPUT_HEAD_BYTES)
                handle.seek(size - OUTPUT_TAIL_BYTES)
                skipped = size - OUTPUT_HEAD_BYTES - OUTPUT_TAIL_BYTES
                data = head + f"\n[... {skipped} bytes truncated ...]\n".encode() + handle.read()
        os.remove(path)
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


def spec_name(spec: Any) -> str:
    return spec["name"] if isinstance(spec, dict) else spec.name


def describe_exit(exitcode: int | None) -> str:
    """Words for a worker's exit status, naming the likely cause."""
    if exitcode is None:
        return "WorkerCrashed: worker vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (possibly out of memory)" if name == "SIGKILL" else ""
        return f"WorkerCrashed: worker killed by {name}{hint}, exit code {exitcode}"
    return f"WorkerCrashed: worker exited (code {exitcode}) before reporting a result"


def _now_ms() -> int:
    return int(time.time() * 1000)
