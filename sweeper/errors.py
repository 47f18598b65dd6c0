"""The exception tree of sweeper, in one place.

    Exception
     +-- SweeperError            anything sweeper refuses to do; the CLI prints it as one line, exit 2
     |    +-- ConfigError        a sweep config (file, flags or arguments) is wrong; lists every problem
     |    +-- BackendError       worker processes or the Manager could not be started or were lost
     |    +-- TrackingError      the MLflow store could not be opened at start
     +-- TrialPruned             raised inside an objective to stop the trial as PRUNED (control flow)

Errors never cross process boundaries as objects: workers send traceback *text*
(exceptions with custom ``__init__`` cannot always be unpickled, python/cpython#76877).
Stdlib only, so every module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


class SweeperError(Exception):
    """Base class of every error sweeper raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config: where, what was expected and what was found."""

    key: str
    expected: str
    got: str | None = None
    line: int | None = None
    hint: str | None = None

    def render(self, source: str | None) -> str:
        where = source or "<config>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        text = f"{where}: {self.key}: expected {self.expected}"
        if self.got is not None:
            text += f", got {self.got}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(SweeperError):
    """A config is wrong. Carries every problem found, so the user fixes them in one pass.

    Example:
        >>> str(ConfigError("rf.yaml", [ConfigProblem("n_trials", "an integer >= 1", "'ten'")]))
        "rf.yaml: n_trials: expected an integer >= 1, got 'ten'"
    """

    def __init__(self, source: str | None, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.render(source) for p in self.problems))


class BackendError(SweeperError):
    """Worker processes or their Manager could not be started, or the channel to them was lost."""


class TrackingError(SweeperError):
    """The MLflow tracking store could not be reached or written at the start of a sweep."""


class TrialPruned(Exception):
    """Raise inside an objective to end the trial as PRUNED (as ``optuna.TrialPruned`` does)."""
