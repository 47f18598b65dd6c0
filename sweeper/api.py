"""Run a sweep from Python: ``optimize(objective, ...)`` and ``run(config)``.

Wires the pieces: config or arguments -> Optuna study (resumed if it exists) -> backend ->
coordinator -> MLflow tracker, and installs the two-stage Ctrl-C handling when called from
the main thread. Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from .engine import study as _study
from .workers.local import Backend, InlineBackend, LocalBackend
from .engine.coordinator import Coordinator, SweepPlan, SweepSummary, logger
from .workers.shared import Publication
from ._redact import redact_uri
from .tracking.writer import check_reachable, metric_names, record_of, resolve_tracking_uri
from .errors import SweeperError, TrackingError

if TYPE_CHECKING:  # run_config's machinery (YAML, schema) loads when a config runs, not for optimize()
    from .tracking.process import ProcessTracker
    from .tracking.writer import Tracker
    from .config import SweepConfig

BUILTIN_OBJECTIVE = "sweeper.objectives.sklearn:sklearn_objective"


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: the study plus how the run went."""

    study: Any
    summary: SweepSummary
    tracking_uri: str | None = None
    experiment: str | None = None
    parent_run_id: str | None = None
    run_ids: dict[int, str] = field(default_factory=dict)
    nothing_to_do: bool = False


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
    max_consecutive_failures: int | None = None,
    metric_names: Sequence[str] | None = None,
    load_if_exists: bool = False,
    callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
    capture_output: bool = True,
    max_trials_per_worker: int | None = None,
    max_worker_memory_mb: int | None = None,
) -> Any:
    """Run ``objective(trial)`` in worker processes and return the ``optuna.Study``.

    The same call as ``optuna.create_study(...).optimize(objective, n_trials=...)``, but each
    trial runs in its own worker process (true parallelism for CPU-bound trials, crash
    isolation), and every trial is a nested MLflow run under one parent run per sweep.

    Args:
        objective: a module-level function ``objective(trial) -> float | Sequence[float]``
            (or its import path ``"pkg.mod:fn"``). It must be importable by a fresh process:
            no lambdas or closures; a script needs an ``if __name__ == "__main__":`` guard.
        n_trials: trials to run (``None``: until ``timeout``).
        n_jobs: worker processes (default: the cores available to this process).
        direction / directions: as in Optuna; ``directions`` for multi-objective.
        sampler / pruner: an Optuna object or a name ("tpe", "random", "grid", "median", ...).
        study_name / storage: as in Optuna (default: in memory, like Optuna).
        timeout: seconds after which no new trial starts.
        trial_timeout: seconds after which a running trial is killed and failed.
        tracking_uri / experiment: MLflow store and experiment (default: MLflow's default
            store, experiment "sweeper"). ``track=False`` disables MLflow.
        in_process: run trials in threads of this process (``breakpoint()`` works).
        callbacks: ``callback(study, frozen_trial)`` after each trial, as in Optuna; calling
            ``study.stop()`` there stops the sweep gracefully (running trials finish).
        capture_output: keep each trial's stdout/stderr as ``output.txt`` on its child run
            (not in ``in_process`` mode).
        max_trials_per_worker / max_worker_memory_mb: recycle a worker process after this
            many trials, or after a trial that left it bigger than this.

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
    from .workers.worker import _CALLABLES

    if n_trials is None and timeout is None:
        raise SweeperError("give n_trials or timeout, or the sweep would never end")
    if n_trials is not None and n_trials < 1:
        raise SweeperError(f"n_trials must be >= 1, got {n_trials}")
    path = objective if isinstance(objective, str) else callable_path(objective, in_process=in_process)
    if in_process and not isinstance(objective, str):
        _CALLABLES[path] = objective
    backend: Backend = InlineBackend() if in_process else LocalBackend(
        start_method, max_trials_per_worker=max_trials_per_worker, max_worker_memory_mb=max_worker_memory_mb,
    )
    if isinstance(backend, LocalBackend):
        backend.prewarm()  # the forkserver boots while optuna is imported here

    import optuna

    from .config.space import make_pruner, make_sampler

    name = study_name or "sweep-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    study = optuna.create_study(
        storage=storage,
        sampler=make_sampler(sampler if sampler is not None else "tpe", seed=seed),
        pruner=make_pruner(pruner) if pruner is not None else optuna.pruners.MedianPruner(),
        study_name=name,
        direction=cast(Any, direction) if directions is None else None,  # optuna validates it
        directions=cast(Any, list(directions)) if directions is not None else None,
        load_if_exists=load_if_exists,
    )
    if metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning: stable since Optuna 3.2
            study.set_metric_names(list(metric_names))
    publication = Publication()
    kwargs = dict(objective_kwargs or {})
    plan = SweepPlan(
        objective=path,
        objective_kwargs=kwargs if in_process else publication.share_large_arrays(kwargs),
        n_trials=n_trials,
        timeout_s=timeout,
        trial_timeout_s=trial_timeout,
        max_retries=max_retries,
        retry_exceptions=retry_exceptions,
        max_consecutive_failures=max_consecutive_failures,
    )
    workers = resolve_n_jobs(n_jobs)
    params = {
        "objective": path, "n_trials": n_trials, "n_jobs": workers, "seed": seed,
        "sampler": type(study.sampler).__name__, "pruner": type(study.pruner).__name__,
        "timeout": timeout, "trial_timeout": trial_timeout,
        "directions": ",".join(d.name.lower() for d in study.directions),
    }
    result = execute(
        study, plan, backend, workers,
        tracking_uri=resolve_tracking_uri(tracking_uri) if track else None,
        experiment=experiment or "sweeper", run_name=name, parent_params=params, texts={},
        callbacks=callbacks, capture_output=capture_output and not in_process, publication=publication,
    )
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
    import optuna

    from .report.report import finalize_sweep
    from .config.space import make_pruner, make_sampler
    from .config import SweepConfig, check_config, grid_size, grid_values, load_config

    if isinstance(config, SweepConfig):
        cfg = config
    else:
        cfg = load_config(config, overrides)
    backend = LocalBackend(
        start_method, preload=_preload_for(cfg),
        max_trials_per_worker=cfg.max_trials_per_worker, max_worker_memory_mb=cfg.max_worker_memory_mb,
    )
    backend.prewarm()  # workers' imports overlap with check_config's (different cores)
    check_config(cfg)
    uri = resolve_tracking_uri(cfg.tracking.uri)
    try:
        check_reachable(uri)  # before the sweep directory, any worker or any run exists
    except TrackingError as exc:
        if cfg.tracking.required:
            raise
        logger.warning("%s; going on without it (tracking.required: false): runs are spooled to "
                       ".sweeper/%s/spool.jsonl", exc, cfg.name)
    space = tuple(cfg.search_space)
    is_grid = cfg.sampler.name == "grid"
    size = grid_size(space) if is_grid else None
    n_trials = cfg.n_trials
    if size is not None:
        n_trials = size if n_trials is None else min(n_trials, size)
    builtin = cfg.objective is None
    directions = list(cfg.study_directions)
    directory = _study.sweep_dir(cfg.storage_dir or ".sweeper", cfg.name)
    lock = _study.SweepLock(directory)
    lock.acquire()
    publication = Publication()
    try:
        study = optuna.create_study(
            storage=_study.journal_storage(directory, owner=True),
            sampler=make_sampler(
                cfg.sampler.name, cfg.sampler.kwargs, seed=cfg.seed,
                grid=grid_values(space) if is_grid else None,
            ),
            pruner=make_pruner(cfg.pruner.name if cfg.pruner else None, cfg.pruner.kwargs if cfg.pruner else None),
            study_name=cfg.name,
            directions=directions,
            load_if_exists=True,
        )
        spec = _spec(cfg, directions)
        resumed = _study.resume(study, spec, cfg.source)
        if redact_uri(uri) == uri and study.user_attrs.get(_study.TRACKING_URI_ATTR) != uri:
            study.set_user_attr(_study.TRACKING_URI_ATTR, uri)  # `sweeper ui NAME` finds the store
        remaining = None if n_trials is None else max(0, n_trials - resumed.finished)
        experiment = cfg.tracking.experiment or cfg.name
        if remaining == 0:
            return SweepResult(study, SweepSummary(), uri, experiment, resumed.parent_run_id, nothing_to_do=True)
        if resumed.requeued:
            logger.warning("resuming %s: trials %s were left running and are queued again",
                           cfg.name, resumed.requeued)
        workers = resolve_n_jobs(cfg.n_jobs)
        if builtin:
            objective, kwargs = BUILTIN_OBJECTIVE, _builtin_kwargs(cfg, workers, space, publication)
        else:
            assert cfg.objective is not None
            objective, kwargs = cfg.objective, dict(cfg.objective_kwargs)
        plan = SweepPlan(
            objective=objective, objective_kwargs=kwargs, space=space, n_trials=remaining,
            timeout_s=cfg.timeout, trial_timeout_s=cfg.trial_timeout,
            max_retries=cfg.max_retries, retry_exceptions=cfg.retry_exceptions,
            tracking_required=cfg.tracking.required,
            max_consecutive_failures=1 if cfg.fail_fast else cfg.max_consecutive_failures,
        )
        result = execute(
            study, plan, backend, workers, tracking_uri=uri, experiment=experiment,
            run_name=cfg.name, parent_params=_config_params(cfg, workers),
            texts={"sweep.yaml": _config_yaml(cfg)}, parent_run_id=resumed.parent_run_id,
            reconcile=_finished_records(study),
            spool_path=str(directory / "spool.jsonl"), on_trial_finished=on_trial_finished,
            capture_output=cfg.capture_output, pids_path=str(directory / "pids.json"),
            publication=publication, writer_process=_writer_process(cfg),
        )
        if cfg.report:
            finalize_sweep(cfg, result)
        return result
    finally:
        publication.release()
        lock.release()


def execute(
    study: Any,
    plan: SweepPlan,
    backend: Backend,
    n_workers: int,
    *,
    tracking_uri: str | None,
    experiment: str,
    run_name: str,
    parent_params: Mapping[str, Any],
    texts: Mapping[str, str],
    parent_run_id: str | None = None,
    spool_path: str | None = None,
    on_trial_finished: Callable[[Any, SweepSummary, int], None] | None = None,
    callbacks: Sequence[Callable[[Any, Any], None]] | None = None,
    capture_output: bool = False,
    reconcile: Mapping[int, Any] | None = None,
    pids_path: str | None = None,
    publication: Publication | None = None,
    writer_process: bool = True,
) -> SweepResult:
    """Run a planned sweep with tracking and signal handling; the seam both APIs share.

    MLflow is written from a child process (``writer_process``), off the coordinator's GIL;
    a caller that uses mlflow itself right after the sweep (the end-of-sweep report) on a store
    the writer would open through mlflow too asks for the writer thread instead, so mlflow is
    imported once, not twice (``_writer_process``)."""
    scratch_dir = None
    if tracking_uri is not None:  # staged artifacts and captured output wait here for upload
        scratch_dir = tempfile.mkdtemp(prefix="sweeper-scratch-")
        plan = dataclasses.replace(plan, scratch_dir=scratch_dir, capture_output=capture_output)
    tracker = None
    if tracking_uri is not None:
        if plan.tracking_required:
            check_reachable(tracking_uri)  # before any worker starts
        from .tracking.process import ProcessTracker
        from .tracking.writer import Tracker

        tracker_class = ProcessTracker if writer_process else Tracker
        tracker = tracker_class(
            tracking_uri, experiment, run_name, parent_run_id=parent_run_id, spool_path=spool_path,
            reconcile=reconcile, start_ms=int(time.time() * 1000),
        )
        params = {k: v for k, v in parent_params.items() if v is not None}
        tracker.start(params, _parent_tags(study), texts)
    coordinator = Coordinator(
        study, plan, backend, n_workers, tracker=tracker, on_trial_finished=on_trial_finished,
        callbacks=callbacks, pids_path=pids_path,
    )
    status = "FAILED"
    try:
        with _two_stage_interrupt(coordinator):
            summary = coordinator.run()
        status = "KILLED" if summary.signal is not None else "FINISHED"
    finally:
        if tracker is not None:
            end_tags, child_tags = _closing_tags(study, coordinator.summary)
            tracker.close(status, end_tags, child_tags)
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)
        if publication is not None:
            publication.release()
    result = SweepResult(study, summary, tracking_uri, experiment)
    if tracker is not None:
        summary.tracking_failures = list(tracker.failures)
        result.parent_run_id = tracker.parent_run_id
        result.run_ids = dict(tracker.run_ids)
        _link_runs(study, tracker)
    return result


def _finished_records(study: Any) -> dict[int, Any]:
    names = metric_names(study)
    return {t.number: record_of(t, names) for t in study.get_trials(deepcopy=False) if t.state.is_finished()}


def _closing_tags(study: Any, summary: SweepSummary) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """Parent tags that sum the sweep up, and the Pareto front's child tags (multi-objective)."""
    tags: dict[str, str] = {}
    if summary.stopped:
        tags["sweeper.stopped"] = summary.stopped
    child_tags: dict[int, dict[str, str]] = {}
    if len(study.directions) > 1:
        try:
            front = sorted(t.number for t in study.best_trials)
        except Exception:  # noqa: BLE001 - no complete trial
            front = []
        tags["sweeper.pareto_front"] = ",".join(map(str, front))[:5000]
        child_tags = {number: {"sweeper.pareto_front": "true"} for number in front}
    return tags, child_tags


def _link_runs(study: Any, tracker: Tracker | ProcessTracker) -> None:
    """Write MLflow ids into the study, so the study alone leads to every run. Trials whose
    child run was still being created when they ended are listed in a study user attr."""
    if tracker.parent_run_id is None:
        return
    study.set_user_attr(_study.PARENT_RUN_ATTR, tracker.parent_run_id)
    if tracker.experiment_id is not None:
        study.set_user_attr(_study.EXPERIMENT_ATTR, tracker.experiment_id)
    unlinked = {
        str(t.number): tracker.run_ids[t.number]
        for t in study.get_trials(deepcopy=False)
        if t.number in tracker.run_ids and "sweeper:mlflow_run_id" not in t.system_attrs
    }
    if unlinked:
        study.set_user_attr(_study.RUN_IDS_ATTR, {**study.user_attrs.get(_study.RUN_IDS_ATTR, {}), **unlinked})


@contextlib.contextmanager
def _two_stage_interrupt(coordinator: Coordinator) -> Iterator[None]:
    """First Ctrl-C/SIGTERM: no new trials, running ones get a grace period. Second: now.

    Only from the main thread: ``signal.signal`` refuses elsewhere, and an embedding host
    that runs us in a thread keeps its own handlers (stop via ``Coordinator.stop``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        if coordinator.summary.signal is None:
            coordinator.summary.signal = signum
            name = signal.Signals(signum).name
            print(
                f"\nsweeper: {name}: stopping, no new trials; waiting up to "
                f"{coordinator.plan.stop_grace_s:.0f}s for running trials ({name} again to abort)",
                file=sys.stderr, flush=True,
            )
            coordinator.stop(f"interrupted by {name}")
        else:
            coordinator.stop("interrupted", immediate=True)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def resolve_n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == -1:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - macOS/Windows
            return max(1, os.cpu_count() or 1)
    if n_jobs < 1:
        raise SweeperError(f"n_jobs must be >= 1 (or -1 for all cores), got {n_jobs}")
    cores = resolve_n_jobs(None)
    if n_jobs > cores:
        logger.warning("n_jobs=%d worker processes on %d cores: CPU-bound trials will slow each other down",
                       n_jobs, cores)
    return n_jobs


def callable_path(fn: Callable[..., Any], *, in_process: bool = False) -> str:
    """``"module:qualname"`` of a function a fresh worker process can import, or a clear error."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if module is None or qualname is None:
        raise SweeperError(
            f"objective {fn!r} has no importable name; pass a module-level function "
            "(use objective_kwargs= instead of functools.partial)"
        )
    if in_process:
        return f"{module}:{qualname}#{id(fn)}" if "<" in qualname else f"{module}:{qualname}"
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise SweeperError(
            f"objective {qualname} is a lambda or a nested function, which a worker process cannot "
            "import; define it with `def` at module level (or use in_process=True)"
        )
    target: Any = sys.modules.get(module)
    if module == "__main__" and not getattr(target, "__file__", None):
        raise SweeperError(
            f"objective {qualname} is defined in an interactive session, which worker processes "
            "cannot import; put it in a .py file (or use in_process=True)"
        )
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not fn and getattr(target, "__wrapped__", None) is not fn:
        raise SweeperError(
            f"objective {module}:{qualname} does not resolve to the function given (decorated or "
            "rebound?); pass the import path as a string instead"
        )
    return f"{module}:{qualname}"


def _module_of(path: str) -> str:
    return path.partition(":")[0] if ":" in path else path.rpartition(".")[0]


def _writer_process(cfg: SweepConfig) -> bool:
    """The MLflow writer in its own process, unless the report follows on a store that the
    writer opens through mlflow (not a SQLite store it writes directly): then a writer thread
    here imports mlflow once for both."""
    uri = resolve_tracking_uri(cfg.tracking.uri)
    return not cfg.report or uri.startswith("sqlite:///")


def _preload_for(cfg: SweepConfig) -> list[str]:
    """Modules the forkserver imports once for every worker. Only allowlisted ones: this runs
    before ``check_config`` has imported (and so vetted) anything."""
    if cfg.objective is not None:
        return [_module_of(cfg.objective)]  # the user named it; check_config imports it too
    assert cfg.model is not None
    modules = ["sweeper.objectives.sklearn", "sklearn.model_selection", "sklearn.metrics"]
    from .config import import_allowed

    if import_allowed(cfg.model.estimator, cfg):
        modules.append(_module_of(cfg.model.estimator))
    return modules


def _builtin_kwargs(
    cfg: SweepConfig, workers: int, space: tuple[Any, ...], publication: Publication
) -> dict[str, Any]:
    import numpy as np

    from .objectives.sklearn import load_dataset

    assert cfg.model is not None and cfg.data is not None
    data: dict[str, Any] = {
        "loader": cfg.data.loader, "kwargs": dict(cfg.data.kwargs), "file": cfg.data.file, "target": cfg.data.target,
    }
    X, y = load_dataset(data, cache=False)  # once, here; workers map it from shared memory
    if isinstance(X, np.ndarray) and isinstance(y, np.ndarray):
        data = {"X": publication.publish(X), "y": publication.publish(y)}
        del X, y
    evaluation = {
        "cv": cfg.evaluation.cv, "holdout": cfg.evaluation.holdout, "scoring": cfg.evaluation.scoring,
        "shuffle": cfg.evaluation.shuffle, "partial_fit_epochs": cfg.evaluation.partial_fit_epochs,
    }
    cores = resolve_n_jobs(None)
    fixed = dict(cfg.model.params)
    inner = fixed.get("n_jobs")
    if isinstance(inner, int) and (inner < 0 or inner * workers > cores):
        # workers x inner jobs must fit the cores; the sweep itself is the parallelism
        fixed["n_jobs"] = max(1, cores // workers)
        logger.warning("model.params.n_jobs=%s with %d workers on %d cores would oversubscribe; using n_jobs=%d",
                       inner, workers, cores, fixed["n_jobs"])
    return {
        "estimator": cfg.model.estimator,
        "fixed_params": fixed,
        "data": data,
        "evaluation": evaluation,
        "space": [_spec_dict(p) for p in space],
        "inner_threads": max(1, cores // workers),
        "seed": cfg.seed,
        "prune": cfg.pruner is not None and cfg.pruner.name != "none",
    }


def _spec_dict(param: Any) -> dict[str, Any]:
    return {
        "name": param.name, "type": param.type, "low": param.low, "high": param.high,
        "log": param.log, "step": param.step,
        "choices": None if param.choices is None else list(param.choices),
    }


def _spec(cfg: SweepConfig, directions: Sequence[str]) -> dict[str, Any]:
    """What may not change when a sweep resumes."""
    return {
        "search_space": [_spec_dict(p) for p in cfg.search_space],
        "directions": list(directions),
        "model": cfg.model.estimator if cfg.model else None,
        "objective": cfg.objective,
    }


def _config_dict(cfg: SweepConfig) -> dict[str, Any]:
    return cfg.as_dict(redact=True)


def _config_params(cfg: SweepConfig, workers: int) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif value not in (None, {}, [], ()):
            flat[prefix] = value

    data = _config_dict(cfg)
    space = data.pop("search_space", [])
    walk("", data)
    for param in space:
        shown = {k: v for k, v in param.items() if k != "name" and v not in (None, False)}
        flat[f"search_space.{param['name']}"] = shown
    flat["n_jobs_resolved"] = workers
    return flat


def _config_yaml(cfg: SweepConfig) -> str:
    import yaml

    return yaml.safe_dump(_config_dict(cfg), sort_keys=False)


def _parent_tags(study: Any) -> dict[str, str]:
    from importlib import metadata

    tags = {"sweeper.kind": "sweep", "sweeper.study_name": study.study_name}
    for package in ("sweeper", "optuna", "mlflow", "scikit-learn"):
        try:
            tags[f"sweeper.version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    tags["sweeper.version.python"] = sys.version.split()[0]
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
