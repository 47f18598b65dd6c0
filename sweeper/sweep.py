"""One sweep, assembled: the single path ``sweeper.optimize``, ``sweeper.run`` and the CLI share.

    SweepSpec (a checked SweepConfig + what only Python can give: a callable, sampler objects)
      -> backend (worker processes, warming up)   -> check_config (names against the libraries)
      -> study (journal + lock, resumed)          -> recorder (MLflow writer process, ready)
      -> Coordinator.run (two-stage Ctrl-C)       -> recorder.close -> end-of-sweep report

Every step that can refuse (a bad name, an unreachable or unwritable store) does so before any
worker starts. Heavy libraries are imported inside functions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import SweepConfig, grid_size, grid_values
from .engine.coordinator import Coordinator, SweepPlan, SweepSummary
from .engine.recorder import NullRecorder, Recorder, SweepOutcome
from .engine.study import (
    OUTCOME_ATTR,
    SweepLock,
    check_spec,
    finished_records,
    journal_storage,
    resume,
    sweep_dir,
)
from .errors import SweeperError, TrackingError
from .objectives.builtin import OBJECTIVE as BUILTIN_OBJECTIVE
from .objectives.builtin import builtin_kwargs, cores, spec_dict
from .workers.backend import Backend
from .workers.callables import Transport, module_of, transport

logger = logging.getLogger("sweeper")


@dataclass(frozen=True)
class SweepSpec:
    """Everything one sweep needs. ``config`` holds every option (checked, with the same defaults
    on every path); the rest is what only a Python caller can hand over."""

    config: SweepConfig
    objective: Callable[..., Any] | str | None = None  # None: the config's objective, or the built-in one
    objective_kwargs: Mapping[str, Any] | None = None  # Python objects (arrays); None: the config's
    sampler: Any = None  # an Optuna sampler object, instead of config.sampler
    pruner: Any = None  # an Optuna pruner object (or name), instead of config.pruner
    storage: Any = None  # an Optuna storage (optimize); None with ``journal``: .sweeper/<name>
    journal: bool = True  # the study lives in storage_dir/<name>, locked, resumed by running it again
    load_if_exists: bool = True
    n_trials_more: bool = False  # n_trials counts this call's trials (Optuna's optimize), not the sweep's total
    in_process: bool = False
    start_method: str | None = None
    track: bool = True
    report: bool | None = None  # None: config.report
    callbacks: Sequence[Callable[[Any, Any], None]] = ()
    on_trial_finished: Callable[[Any, SweepSummary, int], None] | None = None


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: the study plus how the run went."""

    study: Any
    summary: SweepSummary
    outcome: str = "finished"
    tracking_uri: str | None = None
    experiment: str | None = None
    parent_run_id: str | None = None
    run_ids: dict[int, str] = field(default_factory=dict)
    nothing_to_do: bool = False
    repaired: list[str] = field(default_factory=list)
    n_target: int | None = None


class Sweep:
    """Runs one ``SweepSpec``; ``run`` once."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.cfg = spec.config
        self._transport: Transport | None = None  # how a Python objective travels, once decided
        self._cluster_backend: Any = None  # the Dask backend, when the sweep runs on a cluster
        self._counted_at_start = 0  # trials an earlier session already did (optimize: n_trials more)

    def run(self) -> SweepResult:
        cfg, spec = self.cfg, self.spec
        if spec.objective is None:
            extend_import_path(cfg)
        objective_ref = self._objective_ref()
        if not spec.in_process:
            from ._tempdirs import claim_multiprocessing_temp_dir

            claim_multiprocessing_temp_dir()  # its sockets where a killed sweep's next run removes them
        backend = self._backend()
        lock = None
        try:
            if spec.objective is None:
                from .config import check_config

                check_config(cfg)  # imports sklearn/optuna; the forkserver warms up meanwhile
            uri = self._tracking_uri()
            study, storage_dir = self._open_study()
            if spec.journal and storage_dir is not None:
                lock = SweepLock(storage_dir)
                lock.acquire()
            resumed = resume(study)
            if resumed.requeued:
                logger.warning("resuming %s: trials %s were left running and are queued again",
                               study.study_name, resumed.requeued)
            self._counted_at_start = resumed.totals.counted
            n_target = self._n_target()
            remaining = None if n_target is None else max(0, n_target - resumed.totals.counted)
            workers = self._n_workers()
            recorder = self._recorder(study, uri, storage_dir, workers)
            if remaining == 0:
                return self._nothing_to_do(study, recorder, resumed.totals, uri, n_target)
            self._write_outcome(study, "running", None, n_target)
            objective_kwargs = self._objective_kwargs(backend, workers)
            plan = SweepPlan(
                objective=objective_ref, objective_kwargs=objective_kwargs, space=tuple(cfg.search_space),
                n_trials=remaining, n_target=n_target, timeout_s=cfg.timeout, trial_timeout_s=cfg.trial_timeout,
                max_retries=cfg.max_retries, retry_exceptions=cfg.retry_exceptions,
                max_consecutive_failures=1 if cfg.fail_fast else cfg.max_consecutive_failures,
                capture_output=cfg.capture_output and not spec.in_process,
            )
            coordinator = Coordinator(
                study, plan, backend, workers, recorder, totals=resumed.totals,
                on_trial_finished=spec.on_trial_finished, callbacks=spec.callbacks,
                on_workers_changed=self._processes_writer(storage_dir, backend, recorder),
            )
            try:
                summary, outcome = self._drive(coordinator)
            except BaseException as exc:  # the workers' channel lost, say: end the record, then say why
                self._abandon(study, recorder, coordinator, exc, n_target)
                raise
            failures = recorder.close(coordinator.sweep_end(outcome))
            for failure in failures:  # every path reports them: the CLI and sweeper.optimize alike
                logger.warning("MLflow write failed: %s", failure)
            summary.tracking_failures = failures
            _write_attrs(study, recorder.study_attrs())
            self._write_outcome(study, outcome, summary.stopped, n_target)
            result = self._result(study, summary, outcome, recorder, uri, n_target)
            if self._report_wanted() and summary.signal is None:
                if failures:
                    logger.warning("end-of-sweep report skipped: the MLflow store did not take every write; "
                                   "run the sweep again to write it")
                else:
                    from .report.report import finalize_sweep

                    finalize_sweep(cfg, result)
            return result
        finally:
            backend.close(kill=True)
            if lock is not None:
                (lock.path.parent / "processes.json").unlink(missing_ok=True)
                lock.release()

    def _abandon(self, study: Any, recorder: Recorder, coordinator: Coordinator, exc: BaseException,
                 n_target: int | None) -> None:
        """The sweep stopped on an error: its record ends (the parent KILLED, the writer gone,
        so a rerun in this process does not wait on it) and the study says it was interrupted;
        running it again resumes. Never hides the error itself."""
        from .engine.recorder import SweepEnd

        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        try:
            end = coordinator.sweep_end("interrupted")
            for failure in recorder.close(SweepEnd("interrupted", reason, end.progress, end.pareto_front)):
                logger.warning("MLflow write failed: %s", failure)
            _write_attrs(study, recorder.study_attrs())
            self._write_outcome(study, "interrupted", reason, n_target)
        except Exception:  # noqa: BLE001 - the error that stopped the sweep is the one to report
            logger.debug("could not end the record of a failed sweep", exc_info=True)

    # --- the parts --------------------------------------------------------------------------------

    def _objective_ref(self) -> str:
        """What ``RunTrial.objective`` names: an import path, or the name of the objective sent
        by value (``workers.callables``: pickled here, once, before any process starts)."""
        objective = self.spec.objective
        if objective is None:
            return self.cfg.objective or BUILTIN_OBJECTIVE
        if isinstance(objective, str):
            return objective
        if self._transport is None:
            self._transport = transport(objective, in_process=self.spec.in_process)
        return self._transport.name

    def _backend(self) -> Backend:
        self._objective_ref()
        moved = self._transport
        payload = None if moved is None else moved.payload
        if self.spec.in_process:
            from .workers.inline import InlineBackend

            return InlineBackend({moved.name: payload} if moved is not None and payload is not None else None)
        if self.cfg.cluster:
            from .workers.dask import backend_for_cluster

            dask_backend = backend_for_cluster(
                self.cfg.cluster, objectives={moved.name: payload} if moved is not None and isinstance(payload, bytes)
                else None, modules=self._preload(),
                max_trials_per_worker=self.cfg.max_trials_per_worker, max_worker_memory_mb=self.cfg.max_worker_memory_mb,
            )
            dask_backend.prewarm()  # the cluster comes up while the study and MLflow are set up
            self._cluster_backend = dask_backend
            return dask_backend
        from .workers.callables import references_main
        from .workers.local import LocalBackend

        scratch = None
        if self.spec.journal and self.spec.storage is None:  # temp files belong to the sweep
            scratch = str(sweep_dir(self.cfg.storage_dir or ".sweeper", self.cfg.name) / "tmp")
        kwargs = self.spec.objective_kwargs
        backend = LocalBackend(
            self.spec.start_method, preload=self._preload(),
            max_trials_per_worker=self.cfg.max_trials_per_worker, max_worker_memory_mb=self.cfg.max_worker_memory_mb,
            scratch_dir=scratch,
            objectives={moved.name: payload} if moved is not None and isinstance(payload, bytes) else None,
            # objects of classes defined in the script, in objective_kwargs: workers import it
            import_main=kwargs is not None and references_main(dict(kwargs)),
        )
        backend.prewarm()  # workers' imports overlap the checks and the study's set-up
        return backend

    def _n_workers(self) -> int:
        """Worker slots: ``n_jobs``, else one per core here, or one per Dask worker on a cluster."""
        if self.cfg.cluster:
            if self.cfg.n_jobs is not None and self.cfg.n_jobs > 0:
                return self.cfg.n_jobs
            size = self._cluster_backend.cluster_size()
            if size < 1:
                raise SweeperError(f"the Dask cluster {self.cfg.cluster} has no workers; start some "
                                   "(dask worker tcp://... --nthreads 1) or give n_jobs")
            return int(size)
        return resolve_n_jobs(self.cfg.n_jobs)

    def _preload(self) -> list[str]:
        """Modules the forkserver imports once for every worker: only ones that passed the
        allowlist as strings, since this runs before ``check_config`` has imported anything,
        or ones a Python objective uses (imported here already)."""
        cfg = self.cfg
        objective = self.spec.objective
        if isinstance(objective, str):
            return [module_of(objective)]
        if objective is not None:
            self._objective_ref()
            assert self._transport is not None
            return list(self._transport.modules)
        if cfg.objective is not None:
            return [module_of(cfg.objective)]
        from .config import import_allowed

        modules = ["sweeper.objectives.sklearn", "sklearn.model_selection", "sklearn.metrics"]
        if cfg.model is not None and import_allowed(cfg.model.estimator, cfg):
            modules.append(module_of(cfg.model.estimator))
        return modules

    def _tracking_uri(self) -> str | None:
        if not self.spec.track:
            return None
        from .tracking.uri import check_reachable, resolve_tracking_uri

        uri = resolve_tracking_uri(self.cfg.tracking.uri)
        try:
            check_reachable(uri)  # before the sweep directory, any worker or any run exists
        except TrackingError as exc:
            if self.cfg.tracking.required:
                raise
            logger.warning("%s; going on without it (tracking.required: false): runs are spooled", exc)
        return uri

    def _open_study(self) -> tuple[Any, Any]:
        import optuna

        from .config.space import make_pruner, make_sampler

        cfg, spec = self.cfg, self.spec
        storage_dir = None
        storage = spec.storage
        if storage is None and spec.journal:
            storage_dir = sweep_dir(cfg.storage_dir or ".sweeper", cfg.name)
            storage = journal_storage(storage_dir, owner=True)
        is_grid = cfg.sampler.name == "grid" and spec.sampler is None
        sampler = spec.sampler if spec.sampler is not None else make_sampler(
            cfg.sampler.name, cfg.sampler.kwargs, seed=cfg.seed,
            grid=grid_values(cfg.search_space) if is_grid else None,
        )
        if spec.pruner is not None:
            pruner = make_pruner(spec.pruner)
        else:
            pruner = make_pruner(cfg.pruner.name if cfg.pruner else None, cfg.pruner.kwargs if cfg.pruner else None)
        study = optuna.create_study(
            storage=storage, sampler=sampler, pruner=pruner, study_name=cfg.name,
            directions=list(cfg.study_directions), load_if_exists=spec.load_if_exists,
        )
        names = cfg.metric_names
        if names and list(study.metric_names or ()) != list(names):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning: stable since Optuna 3.2
                study.set_metric_names(list(names))
        if spec.objective is None:
            check_spec(study, self._resume_spec(), cfg.source)
        return study, storage_dir

    def _resume_spec(self) -> dict[str, Any]:
        """What may not change when a sweep resumes."""
        cfg = self.cfg
        return {
            "search_space": [spec_dict(p) for p in cfg.search_space],
            "directions": list(cfg.study_directions),
            "model": cfg.model.estimator if cfg.model else None,
            "objective": cfg.objective,
        }

    def _n_target(self) -> int | None:
        """The sweep's total: ``n_trials`` (a config's total), or what was done plus
        ``n_trials`` for ``optimize``, whose ``n_trials`` is this call's, as in Optuna."""
        cfg = self.cfg
        n_trials = cfg.n_trials
        if self.spec.n_trials_more and n_trials is not None:
            n_trials += self._counted_at_start
        if cfg.sampler.name == "grid" and self.spec.sampler is None:
            size = grid_size(tuple(cfg.search_space))
            if size is not None:
                n_trials = size if n_trials is None else min(n_trials, size)
        return n_trials

    def _recorder(self, study: Any, uri: str | None, storage_dir: Any, workers: int) -> Recorder:
        """The MLflow recorder, its store checked for real: the sweep's names against MLflow's
        rules (a config error), then the writer opens the store, tries those names on a probe
        run, finds or makes the parent run and makes MLflow agree with the study -- all before
        any worker starts. Two-phase parent: the sweep key is in the study before any run exists."""
        if uri is None:
            return NullRecorder()
        from .engine.study import counts_toward_budget
        from .errors import ConfigError, ConfigProblem
        from .tracking.records import value_names
        from .tracking.recorder import MlflowRecorder, default_parent_tags, name_check

        cfg = self.cfg
        experiment = cfg.tracking.experiment or cfg.name
        params = self._parent_params(workers)
        child_params = [p.name for p in cfg.search_space]
        metrics = [*value_names(tuple(cfg.metric_names or ()), len(cfg.study_directions)), "duration_s",
                   "intermediate_value"]
        problems = name_check(experiment, params, child_params, metrics)
        if problems:
            raise ConfigError(cfg.source, [ConfigProblem(key, expected, got) for key, expected, got in problems])
        directory = storage_dir if storage_dir is not None else sweep_dir(cfg.storage_dir or ".sweeper", cfg.name)
        recorder = MlflowRecorder(
            uri, experiment, study.study_name, study_attrs=study.user_attrs,
            spool_path=str(directory / "spool.jsonl"), required=cfg.tracking.required,
            start_ms=int(time.time() * 1000),
        )
        _write_attrs(study, recorder.study_attrs())  # phase one: the key, before the parent run exists
        texts = {"sweep.yaml": _config_yaml(cfg)} if self.spec.objective is None else {}
        recorder.start(params, default_parent_tags(study.study_name), texts, finished=finished_records(study),
                       probe_params=child_params, probe_metrics=metrics)
        try:
            recorder.wait_ready()  # the store takes the sweep's writes, before any worker starts
        except TrackingError as exc:
            if cfg.tracking.required:
                recorder.close_quietly()
                raise
            logger.warning("%s; going on without it (tracking.required: false): runs are spooled", exc)
        _write_attrs(study, recorder.study_attrs())
        n_target = self._n_target()
        counted = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_budget(t))
        if n_target is None or counted < n_target:  # a complete sweep lists them in its result
            for line in recorder.repaired:
                logger.info("MLflow repaired: %s", line)
        return recorder

    def _parent_params(self, workers: int) -> dict[str, Any]:
        cfg = self.cfg
        flat: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict) and value:
                for key, item in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), item)
            elif value not in (None, {}, [], ()):
                flat[prefix] = value

        data = cfg.as_dict(redact=True)
        space = data.pop("search_space", [])
        walk("", data)
        for param in space:
            shown = {k: v for k, v in param.items() if k != "name" and v not in (None, False)}
            flat[f"search_space.{param['name']}"] = shown
        flat["n_jobs_resolved"] = workers
        objective = self.spec.objective
        if objective is not None:
            flat["objective"] = self._objective_ref()
        if self.spec.sampler is not None:
            flat["sampler.name"] = type(self.spec.sampler).__name__
        if self.spec.pruner is not None:
            flat["pruner.name"] = self.spec.pruner if isinstance(self.spec.pruner, str) else type(self.spec.pruner).__name__
        return flat

    def _objective_kwargs(self, backend: Backend, workers: int) -> dict[str, Any]:
        cfg = self.cfg
        if self.spec.objective is None and cfg.objective is None:
            return builtin_kwargs(cfg, workers, backend.share)
        kwargs = self.spec.objective_kwargs if self.spec.objective_kwargs is not None else cfg.objective_kwargs
        return backend.share(dict(kwargs))

    @staticmethod
    def _processes_writer(storage_dir: Any, backend: Backend, recorder: Recorder) -> Callable[..., None] | None:
        """Keep ``<sweep dir>/processes.json`` current -- who runs this sweep, where -- for
        ``sweeper status`` and for whoever has to stop it by hand."""
        if storage_dir is None:
            return None
        path = storage_dir / "processes.json"

        def write(workers: Mapping[int, Any]) -> None:
            data = {
                "coordinator": os.getpid(), **backend.processes(),
                "recorder_pid": getattr(recorder, "pid", None),
                "workers": {str(slot): {"host": w.host, "pid": w.pid} for slot, w in sorted(workers.items())},
            }
            temporary = path.with_name(path.name + ".tmp")
            try:
                temporary.write_text(json.dumps(data))
                os.replace(temporary, path)
            except OSError:  # a full disk: the list is for people, the sweep goes on (the journal says why it cannot)
                logger.debug("could not write %s", path, exc_info=True)

        return write

    def _drive(self, coordinator: Coordinator) -> tuple[SweepSummary, str]:
        with _two_stage_interrupt(coordinator):
            summary = coordinator.run()
        if summary.signal is not None:
            return summary, "interrupted"
        if summary.failed_fast:
            return summary, "failed"
        return summary, "finished"

    def _nothing_to_do(self, study: Any, recorder: Recorder, totals: Any, uri: str | None,
                       n_target: int | None) -> SweepResult:
        """A complete sweep: nothing runs, but its record is brought to agree with the study
        (the recorder reconciled it when it started) and ended; what that took is listed."""
        from .engine.recorder import Progress, SweepEnd

        stored = study.user_attrs.get(OUTCOME_ATTR) or {}
        outcome: SweepOutcome = "failed" if stored.get("outcome") == "failed" else "finished"
        progress = Progress(totals.complete, totals.pruned, totals.fail, 0, n_target,
                            totals.best_trial, totals.best_value)
        failures = recorder.close(SweepEnd(outcome, stored.get("reason"), progress))
        for failure in failures:
            logger.warning("MLflow write failed: %s", failure)
        _write_attrs(study, recorder.study_attrs())
        self._write_outcome(study, outcome, stored.get("reason"), n_target)
        summary = SweepSummary(totals=totals)
        summary.tracking_failures = failures
        result = self._result(study, summary, outcome, recorder, uri, n_target)
        result.nothing_to_do = True
        result.repaired = list(getattr(recorder, "repaired", []))
        if self._report_wanted() and not failures:
            from .report.report import finalize_sweep

            if finalize_sweep(self.cfg, result, only_if_missing=True):  # one a kill or the store skipped
                result.repaired.append("wrote the end-of-sweep report on the parent run")
        return result

    def _result(self, study: Any, summary: SweepSummary, outcome: str, recorder: Recorder,
                uri: str | None, n_target: int | None) -> SweepResult:
        result = SweepResult(study, summary, outcome, uri, self.cfg.tracking.experiment or self.cfg.name,
                             n_target=n_target)
        result.parent_run_id = getattr(recorder, "parent_run_id", None)
        result.run_ids = dict(getattr(recorder, "run_ids", {}))
        return result

    def _report_wanted(self) -> bool:
        report = self.spec.report if self.spec.report is not None else self.cfg.report
        return bool(report) and self.spec.track

    @staticmethod
    def _write_outcome(study: Any, outcome: str, reason: str | None, n_target: int | None) -> None:
        """How this session ended, for ``sweeper ls``/``status`` and the next resume."""
        value = {"outcome": outcome, "reason": reason, "n_trials": n_target}
        if study.user_attrs.get(OUTCOME_ATTR) != value:
            study.set_user_attr(OUTCOME_ATTR, value)


def extend_import_path(cfg: SweepConfig) -> None:
    """Let a config's own code import: the config file's directory, then the working directory,
    go at the END of ``sys.path``, so a module planted there (a ``yaml.py``, an ``sklearn/``)
    can never shadow the standard library or an installed package. Only after the config's
    import paths passed the allowlist as strings (``load_config``)."""
    from .config.imports import objective_root

    for directory in (objective_root(cfg), Path.cwd()):
        if directory is not None and str(directory) not in sys.path:
            sys.path.append(str(directory))


def _write_attrs(study: Any, attrs: Mapping[str, Any]) -> None:
    current = study.user_attrs
    for key, value in attrs.items():
        if current.get(key) != value:
            study.set_user_attr(key, value)


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
    """Worker processes for ``n_jobs`` (None or -1: one per core), warning when oversubscribed."""
    available = cores()
    if n_jobs is None or n_jobs == -1:
        return available
    if n_jobs < 1:
        raise SweeperError(f"n_jobs must be >= 1 (or -1 for all cores), got {n_jobs}")
    if n_jobs > available:
        logger.warning("n_jobs=%d worker processes on %d cores: CPU-bound trials will slow each other down",
                       n_jobs, available)
    return n_jobs


def _config_yaml(cfg: SweepConfig) -> str:
    import yaml

    return str(yaml.safe_dump(cfg.as_dict(redact=True), sort_keys=False))

