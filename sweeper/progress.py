"""What ``sweeper.optimize`` shows while it runs, as Optuna's ``study.optimize`` does: one line per
finished trial through the ``sweeper`` logger at INFO, and with ``show_progress_bar=True`` a live
bar (tqdm.auto: a widget in Jupyter, text in a terminal).

    Coordinator --on_trial_finished(frozen trial, summary, running)--> TrialProgress
        -> logger "sweeper": "Trial 3 finished with value: 0.12 and parameters: {...}. Best is ..."
        -> the bar: one step per trial (or the seconds of ``timeout``), best so far

The lines are visible by default: while ``optimize`` runs, the ``sweeper`` logger is at INFO
unless its level was set, and when no handler would take its records (logging not configured)
one writing to stderr is added. ``logging.getLogger("sweeper").setLevel(logging.WARNING)``
silences them. Failures are not repeated here: the coordinator logs each one as a warning.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

logger = logging.getLogger("sweeper")

#: The default handler's format: Optuna's, so both libraries' lines read alike.
LINE_FORMAT = "[%(levelname)1.1s %(asctime)s sweeper] %(message)s"


class TrialProgress:
    """``on_trial_finished`` for ``optimize``; a context manager around the sweep."""

    def __init__(self, *, n_trials: int | None, timeout_s: float | None, show_bar: bool,
                 metric_names: Sequence[str] | None = None) -> None:
        self._n_trials, self._timeout_s = n_trials, timeout_s
        self._metric_names = list(metric_names) if metric_names else None
        self._show_bar = show_bar and (n_trials is not None or timeout_s is not None)
        self._bar: Any = None
        self._handler: logging.Handler | None = None
        self._level = logging.NOTSET
        self._started = 0.0
        self._elapsed_shown = 0.0

    def __enter__(self) -> TrialProgress:
        self._started = time.monotonic()
        self._level = logger.level
        if logger.level == logging.NOTSET:  # a level the user set is theirs
            logger.setLevel(logging.INFO)
        if not logger.hasHandlers():  # logging is not configured: lines to stderr, as Optuna's
            self._handler = _BarAwareHandler() if self._show_bar else logging.StreamHandler(sys.stderr)
            self._handler.setFormatter(logging.Formatter(LINE_FORMAT))
            logger.addHandler(self._handler)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._handler is not None:
            logger.removeHandler(self._handler)
            self._handler = None
        logger.setLevel(self._level)

    def __call__(self, frozen: Any, summary: Any, running: int) -> None:
        if self._show_bar and self._bar is None:  # drawn once the study exists (and said so)
            self._bar = _make_bar(self._n_trials, self._timeout_s)
        line = trial_line(frozen, summary.best, self._metric_names)
        if line is not None:
            logger.info(line)
        if self._bar is not None:
            self._advance(summary)

    def _advance(self, summary: Any) -> None:
        best = summary.best
        if best is not None:
            self._bar.set_description(f"Best trial: {best[1]}. Best value: {best[0]:.6g}")
        elapsed = time.monotonic() - self._started
        if self._n_trials is not None:
            self._bar.update(1)
            if self._timeout_s is not None:
                self._bar.set_postfix_str(f"{elapsed:.02f}/{self._timeout_s} seconds")
        else:
            assert self._timeout_s is not None
            shown = min(elapsed, self._timeout_s)
            self._bar.update(shown - self._elapsed_shown)
            self._elapsed_shown = shown


def trial_line(frozen: Any, best: tuple[float, int] | None,
               metric_names: Sequence[str] | None = None) -> str | None:
    """Optuna's line for a finished trial (None for a failed one: already logged as a warning)."""
    state = frozen.state.name
    if state == "PRUNED":
        return f"Trial {frozen.number} pruned."
    if state != "COMPLETE":
        return None
    values = list(frozen.values)
    if len(values) > 1:
        shown: Any = dict(zip(metric_names, values)) if metric_names else values
        return f"Trial {frozen.number} finished with values: {shown} and parameters: {frozen.params}."
    line = f"Trial {frozen.number} finished with value: {values[0]} and parameters: {frozen.params}."
    if best is not None:
        line += f" Best is trial {best[1]} with value: {best[0]}."
    return line


def _make_bar(n_trials: int | None, timeout_s: float | None) -> Any:
    from tqdm.auto import tqdm

    if n_trials is not None:
        return tqdm(total=n_trials)
    assert timeout_s is not None
    total = tqdm.format_interval(timeout_s)
    return tqdm(total=timeout_s, bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}/" + total)


class _BarAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines above the bar (``tqdm.write``), not through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging never raises into the sweep
            self.handleError(record)
