"""Every use of a private API of Optuna, MLflow or scikit-learn, in one place, each with its reason.

A private name can change in any release. Keeping each use here, behind a function with the
reason beside it, means one file to read when a library moves, and ``tests/test_compat.py``
calls every function here against the installed versions, so a broken one fails loudly there
rather than quietly in a sweep. Each function imports its library inside, so importing this
module costs nothing: stdlib only at module level.
"""

from __future__ import annotations

from typing import Any


# --- Optuna -------------------------------------------------------------------------------------
# The coordinator drives a study by ask/tell, Optuna's public seam, but three things an ask/tell
# loop needs have no public API: being "the optimize loop" (so ``study.stop()`` from a sampler or
# callback is accepted), reading the stop request, and annotating a live trial with system attrs
# (``Trial.set_system_attr`` was removed in Optuna 3.0; sweeper's bookkeeping must stay out of
# the user's ``user_attrs``).


def enter_optimize_loop(study: Any) -> None:
    """Let ``study.stop()`` be called during our loop (GridSampler calls it once the grid is
    covered; Optuna refuses it outside ``study.optimize``), and clear an old stop request."""
    study._thread_local.in_optimize_loop = True
    study._stop_flag = False


def leave_optimize_loop(study: Any) -> None:
    study._thread_local.in_optimize_loop = False


def stop_requested(study: Any) -> bool:
    """True once a sampler or callback called ``study.stop()``."""
    return bool(study._stop_flag)


def set_trial_system_attr(study: Any, trial: Any, key: str, value: Any) -> None:
    """A system attr on a trial that is still running (a finished one refuses it)."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def stored_trial(study: Any, trial: Any) -> Any:
    """The trial as the storage holds it now (a ``FrozenTrial``)."""
    return study._storage.get_trial(trial._trial_id)


def best_ties_to_first_told(study: Any) -> bool:
    """Reason: which of several trials with the best value ``study.best_trial`` names depends on
    the storage, and a study does not say publicly which one it has (``study._storage``):
    ``InMemoryStorage`` keeps the first one told (it moves its best only on a strictly better
    value); journal and database storages take the lowest trial. True for the first kind."""
    from optuna.storages import InMemoryStorage

    return isinstance(study._storage, InMemoryStorage)


# --- MLflow -------------------------------------------------------------------------------------


def forget_active_mlflow_run() -> None:
    """In a worker whose objective logged with plain ``mlflow.log_*``: forget the run MLflow
    made active for it (resumed through ``MLFLOW_RUN_ID``) without ending it, so the next
    trial's calls do not land in it and the coordinator still sets its final status.
    ``mlflow.end_run()`` would end the run; MLflow has no public "detach". Only when the
    objective loaded mlflow (never imported for this)."""
    fluent = __import__("sys").modules.get("mlflow.tracking.fluent")
    if fluent is not None:
        fluent._active_run_stack.get().clear()


# --- multiprocessing (the standard library) --------------------------------------------------------
# multiprocessing puts its sockets (the forkserver's, a Manager's) in a ``pymp-*`` directory it
# makes in the system temp directory on first need, and removes it only when the process exits
# cleanly: a SIGKILLed coordinator leaves it behind. There is no public way to choose it.


def use_multiprocessing_temp_dir(path: str) -> bool:
    """Reason: the directory is cached per process in ``current_process()._config["tempdir"]``
    (``multiprocessing.util.get_temp_dir``), which child processes inherit. Make it ``path``
    unless this process already has one (a host's own multiprocessing use is left alone);
    True when it was set."""
    from multiprocessing import process

    config = process.current_process()._config  # type: ignore[attr-defined]
    if config.get("tempdir"):
        return False
    config["tempdir"] = path
    return True


# --- scikit-learn (config checks) -----------------------------------------------------------------
# scikit-learn declares what each estimator parameter, and each argument of a validated function
# such as make_classification, accepts, and checks it at fit/call time. Reading the declarations
# lets `sweeper validate` refuse a value without fitting; the declarations and their checker are
# private (sklearn.utils._param_validation).


def parameter_constraints(target: Any) -> dict[str, Any]:
    """Reason: ``Estimator._parameter_constraints`` / ``function._skl_parameter_constraints`` are
    the only declaration of accepted values. Parameter name -> constraints; empty when none."""
    declared = getattr(target, "_parameter_constraints", None)
    if not isinstance(declared, dict):
        declared = getattr(target, "_skl_parameter_constraints", None)
    return dict(declared) if isinstance(declared, dict) else {}


def unmet_constraint(constraints: Any, value: Any) -> tuple[str, tuple[str, ...]] | None:
    """Reason: judging a value needs sklearn's private ``make_constraint``/``is_satisfied_by``.
    ``(what is accepted, as sklearn words it; the accepted strings)`` when ``value`` meets none
    of one parameter's ``constraints``; None when it meets one or they cannot be judged here."""
    try:
        from sklearn.utils._param_validation import StrOptions, make_constraint

        if not isinstance(constraints, (list, tuple)):  # "no_validation"
            return None
        made = [make_constraint(constraint) for constraint in constraints]
        if any(constraint.is_satisfied_by(value) for constraint in made):
            return None
    except Exception:  # noqa: BLE001 - a kind of constraint this code cannot judge: say nothing
        return None
    shown = [constraint for constraint in made if not getattr(constraint, "hidden", False)]
    if not shown:
        return None

    def described(constraint: Any) -> str:  # sklearn lists a set's strings in hash order: sort them
        if isinstance(constraint, StrOptions):
            current = sorted(o for o in constraint.options if o not in constraint.deprecated)
            return "one of " + ", ".join(map(repr, current))
        return str(constraint)

    texts = [described(constraint) for constraint in shown]
    accepted = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + f" or {texts[-1]}"
    words = sorted({o for c in shown if isinstance(c, StrOptions) for o in c.options if isinstance(o, str)})
    return accepted, tuple(words)


# --- Dask distributed (the Dask backend, ``sweeper.workers.dask``) --------------------------------
# A Dask worker that dies mid-trial must be reported with why it died ("exited (code 7)", "killed
# by SIGKILL"), as a local worker is; only its nanny knows the exit code, and it tells no one.
# A serve task must notice that the coordinator that wanted it is gone (its client released the
# task) to end a trial nobody waits for; a running task is not told.


def on_dask_worker_exit(nanny: Any, callback: Any) -> None:
    """Reason: ``distributed.Nanny`` hands its worker process's exit code only to its private
    ``_on_worker_exit_sync`` (which restarts the worker), through the ``on_exit`` attribute of
    its ``WorkerProcess``. Call ``callback(exitcode)`` first, for the process running now and
    for every later one (the nanny makes its ``WorkerProcess`` once and restarts through it)."""
    original = nanny._on_worker_exit_sync

    def hook(exitcode: int) -> None:
        try:
            callback(exitcode)
        finally:
            original(exitcode)

    nanny._on_worker_exit_sync = hook
    if nanny.process is not None:
        nanny.process.on_exit = hook


def dask_task_wanted(worker: Any, key: Any) -> bool:
    """Reason: a running task is not told when every client that wanted it is gone (a killed
    coordinator); the worker's state machine (``Worker.state.tasks``, documented but not a
    stable API) then moves it to ``cancelled``. True while the task ``key`` is still wanted."""
    task = worker.state.tasks.get(key)
    return task is not None and task.state in ("executing", "long-running", "resumed")
