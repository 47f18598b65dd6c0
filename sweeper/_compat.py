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
