"""The worker loop itself, free of any process set-up: what a remote engine runs as a task.

    inbox --RunTrial--> objective(trial) --Suggest/Report/.../TrialFinished--> outbox
          --Shutdown--> return                 (lifeline() False: the coordinator is gone: return)

``serve`` says ``WorkerReady`` once, then runs one trial at a time until ``Shutdown``. It never
raises for what an objective does (raise, return garbage, call ``sys.exit``): the coordinator
gets exactly one ``TrialFinished`` of plain data per trial. Objectives are loaded once per
``serve``: sent by value (pickled bytes, unpickled at start) or imported by path on first use.
Signals, watchdogs, output capture and recycling belong to whoever hosts the loop
(``process.worker_main`` for local processes). Never imports optuna or mlflow.
"""

from __future__ import annotations

import importlib
import math
import os
import pickle
import queue
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .. import _compat
from ..errors import TrialPruned
from .messages import RunTrial, Shutdown, TrialEnv, TrialEnvRequest, TrialFinished, WorkerReady
from .shared import materialize
from .trial import Trial

#: How often an idle ``serve`` with a lifeline asks it whether the coordinator is still there.
LIFELINE_POLL_S = 1.0

class Channel(Protocol):
    """A worker's inbox or outbox: a ``queue.Queue``, a Manager queue, a remote queue."""

    def put(self, item: Any) -> None: ...
    def get(self, block: bool = ..., timeout: float | None = ...) -> Any: ...


#: Wraps each trial's run (``run()`` -> its ``TrialFinished``): the host's hook for output
#: capture and recycling (set ``worker_exits`` and ``serve`` returns after sending the result).
AroundTrial = Callable[[RunTrial, Callable[[], TrialFinished]], TrialFinished]


def serve(
    worker_id: int,
    inbox: Channel,
    outbox: Channel,
    lifeline: Callable[[], bool] | None = None,
    *,
    objectives: Mapping[str, Any] | None = None,
    around_trial: AroundTrial | None = None,
) -> None:
    """Run trials from ``inbox`` until ``Shutdown``, the channel is lost, or ``lifeline()`` says
    the coordinator is gone (checked every ``LIFELINE_POLL_S`` while idle; None: block).

    ``objectives`` maps the names ``RunTrial.objective`` may carry to objectives sent by value:
    pickled bytes (cloudpickle, across a process boundary) or the callable itself (a backend
    whose workers share the coordinator's memory). Any other name is an import path
    ``"pkg.mod:qualname"``."""
    loaded = Objectives(objectives or {})
    try:
        outbox.put(WorkerReady(worker_id, socket.gethostname(), os.getpid()))
        while True:
            message = _next(inbox, lifeline)
            if message is None or isinstance(message, Shutdown):
                return
            if isinstance(message, RunTrial):
                def run(message: RunTrial = message) -> TrialFinished:
                    return run_trial(worker_id, message, inbox, outbox, loaded)

                outcome = run() if around_trial is None else around_trial(message, run)
                outbox.put(outcome)
                if outcome.worker_exits:
                    return
            # Stale answers (a Suggestion for a trial that already ended) are dropped.
    except (EOFError, OSError):
        return  # the channel is gone: the coordinator is shutting down or died


def _next(inbox: Channel, lifeline: Callable[[], bool] | None) -> Any:
    """The next message, or None once the lifeline says the coordinator is gone."""
    if lifeline is None:
        return inbox.get()
    while True:
        try:
            return inbox.get(timeout=LIFELINE_POLL_S)
        except queue.Empty:
            if not lifeline():
                return None


class Objectives:
    """The objectives one worker runs: those sent by value are unpickled once, when the worker
    starts (a failure is kept and fails each trial that names it, with its traceback); import
    paths are imported on first use and kept."""

    def __init__(self, by_value: Mapping[str, Any]) -> None:
        self._loaded: dict[str, Callable[..., Any]] = {}
        self._broken: dict[str, str] = {}
        for name, payload in by_value.items():
            if callable(payload):
                self._loaded[name] = payload
                continue
            try:
                self._loaded[name] = pickle.loads(payload)  # cloudpickle output loads with pickle
            except BaseException:  # noqa: BLE001 - whatever unpickling does, the worker stays up
                self._broken[name] = traceback.format_exc()

    def get(self, name: str) -> Callable[..., Any]:
        if name in self._broken:
            raise ObjectiveUnavailable(
                f"the objective sent by value ({name}) could not be unpickled in this worker "
                f"(is every module it uses installed here?):\n{self._broken[name]}"
            )
        if name not in self._loaded:
            self._loaded[name] = import_callable(name)
        return self._loaded[name]


class ObjectiveUnavailable(Exception):
    """The objective a trial names cannot be had in this worker."""


def import_callable(path: str) -> Callable[..., Any]:
    """The object ``"pkg.module:qualname"`` names."""
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


def run_trial(worker_id: int, message: RunTrial, inbox: Channel, outbox: Channel,
              objectives: Objectives) -> TrialFinished:
    """Run one objective call and describe its outcome as plain data."""
    number = message.trial_number
    trial = Trial(number, message.params, worker_id=worker_id, inbox=inbox, outbox=outbox, study=message.study,
                  relative_params=message.relative_params)
    started = time.perf_counter()

    def finished(state: str, **fields: Any) -> TrialFinished:
        return TrialFinished(
            worker_id, number, state, duration_s=time.perf_counter() - started, **fields  # type: ignore[arg-type]
        )

    try:
        objective = objectives.get(message.objective)
        kwargs = materialize(message.objective_kwargs)  # shared-memory arrays -> read-only views
        with _mlflow_run_of(trial, outbox, worker_id):
            result = objective(trial, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from an objective is a failure too
        if _is_pruned(exc):
            return finished("pruned", reason="pruned")
        return finished(
            "fail",
            error=_describe(exc),
            traceback=traceback.format_exc(),
            reason="exception",
        )
    try:
        values = coerce_values(result)
    except ValueError as exc:
        return finished("fail", error=str(exc), reason="bad_value")
    return finished("complete", values=values)


def coerce_values(result: Any) -> tuple[float, ...]:
    """Turn an objective's return value into floats here, so no user type crosses the queue."""
    items = result if isinstance(result, (list, tuple)) else [result]
    values = []
    for item in items:
        if isinstance(item, (str, bytes)) or item is None:
            raise ValueError(
                f"objective must return a float or a sequence of floats, got {type(item).__name__} {item!r:.80}"
            )
        try:
            value = float(item)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"objective must return a float or a sequence of floats, got {type(item).__name__}"
            ) from None
        if math.isnan(value):
            raise ValueError("objective returned nan, which is not an acceptable value")
        values.append(value)
    if not values:
        raise ValueError("objective returned an empty sequence")
    return tuple(values)


def _is_pruned(exc: BaseException) -> bool:
    if isinstance(exc, TrialPruned):
        return True
    optuna_exceptions = sys.modules.get("optuna.exceptions")  # never import optuna for this
    return optuna_exceptions is not None and isinstance(exc, optuna_exceptions.TrialPruned)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"SystemExit: objective called sys.exit({exc.code!r})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _mlflow_run_of:
    """Point plain ``mlflow.log_*`` calls in the objective at this trial's own record.

    Only when the objective's process loaded mlflow: other workers never pay for it. The
    coordinator answers with environment variables (the run to resume, the store), which hold
    for the objective's call; afterwards the run is let go without ending it, so the
    coordinator still sets its final status.
    """

    def __init__(self, trial: Trial, outbox: Channel, worker_id: int) -> None:
        self._trial, self._outbox, self._worker_id = trial, outbox, worker_id
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        if "mlflow" not in sys.modules:
            return
        self._outbox.put(TrialEnvRequest(self._worker_id, self._trial.number))
        reply: TrialEnv = self._trial._await(TrialEnv)
        for key, value in reply.env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        if not self._saved:
            return
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _compat.forget_active_mlflow_run()
