"""The coordinator: the one process that decides, and the only writer of the study.

    study.ask() --RunTrial--> backend.send(slot) --> worker in that slot runs objective(trial)
                                                         | Suggest / Report / ShouldPrune / Metrics
    study.tell() <--TrialFinished-- backend.receive() <--+  (or WorkerLost: the slot's worker died)
         |
         +--> recorder.trial_started / trial_finished / progress   (MLflow, or nothing)

A single-threaded loop, no locks: keep every idle slot busy (no batch barrier), handle one
message at a time, fail trials past their deadline, and send *every* ending (result, crash,
timeout, interruption) through ``_finish``, so the study and the record always agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _compat
from ..config.space import suggest_from_json, suggest_on
from ..errors import BackendError, SweeperError
from ..workers.backend import Backend
from ..workers.messages import (
    Artifact,
    FromBackend,
    Metrics,
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
from .recorder import (
    FileBlob,
    Measurement,
    Progress,
    Recorder,
    SweepEnd,
    TrialRecord,
    TrialStarted,
    WorkerInfo,
)
from .study import (
    DURATION_ATTR,
    ERROR_ATTR,
    FAIL_REASON_ATTR,
    RETRY_ATTR,
    TRACEBACK_ATTR,
    WORKER_ATTR,
    Totals,
    is_sweeper_attr,
)

logger = logging.getLogger("sweeper")

#: Longest the loop sleeps waiting for a message; bounds how late a deadline is seen.
POLL_S = 0.05
#: Longest a worker waits for its trial's environment (its MLflow run) before running without it.
ENV_WAIT_S = 30.0
#: How long a recycled worker may take to leave on its own before it is cancelled.
RECYCLE_GRACE_S = 10.0
#: Metric values one trial may log; past it they are counted, not kept (a flood guard).
MAX_METRICS_PER_TRIAL = 20_000
#: Intermediate values one trial may report to the pruner (each is a study write).
MAX_REPORTS_PER_TRIAL = 10_000
#: Longest a traceback kept in the study's system attrs (the whole text goes to the record).
MAX_TRACEBACK_ATTR = 8000
#: Longest an error message kept in the study's system attrs.
MAX_ERROR_ATTR = 2000
#: How often the recorder's study attrs (its ids) are looked at for changes.
ATTRS_INTERVAL_S = 0.5
#: After a cancelled trial's grace period, how long its worker's loss may take to be reported
#: (with what the trial printed) before the trial is failed without it.
LOST_WAIT_S = 5.0


@dataclass(frozen=True)
class SweepPlan:
    """What the coordinator runs: built by ``sweeper.sweep`` from a config or ``optimize``'s arguments."""

    objective: str  # how the backend names the objective (an import path, or a key sent by value)
    objective_kwargs: Mapping[str, Any] = field(default_factory=dict)
    space: tuple[Any, ...] = ()  # declared params, pre-sampled by the coordinator
    n_trials: int | None = None  # trials to start in this session (None: until timeout/stop)
    n_target: int | None = None  # the sweep's total, for progress (None: no fixed total)
    timeout_s: float | None = None  # no new trial starts after this
    trial_timeout_s: float | None = None
    kill_grace_s: float = 2.0  # a cancelled trial is asked to stop, then ended after this
    stop_grace_s: float = 30.0  # first Ctrl-C: how long running trials may finish
    max_consecutive_failures: int | None = 10
    max_retries: int = 0  # re-run a crashed or timed-out trial's params this many times
    retry_exceptions: bool = False  # ... and one whose objective raised
    capture_output: bool = False  # each trial's stdout/stderr travels back with its result


@dataclass
class SweepSummary:
    """How a sweep stands: totals over every session of it, and how this session ended."""

    totals: Totals = field(default_factory=Totals)
    session_finished: int = 0  # trials this session finished
    elapsed_s: float = 0.0
    stopped: str | None = None  # why it ended early: "interrupted by SIGINT", "crash loop ...", "study.stop()"
    failed_fast: bool = False  # the failure brake (max_consecutive_failures / fail_fast) fired
    signal: int | None = None
    workers: dict[int, WorkerInfo] = field(default_factory=dict)  # every worker that said ready
    failure_reasons: dict[str, int] = field(default_factory=dict)  # this session's
    tracking_failures: list[str] = field(default_factory=list)

    @property
    def n_complete(self) -> int:
        return self.totals.complete

    @property
    def n_pruned(self) -> int:
        return self.totals.pruned

    @property
    def n_fail(self) -> int:
        return self.totals.fail

    @property
    def n_finished(self) -> int:
        return self.totals.finished

    @property
    def best(self) -> tuple[float, int] | None:
        """Single objective: the best value and its trial, ties to the lower number (as Optuna)."""
        if self.totals.best_trial is None or self.totals.best_value is None:
            return None
        return self.totals.best_value, self.totals.best_trial


@dataclass
class _Running:
    trial: Any  # optuna.Trial, the live handle (the worker has only a mirror)
    worker_id: int
    started: float  # time.monotonic()
    start_ms: int
    deadline: float | None
    measurements: list[Measurement] = field(default_factory=list)
    reports: list[Measurement] = field(default_factory=list)
    files: list[FileBlob] = field(default_factory=list)
    retry_of: int | None = None
    dropped: int = 0
    cancelled_at: float | None = None  # past its deadline: its worker is being stopped


class Coordinator:
    """Runs a ``SweepPlan`` on a ``Backend`` against an Optuna study. ``run`` once."""

    def __init__(
        self,
        study: Any,
        plan: SweepPlan,
        backend: Backend,
        n_workers: int,
        recorder: Recorder,
        *,
        totals: Totals | None = None,
        on_trial_finished: Callable[[Any, SweepSummary, int], None] | None = None,
        callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
        on_workers_changed: Callable[[Mapping[int, WorkerInfo]], None] | None = None,
    ) -> None:
        self.study = study
        self.plan = plan
        self.backend = backend
        self.n_workers = n_workers
        self.recorder = recorder
        self.summary = SweepSummary(totals=totals or Totals())
        self._on_trial_finished = on_trial_finished
        self._callbacks = list(callbacks or ())
        self._on_workers_changed = on_workers_changed
        self._n_objectives = len(study.directions)
        self._maximize = [d.name == "MAXIMIZE" for d in study.directions]
        self._running: dict[int, _Running] = {}  # worker_id -> its trial
        self._idle: set[int] = set()
        self._workers: dict[int, WorkerInfo] = {}  # worker_id -> where its current worker runs
        self._retiring: dict[int, float] = {}  # worker_id -> when to cancel it (recycled, lingering)
        self._cancelled: set[int] = set()  # slots whose worker was cancelled: no trial until ready
        self._lost: set[int] = set()  # slots the backend gave up on
        self._awaiting_env: dict[int, tuple[int, float]] = {}  # worker_id -> (trial, asked at)
        self._started = 0
        self._attempts: dict[int, int] = {}  # trial number -> its retry count
        self._retry_queue: list[tuple[dict[str, Any], int]] = []
        self._consecutive_failures = 0
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._abort = threading.Event()
        self._stop_deadline: float | None = None
        self._t0 = 0.0
        self._notices: list[Any] = []  # finished trials to tell on_trial_finished about
        self._attrs_written: dict[str, Any] = {}
        self._attrs_checked = 0.0
        self._study_view = self._initial_study_view()

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
        _compat.enter_optimize_loop(self.study)
        try:
            self.backend.start(self.n_workers)
            self._loop()
        finally:
            _compat.leave_optimize_loop(self.study)
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
            self.recorder.check()
            self._write_study_attrs()
            self._fill_idle_workers()
            self._notify()
            if not self._running and not self._may_start_more():
                return
            message = self.backend.receive(POLL_S)
            if message is not None:
                self._handle(message)
            if self._awaiting_env:
                self._answer_env_requests()
            self._enforce_deadlines()

    def _write_study_attrs(self, *, force: bool = False) -> None:
        """Keep what the recorder needs in the study (the ids of its records) as soon as it
        knows them: a sweep whose coordinator is killed then resumes into the same record."""
        now = time.monotonic()
        if not force and now - self._attrs_checked < ATTRS_INTERVAL_S:
            return
        self._attrs_checked = now
        for key, value in self.recorder.study_attrs().items():
            if self._attrs_written.get(key) != value and self.study.user_attrs.get(key) != value:
                self.study.set_user_attr(key, value)
            self._attrs_written[key] = value

    def _may_start_more(self) -> bool:
        if self._stop.is_set():
            return False
        budget_left = self.plan.n_trials is None or self._started < self.plan.n_trials
        if not budget_left and not self._retry_queue:
            return False
        if self.plan.timeout_s is not None and time.monotonic() - self._t0 >= self.plan.timeout_s:
            return False
        if _compat.stop_requested(self.study):  # a sampler or callback called study.stop()
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
        if retry_of is None:
            self._started += 1  # retries do not use up n_trials
        else:
            self._attempts[trial.number] = self._attempts.get(retry_of, 0) + 1
        try:
            params = {_spec_name(spec): suggest_on(trial, spec) for spec in self.plan.space}
            relative = dict(trial.relative_params)  # sampled once per trial anyway (Optuna's own rule)
        except Exception as exc:  # noqa: BLE001 - e.g. a sampler that cannot sample this space
            self._idle.add(worker_id)
            self._tell_failure(trial, f"{type(exc).__name__}: {exc}", "sampler")
            return
        now = time.monotonic()
        deadline = None if self.plan.trial_timeout_s is None else now + self.plan.trial_timeout_s
        running = _Running(trial, worker_id, now, _now_ms(), deadline, retry_of=retry_of)
        self._running[worker_id] = running
        self.backend.send(worker_id, RunTrial(
            trial.number, self.plan.objective, params, dict(self.plan.objective_kwargs),
            capture_output=self.plan.capture_output, study=self._study_view, relative_params=relative,
        ))
        self.recorder.trial_started(
            TrialStarted(trial.number, running.start_ms, self._workers.get(worker_id), retry_of)
        )

    # --- messages ---------------------------------------------------------------------------------

    def _handle(self, message: FromBackend) -> None:
        if isinstance(message, WorkerReady):
            self._worker_ready(message)
            return
        if isinstance(message, WorkerLost):
            self._worker_lost(message)
            return
        running = self._running.get(message.worker_id)
        if running is None or running.trial.number != message.trial_number or running.cancelled_at is not None:
            return  # from a trial that ended or is being stopped (timed out, worker replaced): drop it
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
            self._report(running, message)
        elif isinstance(message, ShouldPrune):
            try:
                prune = bool(trial.should_prune()) if self._n_objectives == 1 else False
            except Exception:  # noqa: BLE001 - a pruner failure must not stop the trial
                prune = False
            self.backend.send(message.worker_id, PruneDecision(trial.number, prune))
        elif isinstance(message, Metrics):
            now = _now_ms()
            step = 0 if message.step is None else message.step
            room = max(0, MAX_METRICS_PER_TRIAL - len(running.measurements))
            items = list(message.values.items())
            running.dropped += max(0, len(items) - room)
            running.measurements.extend(Measurement(k, float(v), step, now) for k, v in items[:room])
        elif isinstance(message, UserAttr):
            try:
                trial.set_user_attr(message.key, message.value)
            except Exception as exc:  # noqa: BLE001
                logger.warning("trial %d: user attr %r not stored: %s", trial.number, message.key, exc)
        elif isinstance(message, Artifact):
            running.files.append(FileBlob(message.name, message.data, message.artifact_path))
        elif isinstance(message, TrialEnvRequest):
            self._awaiting_env[message.worker_id] = (trial.number, time.monotonic())
            self._answer_env_requests()

    def _worker_ready(self, message: WorkerReady) -> None:
        worker_id = message.worker_id
        self._workers[worker_id] = self.summary.workers[worker_id] = WorkerInfo(message.host, message.pid)
        self._cancelled.discard(worker_id)
        self._retiring.pop(worker_id, None)
        if worker_id not in self._running:
            self._idle.add(worker_id)
        if self._on_workers_changed is not None:
            self._on_workers_changed(dict(self._workers))

    def _worker_lost(self, message: WorkerLost) -> None:
        worker_id = message.worker_id
        self._idle.discard(worker_id)
        self._workers.pop(worker_id, None)
        self._retiring.pop(worker_id, None)
        if self._on_workers_changed is not None:
            self._on_workers_changed(dict(self._workers))
        running = self._running.get(worker_id)
        if running is not None:
            if running.cancelled_at is not None:
                self._finish(self._timed_out(running, message.output))
            else:
                self._finish(TrialFinished(
                    worker_id, running.trial.number, "fail", duration_s=time.monotonic() - running.started,
                    error=f"WorkerCrashed: {message.reason}", reason="crashed", output=message.output,
                ))
            self._idle.discard(worker_id)
        if not message.replaced:
            self._lost.add(worker_id)
            logger.warning("worker slot %d is not replaced: %s", worker_id, message.reason)
            if len(self._lost) >= self.n_workers:
                raise BackendError(f"every worker died before it was ready (last: {message.reason})")

    def _report(self, running: _Running, message: Report) -> None:
        if len(running.reports) >= MAX_REPORTS_PER_TRIAL:  # a flood: no more pruning input, counted
            running.dropped += 1
            return
        running.reports.append(Measurement("intermediate_value", message.value, message.step, _now_ms()))
        if self._n_objectives == 1:
            try:
                running.trial.report(message.value, message.step)
            except Exception as exc:  # noqa: BLE001
                logger.debug("trial %d: report ignored: %s", running.trial.number, exc)

    def _answer_env_requests(self) -> None:
        """Reply once the recorder knows the trial's environment (its run exists), or cannot."""
        for worker_id, (number, asked_at) in list(self._awaiting_env.items()):
            running = self._running.get(worker_id)
            if running is None or running.trial.number != number:
                del self._awaiting_env[worker_id]
                continue
            env = self.recorder.trial_env(number)
            if env is None and time.monotonic() - asked_at < ENV_WAIT_S:
                continue  # not known yet: asked again next round
            del self._awaiting_env[worker_id]
            self.backend.send(worker_id, TrialEnv(number, dict(env or {})))

    # --- every ending goes through here -----------------------------------------------------------

    def _finish(self, outcome: TrialFinished) -> None:
        running = self._running.pop(outcome.worker_id)
        worker_id = outcome.worker_id
        if outcome.worker_exits:  # recycled: a fresh worker announces itself when it is up
            self._retiring[worker_id] = time.monotonic() + RECYCLE_GRACE_S
        elif worker_id not in self._cancelled and worker_id in self._workers:
            self._idle.add(worker_id)
        trial = running.trial
        state, error, reason = outcome.state, outcome.error, outcome.reason
        values = outcome.values
        if state == "complete" and values is not None and len(values) != self._n_objectives:
            state, reason = "fail", "bad_value"
            error = f"objective returned {len(values)} value(s), but the study has {self._n_objectives} direction(s)"
        if state == "pruned":
            reason = "pruned"
        frozen = self._tell(running, state, values, error, reason, outcome)
        if frozen is None:
            state = "fail"
        elif frozen.state.name != state.upper() and frozen.state.name in ("COMPLETE", "PRUNED", "FAIL"):
            state = frozen.state.name.lower()  # e.g. told before a later error: the study is the truth
        if state != "complete":
            values = None
        self._count(frozen, state, reason)
        retryable = ("crashed", "timeout", "exception") if self.plan.retry_exceptions else ("crashed", "timeout")
        if state == "fail" and reason in retryable and self._attempts.get(trial.number, 0) < self.plan.max_retries:
            self._retry_queue.append((dict(frozen.params if frozen else trial.params), trial.number))
        if state == "complete":
            self._consecutive_failures = 0
        elif state == "fail":
            self._consecutive_failures += 1
            limit = self.plan.max_consecutive_failures
            if limit is not None and self._consecutive_failures >= limit and not self._stop.is_set():
                common = max(self.summary.failure_reasons, key=self.summary.failure_reasons.__getitem__)
                self.summary.failed_fast = True
                self.stop(f"crash loop: {limit} trial(s) failed in a row (most often: {common})")
        self._record(running, outcome, state, values, error, reason, frozen)
        if frozen is not None:
            self._notices.append(frozen)
            for callback in self._callbacks:  # Optuna's contract: (study, frozen_trial), at once
                callback(self.study, frozen)

    def _notify(self) -> None:
        """Tell ``on_trial_finished`` (progress lines) once the freed workers have their next
        trial, so "running" counts the busy workers, not one less."""
        notices, self._notices = self._notices, []
        if self._on_trial_finished is not None:
            for frozen in notices:
                self._on_trial_finished(frozen, self.summary, len(self._running))

    def _tell(self, running: _Running, state: str, values: Any, error: str | None, reason: str | None,
              outcome: TrialFinished) -> Any:
        from optuna.trial import TrialState

        trial = running.trial
        worker = self._workers.get(running.worker_id)
        attrs: dict[str, Any] = {DURATION_ATTR: round(outcome.duration_s, 4)}
        if worker is not None:
            attrs[WORKER_ATTR] = f"{worker.host}:{worker.pid}"
        attrs.update(self.recorder.trial_attrs(trial.number))  # a finished trial can no longer take attrs
        for key, value in attrs.items():
            _compat.set_trial_system_attr(self.study, trial, key, value)
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

        recorded = _compat.stored_trial(self.study, trial)
        if recorded.state.is_finished():  # the tell went through before something raised
            logger.warning("trial %d: %s after it was recorded", trial.number, error)
            return recorded
        _compat.set_trial_system_attr(self.study, trial, FAIL_REASON_ATTR, reason)
        _compat.set_trial_system_attr(self.study, trial, ERROR_ATTR, error[:MAX_ERROR_ATTR])
        if tb:
            _compat.set_trial_system_attr(self.study, trial, TRACEBACK_ATTR, tb[-MAX_TRACEBACK_ATTR:])
        logger.warning("trial %d failed (%s): %s", trial.number, reason, error.splitlines()[0] if error else "")
        return self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)

    def _count(self, frozen: Any, state: str, reason: str | None) -> None:
        self.summary.session_finished += 1
        if frozen is not None:
            self.summary.totals.add(frozen, self._maximize)
        if state == "fail":
            key = reason or "exception"
            self.summary.failure_reasons[key] = self.summary.failure_reasons.get(key, 0) + 1

    def _record(self, running: _Running, outcome: TrialFinished, state: str, values: Any,
                error: str | None, reason: str | None, frozen: Any) -> None:
        now = _now_ms()
        self.recorder.trial_finished(TrialRecord(
            number=running.trial.number, state=state,  # type: ignore[arg-type]
            start_ms=running.start_ms, end_ms=now, duration_s=outcome.duration_s,
            params=dict(frozen.params) if frozen is not None else {},
            values=tuple(float(v) for v in values) if values is not None else None,
            value_names=tuple(self.study.metric_names or ()),
            reason=None if state == "complete" else reason, error=error if state == "fail" else None,
            traceback=outcome.traceback if state == "fail" else None,
            worker=self._workers.get(running.worker_id) or self.summary.workers.get(running.worker_id),
            measurements=tuple(running.measurements), reports=tuple(running.reports),
            dropped=running.dropped, output=outcome.output, files=tuple(running.files),
            user_attrs=dict(frozen.user_attrs) if frozen is not None else {}, retry_of=running.retry_of,
        ))
        self.recorder.progress(self.progress())
        if self.summary.totals.best_trial is not None:
            self._study_view = {**self._study_view, "best_value": self.summary.totals.best_value,
                                "best_params": dict(self.summary.totals.best_params)}

    def progress(self) -> Progress:
        totals = self.summary.totals
        return Progress(
            totals.complete, totals.pruned, totals.fail, len(self._running), self.plan.n_target,
            totals.best_trial, totals.best_value,
        )

    def _initial_study_view(self) -> dict[str, Any]:
        """What ``trial.study`` shows in the workers (read-only): the study's name, directions,
        the user's own attrs and, as trials finish, the best so far."""
        totals = self.summary.totals
        return {
            "study_name": self.study.study_name,
            "directions": [d.name.lower() for d in self.study.directions],
            "metric_names": list(self.study.metric_names or []),
            "user_attrs": {k: v for k, v in self.study.user_attrs.items() if not is_sweeper_attr(k)},
            "best_value": totals.best_value,
            "best_params": dict(totals.best_params),
        }

    # --- faults -----------------------------------------------------------------------------------

    def _enforce_deadlines(self) -> None:
        """A trial past its deadline has its worker cancelled; it ends when the backend reports
        that worker gone (with what the trial printed), or after a bounded wait without it."""
        now = time.monotonic()
        for worker_id, running in list(self._running.items()):
            if running.deadline is None or now <= running.deadline:
                continue
            if running.cancelled_at is None:
                running.cancelled_at = now
                self._cancelled.add(worker_id)
                self.backend.cancel(worker_id, self.plan.kill_grace_s)
            elif now > running.cancelled_at + self.plan.kill_grace_s + LOST_WAIT_S:
                self._finish(self._timed_out(running, ""))
        for worker_id, cancel_at in list(self._retiring.items()):
            if now > cancel_at:  # recycled but still there: ended as a cancelled one
                del self._retiring[worker_id]
                self._cancelled.add(worker_id)
                self.backend.cancel(worker_id, self.plan.kill_grace_s)

    def _timed_out(self, running: _Running, output: str) -> TrialFinished:
        assert running.cancelled_at is not None
        return TrialFinished(
            running.worker_id, running.trial.number, "fail", duration_s=running.cancelled_at - running.started,
            error=f"TrialTimeout: exceeded trial_timeout={self.plan.trial_timeout_s}s", reason="timeout",
            output=output,
        )

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
            except SweeperError as exc:  # the study cannot be written (a full disk): said once, by the caller
                logger.debug("could not record running trials as failed: %s", exc)
            except Exception:  # noqa: BLE001
                logger.exception("could not record running trials as failed")
        self._notify()
        try:
            self.backend.close(kill=self._abort.is_set() or bool(self._retiring) or bool(self._cancelled))
        finally:
            try:
                self._write_study_attrs(force=True)
            except Exception:  # noqa: BLE001 - the study may be what failed
                logger.debug("could not write the recorder's study attrs", exc_info=True)

    def sweep_end(self, outcome: str) -> SweepEnd:
        """How the sweep ended, for the recorder's ``close``."""
        front: tuple[int, ...] = ()
        if self._n_objectives > 1:
            try:
                front = tuple(sorted(t.number for t in self.study.best_trials))
            except Exception:  # noqa: BLE001 - no complete trial
                front = ()
        return SweepEnd(outcome, self._stop_reason, self.progress(), front)  # type: ignore[arg-type]


def _spec_name(spec: Any) -> str:
    return spec["name"] if isinstance(spec, dict) else str(spec.name)


def _now_ms() -> int:
    return int(time.time() * 1000)
