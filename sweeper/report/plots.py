"""The report's plots, importances and trials table, at a cost that stays flat as a sweep grows.

    study --every trial-------------------------> optimization history, trials.csv
          --last TIMELINE_TRIALS to start-------> timeline
          --sample of SCATTER_TRIALS (+ best)---> parallel coordinates, slice, contour, interactive page
          --sample of IMPORTANCE_TRIALS (+ best)-> fANOVA importances (plot and metrics)
          --sample of CURVES (+ best)-----------> intermediate values
       optuna.visualization.matplotlib (Agg) --> plots/*.png, each sampled one saying so in its title

Why samples: at 3,000 TPE trials the report took ~70 s and 242 MB, nearly all of it fANOVA (~8 ms
a trial, forest fits) and one line per trial in the intermediate-values plot; importances from
200 random trials agree with those from 1,000 to a few hundredths, and a plot of 1,000 points
shows the shape of a search as well as one of 3,000. Samples are seeded (the same study gives
the same report) and always hold the best trial(s).

On Linux a child forked first thing computes the importances, draws the plots and writes the
trials table while the report's process imports mlflow and refits the best model: the two cores
share the report's CPU (the child only reads the study). The child dies with its parent
(``PR_SET_PDEATHSIG``): a killed coordinator leaves no plot child behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import results as _results
from .steps import step

#: fANOVA's trials (its cost is ~8 ms a trial; importances from 200 agree with those from 1,000).
IMPORTANCE_TRIALS = 200
#: Points of the scatter-like plots (parallel coordinates, slice, contour, interactive page).
SCATTER_TRIALS = 1000
#: Trials the timeline shows: the last ones to start.
TIMELINE_TRIALS = 200
#: Curves of the intermediate-values plot.
CURVES = 100
SEED = 0


# --- samples --------------------------------------------------------------------------------------


class Sample:
    """A study, or a seeded sample of its trials as an in-memory study of their own (numbered
    from 0 in trial order, so ``numbers`` maps them back); ``note`` says what was left out."""

    def __init__(self, study: Any, trials: Sequence[Any] | None = None, of: int = 0, what: str = "trials") -> None:
        self.original = study
        self.numbers: list[int] = []
        self.note: str | None = None
        if trials is None:
            self.study = study
            return
        import optuna

        self.study = optuna.create_study(directions=list(study.directions))
        self.study.add_trials(list(trials))
        self.numbers = [t.number for t in trials]
        self.note = f"{len(trials):,} of {of:,} {what}, sampled"

    @property
    def sampled(self) -> bool:
        return self.note is not None


def sample(study: Any, trials: Sequence[Any], limit: int, what: str = "trials") -> Sample:
    """``trials`` of ``study`` as they are when there are at most ``limit``, else a seeded random
    ``limit`` of them holding the best trial(s), in trial order."""
    if len(trials) <= limit:
        return Sample(study)
    best = {t.number for t in _results.best_trials(study)}
    kept = [t for t in trials if t.number in best][:limit]
    rest = [t for t in trials if t.number not in best]
    kept += random.Random(SEED).sample(rest, limit - len(kept))
    return Sample(study, sorted(kept, key=lambda t: t.number), of=len(trials), what=what)


def _complete(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return list(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


# --- importances ----------------------------------------------------------------------------------


def param_importances(study: Any, limit: int = IMPORTANCE_TRIALS) -> dict[str, float]:
    """Optuna's default evaluator (fANOVA), seeded so a report is reproducible, on at most
    ``limit`` complete trials (``sample``); for several objectives, the importances for the first."""
    import warnings

    import optuna
    from optuna.importance import FanovaImportanceEvaluator

    chosen = sample(study, _complete(study), limit, "complete trials")
    target = None if len(study.directions) == 1 else (lambda t: t.values[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = optuna.importance.get_param_importances(
            chosen.study, evaluator=FanovaImportanceEvaluator(seed=0), target=target
        )
    return {name: float(value) for name, value in found.items()}


def importance_note(study: Any, limit: int = IMPORTANCE_TRIALS) -> str | None:
    """What ``param_importances`` left out, for the parent run's description; None if nothing."""
    n = len(_complete(study))
    return f"on {limit:,} of {n:,} complete trials, sampled" if n > limit else None


def _known_importances(importances: Mapping[str, float]) -> Any:
    """An Optuna importance evaluator that returns ``importances`` (``param_importances``'
    result), so the importances plot shows them instead of fitting fANOVA a second time."""
    from optuna.importance import BaseImportanceEvaluator

    class KnownImportances(BaseImportanceEvaluator):
        def evaluate(self, study: Any, params: Any = None, *, target: Any = None) -> dict[str, float]:
            wanted = {p: importances[p] for p in (importances if params is None else params)}
            return dict(sorted(wanted.items(), key=lambda kv: kv[1], reverse=True))

    return KnownImportances()


# --- plots -----------------------------------------------------------------------------------------


def render_plots(study: Any, out: Path, importances: Mapping[str, float] | None = None) -> list[Path]:
    """Draw Optuna's matplotlib plots of the study as PNG files in ``out``; returns those made.

    Single objective: optimization history, parameter importances, parallel coordinates, slice
    (top 4 parameters), contour (top 2), timeline, intermediate values (when reported).
    Several objectives: Pareto front, importances, parallel coordinates (first objective), timeline.
    The importances plot shows ``importances`` when they are given for a single objective (the
    same seeded fANOVA, not computed twice); else it runs fANOVA itself (on a sample). Big
    sweeps are drawn from samples (module docstring), each such plot saying so in its title.
    """
    import warnings

    import optuna.visualization.matplotlib as vis
    from optuna.importance import FanovaImportanceEvaluator

    out.mkdir(parents=True, exist_ok=True)
    complete = _complete(study)
    names = _param_names(study) if len(complete) >= 2 else []  # none to compare with fewer than 2
    top = [p for p in (importances or {}) if p in names] or names
    single = len(study.directions) == 1
    first = None if single else (lambda t: t.values[0])
    target_name = _target_names(study)[0]
    scatter = sample(study, complete, SCATTER_TRIALS, "complete trials")
    ranked = sample(study, complete, IMPORTANCE_TRIALS, "complete trials")
    evaluator = (_known_importances(importances) if single and importances and set(importances) == set(names)
                 else FanovaImportanceEvaluator(seed=0))
    with_curves = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    curves = sample(study, with_curves, CURVES, "trials with reported values")
    n_trials = len(study.get_trials(deepcopy=False))
    timeline_note = (f"the last {TIMELINE_TRIALS:,} of {n_trials:,} trials to start"
                     if n_trials > TIMELINE_TRIALS else None)
    plots: list[tuple[str, Callable[[], Any], Sample | None, str | None]] = []
    if single:
        plots.append(("optimization_history",
                      lambda: vis.plot_optimization_history(study, target_name=target_name), None, None))
    elif len(study.directions) in (2, 3):
        plots.append(("pareto_front", lambda: vis.plot_pareto_front(study, target_names=_target_names(study)),
                      None, None))
    if names:
        plots.append(("param_importances", lambda: vis.plot_param_importances(ranked.study, evaluator=evaluator),
                      ranked, None))
        plots.append(("parallel_coordinate", lambda: vis.plot_parallel_coordinate(
            scatter.study, params=top[:8], target=first, target_name=target_name), scatter, None))
    if single and names:
        plots.append(("slice", lambda: vis.plot_slice(scatter.study, params=top[:4], target_name=target_name),
                      scatter, None))
    if single and len(names) >= 2:
        plots.append(("contour", lambda: vis.plot_contour(scatter.study, params=top[:2], target_name=target_name),
                      scatter, None))
    plots.append(("timeline", lambda: vis.plot_timeline(study, n_recent_trials=TIMELINE_TRIALS), None, timeline_note))
    if single and with_curves:
        plots.append(("intermediate_values", lambda: vis.plot_intermediate_values(curves.study), curves, None))
    written = []
    with _agg_pyplot() as plt, warnings.catch_warnings(), _quiet_optuna():
        warnings.simplefilter("ignore")  # ExperimentalWarning, "no trials to plot", ...
        for name, draw, drawn_from, note in plots:
            path = out / f"{name}.png"
            saved = step(f"draw {name}", lambda draw=draw, path=path, drawn_from=drawn_from, note=note: _save(  # type: ignore[misc]
                draw(), path, plt, drawn_from, note))
            if saved is not None:
                written.append(path)
    return written


def render_html(study: Any, out: Path, importances: Mapping[str, float] | None = None) -> Path | None:
    """Interactive versions of the main plots in one HTML file, only when plotly is installed
    (plotly.js is embedded once, so the file works offline in the MLflow UI); scatter-like
    plots on the same sample as the PNGs."""
    import importlib.util

    if importlib.util.find_spec("plotly") is None:
        return None
    import warnings

    import optuna.visualization as vis

    names = _param_names(study)
    top = [p for p in (importances or {}) if p in names] or names
    single = len(study.directions) == 1
    scatter = sample(study, _complete(study), SCATTER_TRIALS, "complete trials")
    figures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if single:
            figures.append(vis.plot_optimization_history(study))
        elif len(study.directions) in (2, 3):
            figures.append(vis.plot_pareto_front(study))
        if names:
            target = None if single else (lambda t: t.values[0])
            figures.append(vis.plot_parallel_coordinate(scatter.study, params=top[:8], target=target))
            if single:
                figures.append(vis.plot_slice(scatter.study, params=top[:4]))
    if not figures:
        return None
    out.mkdir(parents=True, exist_ok=True)
    parts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figures)]
    note = f"<p>Parallel coordinates and slice: {scatter.note}.</p>" if scatter.note else ""
    path = out / "interactive.html"
    path.write_text(
        f"<html><head><meta charset='utf-8'><title>{study.study_name}</title></head><body>{note}"
        + "".join(parts) + "</body></html>",
        encoding="utf-8",
    )
    return path


def _save(axes: Any, path: Path, plt: Any, drawn_from: Sample | None = None, note: str | None = None) -> Path:
    import numpy as np

    axes_list = list(np.ravel(axes))
    figure = axes_list[0].figure
    try:
        note = note or (drawn_from.note if drawn_from is not None else None)
        if note:
            figure.suptitle(f"({note})", fontsize=9, y=1.0)
        if drawn_from is not None and drawn_from.sampled:
            _real_numbers(figure, axes_list, drawn_from.numbers)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def _real_numbers(figure: Any, axes: Sequence[Any], numbers: Sequence[int]) -> None:
    """A sample's plot speaks of its trials by their own numbers: the slice plot's colour bar
    (labelled "Trial") gets them back; the intermediate-values legend (one "Trial<n>" per
    curve) is dropped: it numbers the sample, and a hundred entries say nothing anyway."""
    from matplotlib.ticker import FuncFormatter

    def real(value: float, _: Any) -> str:
        index = int(round(value))
        return str(numbers[index]) if 0 <= index < len(numbers) else ""

    for ax in figure.axes:
        if ax.get_ylabel() == "Trial":
            ax.yaxis.set_major_formatter(FuncFormatter(real))
    for ax in axes:
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()


@contextlib.contextmanager
def _agg_pyplot() -> Iterator[Any]:
    """pyplot on the non-interactive Agg backend, with rcParams restored afterwards (Optuna's
    plots switch the global style to ggplot). A host that already uses pyplot gets its backend
    back."""
    import matplotlib

    previous = None
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        previous = plt.get_backend()
        plt.switch_backend("Agg")
    else:
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    try:
        with matplotlib.rc_context():
            yield plt
    finally:
        if previous is not None and previous.lower() != "agg":
            with contextlib.suppress(Exception):
                plt.switch_backend(previous)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import logging

    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        optuna_logger.setLevel(level)


def _param_names(study: Any) -> list[str]:
    names: dict[str, None] = {}
    for trial in _complete(study):
        for name in trial.params:
            names.setdefault(name, None)
    return list(names)


def _target_names(study: Any) -> list[str]:
    names = getattr(study, "metric_names", None)
    if names:
        return list(names)
    if len(study.directions) == 1:
        return ["value"]
    return [f"values[{i}]" for i in range(len(study.directions))]


# --- the trials table -------------------------------------------------------------------------------


def write_trials_table(study: Any, path: Path) -> None:
    """Every trial (``results.trials_frame``), written whole or not at all."""
    partial = path.with_name(path.name + ".partial")
    _results.trials_frame(study).to_csv(partial, index=False)
    os.replace(partial, path)


# --- the plot child ---------------------------------------------------------------------------------


def start_plots(study: Any, out: Path, importances_path: Path | None = None, *,
                table_path: Path | None = None) -> Any | None:
    """Draw the plots in a forked child process while this one imports mlflow, opens the store,
    logs the dataset and refits and logs the best model: the machine's cores are idle once the
    sweep is over. With ``importances_path``, the child first computes the parameter importances
    (``param_importances``) and writes them there as JSON for this process
    (``read_importances``): computed once, and off this process' path. With ``table_path`` it
    writes the trials table there too. Only where a fork is cheap and safe: on Linux (the child
    starts in milliseconds with optuna already imported; a spawned one would import optuna
    again) and while this process has no other thread (one could hold a lock the child needs).
    Otherwise None: computed and drawn here, in sequence.

    Until ``finish_plots`` or ``stop_plots``, the objects this process had are frozen for the
    garbage collector (``gc.freeze``): a full collection in either process would otherwise
    touch every one of them and copy much of the memory the fork shares (0.2-0.4 s of CPU)."""
    import gc
    import multiprocessing
    import threading

    if sys.platform != "linux" or threading.active_count() != 1:
        return None
    child: Any = multiprocessing.get_context("fork").Process(
        target=_draw_in_child, args=(study, out, importances_path, table_path, os.getpid()),
        name="sweeper-plots", daemon=True,
    )
    child.sweeper_frozen = gc.get_freeze_count() == 0  # a host's own freeze is left as it is
    if child.sweeper_frozen:
        gc.freeze()
    try:
        child.start()
    except BaseException:
        _unfreeze(child)
        raise
    return child


def finish_plots(child: Any, timeout_s: float = 300.0) -> bool:
    """Wait for ``start_plots``' child; False if it failed or hung (then draw them here)."""
    child.join(timeout_s)
    if child.is_alive():
        stop_plots(child)
        return False
    _unfreeze(child)
    return bool(child.exitcode == 0)


def stop_plots(child: Any) -> None:
    if child.is_alive():
        child.terminate()
        child.join(5)
    _unfreeze(child)


def _unfreeze(child: Any) -> None:
    import gc

    if getattr(child, "sweeper_frozen", False):
        child.sweeper_frozen = False
        gc.unfreeze()


def die_with_parent(parent_pid: int) -> None:
    """Linux: this process gets SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), so
    a plot child never outlives a killed coordinator; a parent already gone ends it now."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):  # no libc prctl: the child still ends with its work
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # died before the death signal was armed
        os._exit(1)  # a forked child leaves without running its parent's cleanup


def _draw_in_child(study: Any, out: Path, importances_path: Path | None, table_path: Path | None = None,
                   parent_pid: int | None = None) -> None:
    """The plot child: exit status 0 when every plot was tried (each failure already one
    warning line); any other problem is a silent non-zero exit, the parent draws them then."""
    import signal

    if parent_pid is not None:
        die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        importances: dict[str, float] = {}
        if importances_path is not None:
            importances = step("compute parameter importances", lambda: param_importances(study)) or {}
            _write_json(importances_path, importances)
        if table_path is not None:
            with contextlib.suppress(Exception):  # the parent writes it, and reports a failure
                write_trials_table(study, table_path)
        render_plots(study, out, importances)
    except BaseException:  # noqa: BLE001 - reported by the parent, which draws them itself
        os._exit(1)


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data), encoding="utf-8")
    os.replace(partial, path)  # the parent sees all of it or nothing


def read_importances(path: Path) -> dict[str, float] | None:
    """What the plot child wrote (``{}`` when fANOVA failed there: not tried again); None when
    it wrote nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else None

