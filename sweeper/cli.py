"""The ``sweeper`` command: ``run``, ``validate``, and the result verbs ``ls``, ``status``,
``best``, ``export`` and ``ui`` (which read a sweep's study and MLflow store; nothing re-runs).

``main(argv) -> int`` never lets a ``SweeperError`` become a traceback: one line per problem on
stderr and exit status 2 (``--debug`` shows the traceback). Nothing heavy (optuna, mlflow,
sklearn) is imported at module level, so ``--help`` is instant.

Exit codes: 0 the sweep ran (some trials may have failed), 1 no trial completed or the
failure brake stopped it (also: ``--register`` failed, ``best`` found no complete trial,
``ui``'s server died), 2 usage or config error, 130 interrupted by Ctrl-C, 143 by SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .errors import BackendError, SweeperError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweeper",
        description="Process-parallel hyperparameter sweeps with Optuna, logged to MLflow.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True

    run = verbs.add_parser("run", help="run (or resume) a sweep from a YAML config")
    run.add_argument("config", help="path to a sweep config, e.g. configs/digits_svc_grid.yaml")
    run.add_argument("--n-trials", type=int, metavar="N", help="total trials of the sweep")
    run.add_argument("--n-jobs", type=int, metavar="N", help="worker processes (default: all cores)")
    run.add_argument("--timeout", type=float, metavar="S", help="start no trial after S seconds")
    run.add_argument("--trial-timeout", type=float, metavar="S", help="kill a trial after S seconds")
    run.add_argument("--tracking-uri", metavar="URI", help="MLflow store (default: ./mlflow.db)")
    run.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: sweep name)")
    run.add_argument("--name", metavar="SWEEP", help="sweep name (default: from the config)")
    run.add_argument("--seed", type=int, metavar="N", help="sampler and CV seed")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override any config key, e.g. --set search_space.C.high=10")
    run.add_argument("--cluster", metavar="ADDRESS",
                     help="run the workers on a Dask cluster: tcp://host:8786, or local:N for N "
                          "worker processes here (pip install 'sweeper[dask]')")
    run.add_argument("--start-method", choices=("forkserver", "spawn", "fork"),
                     help="how worker processes start (default: forkserver where available)")
    run.add_argument("--top", type=int, default=5, metavar="N", help="trials in the closing table")
    run.add_argument("--register", metavar="NAME",
                     help="register the best model in the MLflow model registry as NAME "
                          "(built-in scikit-learn objective)")

    validate = verbs.add_parser("validate", help="check a config and print its search space")
    validate.add_argument("config")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    def with_dir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--dir", default=".sweeper", metavar="DIR",
                         help="where sweeps keep their studies (default: .sweeper)")
        return sub

    ls = with_dir(verbs.add_parser("ls", help="list the sweeps in this directory"))
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    status = with_dir(verbs.add_parser("status", help="progress of a running or finished sweep"))
    status.add_argument("name", metavar="NAME")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    best = with_dir(verbs.add_parser("best", help="best trial (or Pareto front) of a sweep"))
    best.add_argument("name", metavar="NAME")
    best.add_argument("--json", action="store_true", help="machine-readable output")
    export = with_dir(verbs.add_parser("export", help="write a sweep's trials table"))
    export.add_argument("name", metavar="NAME")
    export.add_argument("--csv", required=True, metavar="FILE", help="CSV file to write (- for stdout)")
    ui = with_dir(verbs.add_parser("ui", help="start the MLflow UI on a sweep's tracking store"))
    ui.add_argument("name", metavar="NAME", nargs="?", help="sweep whose experiment to open")
    ui.add_argument("--port", type=int, default=5000, metavar="N", help="port (default 5000; 0 = any free)")
    ui.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    ui.add_argument("--tracking-uri", metavar="URI", help="MLflow store (default: the sweep's own)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``sweeper`` command; returns its exit status."""
    code = _main(argv)
    if argv is None:
        _cheap_teardown()
    return code


def _cheap_teardown() -> None:
    """The interpreter's last garbage collection walks every object still alive: once mlflow,
    scikit-learn and matplotlib are loaded that alone took ~1 s after every ``sweeper run``
    (measured: 0.96-1.41 s; 0.07 s with this). Nothing of ours waits on it -- every file is
    closed, every process stopped -- so the objects that exist now are frozen out of it.
    Only for the program itself (the console script, ``python -m sweeper``), not for callers."""
    import gc

    gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    verbs = {"run": _run, "validate": _validate, "ls": _ls, "status": _status, "best": _best,
             "export": _export, "ui": _ui}
    try:
        return verbs[args.verb](args)
    except BackendError as exc:  # the sweep ran and lost its workers: not a usage error
        if args.debug:
            raise
        print(f"sweeper: error: {exc}", file=sys.stderr)
        print("sweeper: finished trials are saved; run the same command again to resume", file=sys.stderr)
        return 1
    except SweeperError as exc:
        if args.debug:
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"sweeper: error: {line}", file=sys.stderr)
        return 2


def _overrides(args: argparse.Namespace) -> list[str]:
    flags = {
        "n_trials": args.n_trials, "n_jobs": args.n_jobs, "timeout": args.timeout,
        "trial_timeout": args.trial_timeout, "tracking.uri": args.tracking_uri,
        "tracking.experiment": args.experiment, "name": args.name, "seed": args.seed,
        "cluster": args.cluster,
    }
    return [f"{k}={v}" for k, v in flags.items() if v is not None] + list(args.set)


def _run(args: argparse.Namespace) -> int:
    with _logging_to_stderr():
        return _run_logged(args)


def _run_logged(args: argparse.Namespace) -> int:
    from .api import run_config
    from .config import load_config

    started = time.monotonic()
    cfg = load_config(args.config, _overrides(args))
    if args.register and cfg.objective is not None:
        raise SweeperError("--register needs the built-in scikit-learn objective (model: and data:); "
                           f"{cfg.source} has objective: {cfg.objective}")
    progress = _Progress(cfg.n_trials)
    try:
        result = run_config(cfg, on_trial_finished=progress, start_method=args.start_method)
    finally:
        progress.close()
    summary = result.summary
    if result.nothing_to_do:
        print(f"sweep {cfg.name!r} is complete ({summary.n_finished} trials); nothing to do. "
              f"Use --name NEW (or --n-trials with a larger total) to run more.")
        for line in result.repaired:
            print(f"repaired: {line}")
        _print_mlflow(result)
        return _register(result, args.register)
    _print_results(result, args.top, time.monotonic() - started)
    if summary.signal is not None:
        return 128 + int(summary.signal)
    if summary.failed_fast or (summary.n_complete == 0 and summary.n_finished > 0):
        return 1
    return _register(result, args.register)


def _register(result: Any, name: str | None) -> int:
    """``run --register NAME``: the best model the report logged goes into the model registry."""
    if not name:
        return 0
    from .report.report import register_best_model

    if not result.tracking_uri or not result.parent_run_id:
        print("sweeper: error: --register: this sweep has no MLflow parent run", file=sys.stderr)
        return 1
    try:
        version = register_best_model(result.tracking_uri, result.parent_run_id, name)
    except Exception as exc:  # noqa: BLE001 - the sweep ran; say why registering did not
        print(f"sweeper: error: --register {name}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    print(f"registered the best model as {name!r} version {version}  (models:/{name}/{version})")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from .results import format_ls, list_sweeps

    rows = list_sweeps(args.dir)
    print(_json(rows) if args.json else format_ls(rows, args.dir))
    return 0


def _status(args: argparse.Namespace) -> int:
    from .results import format_status, sweep_status

    status = sweep_status(args.dir, args.name)
    print(_json(status) if args.json else format_status(status))
    return 0


def _best(args: argparse.Namespace) -> int:
    from .results import best_of, format_best

    best = best_of(args.dir, args.name)
    print(_json(best) if args.json else format_best(best))
    return 0 if best.get("best") or best.get("pareto_front") else 1


def _export(args: argparse.Namespace) -> int:
    from .results import export_csv

    rows = export_csv(args.dir, args.name, args.csv)
    if args.csv != "-":
        print(f"wrote {rows} trials of sweep {args.name!r} to {args.csv}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from .ui import resolve_target, serve

    target = resolve_target(args.name, args.dir, args.tracking_uri)
    return serve(target, host=args.host, port=args.port)


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def _validate(args: argparse.Namespace) -> int:
    from .config import check_config, grid_size, load_config
    from .sweep import extend_import_path

    cfg = load_config(args.config, list(args.set))
    extend_import_path(cfg)
    check_config(cfg)
    print(f"{cfg.source}: ok (sweep {cfg.name!r})")
    if cfg.objective:
        print(f"objective: {cfg.objective}")
    else:
        assert cfg.model is not None
        print(f"model: {cfg.model.estimator}")
    print("search space:")
    for param in cfg.search_space:
        print(f"  {param.name}: {param.describe()}")
    if cfg.sampler.name == "grid":
        print(f"grid size: {grid_size(tuple(cfg.search_space))}")
    print(f"sampler: {cfg.sampler.name}  n_trials: {cfg.n_trials}  n_jobs: {cfg.n_jobs or 'all cores'}")
    return 0


class _Progress:
    """Progress of a running sweep on stderr. In a terminal: one status line rewritten in place,
    with failures kept above it. Elsewhere (CI logs, pipes): one plain line per finished trial.

    Counts are the sweep's (a resumed sweep goes on from what was done); the ETA comes from the
    trials' own durations over the workers, so the start-up before the first result does not
    inflate it."""

    def __init__(self, n_trials: int | None, *, stream: Any = None) -> None:
        self.n_trials = n_trials
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._durations: list[float] = []

    def __call__(self, trial: Any, summary: Any, running: int) -> None:
        elapsed = time.monotonic() - self.t0
        done = summary.totals.counted
        total = f"/{self.n_trials}" if self.n_trials else ""
        status = (
            f"[{done}{total}] done {summary.n_complete} failed {summary.n_fail} "
            f"pruned {summary.n_pruned} running {running}"
        )
        if summary.best is not None:
            status += f" | best {summary.best[0]:.6g} (#{summary.best[1]})"
        status += f" | {_clock(elapsed)}"
        duration = _duration_s(trial)
        if duration is not None:
            self._durations.append(duration)
        if self.n_trials and self._durations:
            left = self.n_trials - done
            workers = max(1, len(summary.workers))
            mean = sum(self._durations) / len(self._durations)
            if left > 0:
                status += f" eta {_clock(mean * left / workers)}"
        state = trial.state.name.lower()
        value = "" if trial.values is None else " " + ",".join(f"{v:.6g}" for v in trial.values)
        if not self.live:
            print(f"trial {trial.number} {state}{value} {status}", file=self.stream, flush=True)
            return
        self.stream.write(f"\r\033[K{status}")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def _duration_s(trial: Any) -> float | None:
    start, end = getattr(trial, "datetime_start", None), getattr(trial, "datetime_complete", None)
    if start is None or end is None:
        return None
    return float((end - start).total_seconds())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _print_results(result: Any, top: int, wall_s: float) -> None:
    from optuna.trial import TrialState

    from .tracking.records import run_id_of

    study, summary = result.study, result.summary
    target = f" of {result.n_target}" if result.n_target else ""
    print(
        f"\nsweep {study.study_name!r}: {summary.n_complete} complete, {summary.n_fail} failed, "
        f"{summary.n_pruned} pruned{target} ({summary.session_finished} this run) in {_clock(wall_s)} "
        f"on {len(summary.workers)} worker(s)"
    )
    if summary.stopped:
        print(f"stopped early: {summary.stopped}")
    if summary.failure_reasons:
        print("failures: " + ", ".join(f"{k} x{v}" for k, v in sorted(summary.failure_reasons.items())))
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if complete:
        if len(study.directions) == 1:
            reverse = study.direction.name == "MAXIMIZE"
            ranked = sorted(complete, key=lambda t: t.value, reverse=reverse)[:top]
            print(f"\ntop {len(ranked)} trials ({study.direction.name.lower()}):")
        else:
            ranked = sorted(study.best_trials, key=lambda t: t.number)[:top]
            print(f"\nPareto front ({len(study.best_trials)} trials):")
        for t in ranked:
            values = ",".join(f"{v:.6g}" for v in t.values)
            run_id = run_id_of(study, t) or "-"
            params = " ".join(f"{k}={_short(v)}" for k, v in t.params.items())
            print(f"  #{t.number:<4} {values:>12}  run {run_id}  {params}")
    _print_mlflow(result)  # tracking failures were logged by Sweep.run, as for sweeper.optimize


def _print_mlflow(result: Any) -> None:
    from .tracking.uri import mlflow_ui_command

    if result.tracking_uri:
        print(f"\nMLflow experiment {result.experiment!r}, parent run {result.parent_run_id}")
        model_uri = result.study.user_attrs.get("mlflow_best_model_uri")
        if model_uri:
            print(f"best model (refit on all data): {model_uri}  (mlflow.sklearn.load_model)")
        print(f"open it with:  {mlflow_ui_command(result.tracking_uri)}")
        print(f"          or:  sweeper ui {result.study.study_name}")


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """Sweeper's log lines on stderr for one ``sweeper run``; the logger is left as it was
    found afterwards (``main`` may run many times in one process: tests, notebooks)."""
    logger = logging.getLogger("sweeper")
    saved = logger.level, logger.propagate
    handler = logging.StreamHandler(sys.stderr)
    # In a terminal, a warning first clears the progress line it interrupts.
    clear = "\r\033[K" if sys.stderr.isatty() else ""
    handler.setFormatter(logging.Formatter(clear + "sweeper: %(message)s"))
    logger.addHandler(handler)
    # SWEEPER_LOG_LEVEL=DEBUG shows each dispatch and how long each report step took
    level = os.environ.get("SWEEPER_LOG_LEVEL", "INFO").upper()
    logger.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "INFO")
    logger.propagate = False
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # store-creation chatter
    _quiet_optuna()
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
