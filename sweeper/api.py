"""Run a sweep from Python: ``optimize(objective, ...)`` and ``run(config)``.

Both build one ``SweepSpec`` and run one ``Sweep`` (``sweeper.sweep``), as the CLI does, so an
option means the same thing and has the same default on every path.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import SweeperError

if TYPE_CHECKING:  # the config machinery (YAML, schema) loads when a config runs
    from .config import SweepConfig
    from .engine.coordinator import SweepSummary
    from .sweep import SweepResult


class _Default:
    """``optimize``'s marker for "as the option table says" where None means something else."""

    def __repr__(self) -> str:
        return "<the option's default>"


DEFAULT: Any = _Default()


def optimize(
    objective: Callable[..., Any] | str,
    *,
    n_trials: int | None = None,
    n_jobs: int | None = None,
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    sampler: Any = None,
    pruner: Any = None,
    study_name: str | None = None,
    storage: Any = None,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    seed: int | None = None,
    objective_kwargs: Mapping[str, Any] | None = None,
    in_process: bool = False,
    start_method: str | None = None,
    track: bool = True,
    max_retries: int = 0,
    retry_exceptions: bool = False,
    max_consecutive_failures: int | None = DEFAULT,
    metric_names: Sequence[str] | None = None,
    load_if_exists: bool = False,
    callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
    capture_output: bool = True,
    max_trials_per_worker: int | None = None,
    max_worker_memory_mb: int | None = None,
    show_progress_bar: bool = False,
    cluster: str | None = None,
) -> Any:
    """Run ``objective(trial)`` in worker processes and return the ``optuna.Study``.

    The same call as ``optuna.create_study(...).optimize(objective, n_trials=...)``, but each
    trial runs in its own worker process (true parallelism for CPU-bound trials, crash
    isolation), and every trial is a nested MLflow run under one parent run per sweep. Like
    Optuna, it logs one line per finished trial (the ``sweeper`` logger, INFO, on stderr unless
    logging is configured; ``logging.getLogger("sweeper").setLevel(logging.WARNING)`` silences it).

    Args:
        objective: ``objective(trial) -> float | Sequence[float]``: a function, a callable
            instance, a ``functools.partial``, a lambda or a closure, from a module, a script, a
            notebook or ``python -c``; or an import path ``"pkg.mod:fn"``. A module-level
            function of an importable module is sent by reference (each worker imports it);
            anything else by value, pickled once here with cloudpickle and unpickled once per
            worker (what it holds is copied into each worker: share large arrays with
            ``sweeper.share``). Workers never run your script again, so a script calling
            ``optimize`` needs no ``if __name__ == "__main__":`` guard (unless
            ``objective_kwargs`` hold objects of classes the script defines).
        n_trials: trials to run (``None``: until ``timeout``).
        n_jobs: worker processes (default: the cores available to this process).
        direction / directions: as in Optuna; ``directions`` for multi-objective.
        sampler / pruner: an Optuna object or a name ("tpe", "random", "grid", "median", ...);
            the default pruner is Optuna's (``MedianPruner``), as ``optuna.create_study``.
        study_name / storage / load_if_exists: as in Optuna (default: in memory, like Optuna).
            A study loaded again continues its MLflow parent run.
        timeout: seconds after which no new trial starts.
        trial_timeout: seconds after which a running trial is killed and failed.
        tracking_uri / experiment: MLflow store and experiment (default: ``./mlflow.db``,
            experiment "sweeper"). ``track=False`` disables MLflow.
        in_process: run trials in threads of this process (``breakpoint()`` works).
        max_consecutive_failures: stop after this many failed trials in a row (default 10;
            None: never).
        callbacks: ``callback(study, frozen_trial)`` after each trial, as in Optuna; calling
            ``study.stop()`` there stops the sweep gracefully (running trials finish).
        capture_output: keep each trial's stdout/stderr as ``output.txt`` on its child run
            (not in ``in_process`` mode).
        max_trials_per_worker / max_worker_memory_mb: recycle a worker process after this
            many trials, or after a trial that left it bigger than this.
        cluster: run the workers on a Dask cluster: ``"tcp://host:8786"`` (a scheduler) or
            ``"local:N"`` (N one-thread worker processes here); needs ``sweeper[dask]``.
        show_progress_bar: a live bar (tqdm: a widget in Jupyter, text in a terminal) over
            ``n_trials`` (or the seconds of ``timeout``), with the best value so far.

    Returns:
        The study; ``study.user_attrs["mlflow_parent_run_id"]`` names the parent run.

    Raises:
        SweeperError: the objective cannot reach a worker, or a setting is invalid.
        KeyboardInterrupt: after Ctrl-C, once running trials are recorded.

    Example:
        >>> def objective(trial):
        ...     return (trial.suggest_float("x", -10, 10) - 2) ** 2
        >>> study = sweeper.optimize(objective, n_trials=20, n_jobs=2)
    """
    from .config import options_from_kwargs
    from .progress import TrialProgress
    from .sweep import Sweep, SweepSpec

    given: dict[str, Any] = {
        "name": study_name, "n_trials": n_trials, "n_jobs": n_jobs, "timeout": timeout,
        "trial_timeout": trial_timeout, "seed": seed, "direction": direction,
        "directions": list(directions) if directions is not None else None,
        "metric_names": list(metric_names) if metric_names is not None else None,
        "max_retries": max_retries, "retry_exceptions": retry_exceptions, "capture_output": capture_output,
        "max_trials_per_worker": max_trials_per_worker, "max_worker_memory_mb": max_worker_memory_mb,
        "show_progress_bar": show_progress_bar,
        "cluster": cluster,
        "sampler": sampler if isinstance(sampler, str) else None,
        "tracking": {k: v for k, v in (("uri", tracking_uri), ("experiment", experiment or study_name)) if v},
    }
    values = {k: v for k, v in given.items() if v is not None}
    if max_consecutive_failures is not DEFAULT:  # None is meaningful here: never stop
        values["max_consecutive_failures"] = max_consecutive_failures
    config = options_from_kwargs(values)
    if n_trials is None and timeout is None:
        raise SweeperError("sweeper.optimize(): give n_trials or timeout, or the sweep would never end")
    progress = TrialProgress(n_trials=n_trials, timeout_s=timeout, show_bar=config.show_progress_bar,
                             metric_names=metric_names)
    spec = SweepSpec(
        config=config, objective=objective, objective_kwargs=objective_kwargs,
        sampler=None if sampler is None or isinstance(sampler, str) else sampler,
        pruner=pruner if pruner is not None else "median",  # Optuna's default, as optuna.create_study
        storage=storage, journal=False, load_if_exists=load_if_exists, n_trials_more=True, in_process=in_process,
        start_method=start_method, track=track, report=False, callbacks=tuple(callbacks or ()),
        on_trial_finished=progress,
    )
    with progress:
        result = Sweep(spec).run()
    if result.summary.signal == signal.SIGINT:
        raise KeyboardInterrupt
    return result.study


def run(config: SweepConfig | str | os.PathLike[str], **overrides: Any) -> Any:
    """Run a YAML sweep config (or a loaded ``SweepConfig``) and return the ``optuna.Study``.

    ``overrides`` set config keys, as ``--set`` does: ``run("configs/rf.yaml", n_trials=5)``.
    """
    result = run_config(config, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    return result.study


def run_config(
    config: SweepConfig | str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    on_trial_finished: Callable[[Any, SweepSummary, int], None] | None = None,
    start_method: str | None = None,
) -> SweepResult:
    """``run`` for the CLI: also returns the summary, MLflow ids and whether anything ran."""
    from .config import SweepConfig, load_config
    from .sweep import Sweep, SweepSpec

    cfg = config if isinstance(config, SweepConfig) else load_config(config, overrides)
    spec = SweepSpec(config=cfg, start_method=start_method, on_trial_finished=on_trial_finished)
    return Sweep(spec).run()
