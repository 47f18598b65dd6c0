"""Where a sweep's Optuna study lives, what sweeper keeps in it, and how a second run resumes it.

    .sweeper/<name>/study.journal   Optuna journal (append-only, whole lines: ``engine.journal``;
                                    opens with optuna's own tools)
    .sweeper/<name>/lock            flock held by the coordinator running it now (its pid inside)

A journal file rather than SQLite: one writer needs no database locking, and appends are ~6x
faster than SQLite transactions. The study is the record of truth for every view of a sweep
(progress, ``sweeper ls``, the MLflow parent's totals): ``Totals`` reads it whole. Optuna is
imported inside functions.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _compat
from .._procs import flock_within, pid_alive
from ..errors import ConfigError, ConfigProblem, SweeperError
from .recorder import Measurement, TrialRecord

# Study user attrs.
SPEC_ATTR = "sweeper_spec"  # what may not change when the sweep resumes
OUTCOME_ATTR = "sweeper_outcome"  # how the last session ended: {"outcome": ..., "reason": ...}
# Trial user attrs (lineage, visible in trials_dataframe).
RETRY_ATTR = "sweeper_retry_of"  # a re-run of a crashed/timed-out trial (max_retries)
RESUMED_ATTR = "sweeper_resumed_from"  # a re-run of a trial a dead coordinator left running
# Trial system attrs (sweeper's own bookkeeping, hidden from trials_dataframe's user columns).
FAIL_REASON_ATTR = "sweeper:fail_reason"
ERROR_ATTR = "sweeper:error"
TRACEBACK_ATTR = "sweeper:traceback"
DURATION_ATTR = "sweeper:duration_s"
WORKER_ATTR = "sweeper:worker"  # "host:pid"

JOURNAL = "study.journal"
#: Damaged lines of the torn-then-appended kind (``journal.repair_merged_line``) mended on opening.
MAX_MENDED_LINES = 100
logger = logging.getLogger("sweeper")

#: Prefixes of the study user attrs sweeper (and its recorders) write, as opposed to the user's.
_OWN_PREFIXES = ("sweeper_", "mlflow_")


def is_sweeper_attr(key: str) -> bool:
    return key.startswith(_OWN_PREFIXES)


@dataclass
class Totals:
    """A sweep's counts over every session, and its best trial (single objective: Optuna's
    ``best_trial``, ties broken as the study's storage breaks them: to the lower trial number
    on a journal or a database, to the first told in memory -- ``ties_to_first_told``)."""

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    counted: int = 0  # finished trials that count toward n_trials (``counts_toward_budget``)
    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    ties_to_first_told: bool = False

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.fail

    def add(self, trial: Any, maximize: Sequence[bool]) -> None:
        """Count one finished ``FrozenTrial``."""
        state = trial.state.name
        if state == "COMPLETE":
            self.complete += 1
        elif state == "PRUNED":
            self.pruned += 1
        elif state == "FAIL":
            self.fail += 1
        else:
            return
        if counts_toward_budget(trial):
            self.counted += 1
        if state == "COMPLETE" and len(maximize) == 1 and trial.values:
            value = float(trial.values[0])
            if self.best_value is None or self.best_trial is None or _better(
                value, trial.number, self.best_value, self.best_trial, maximize[0], self.ties_to_first_told
            ):
                self.best_trial, self.best_value, self.best_params = trial.number, value, dict(trial.params)

    @classmethod
    def of(cls, trials: Iterable[Any], maximize: Sequence[bool], *, ties_to_first_told: bool = False) -> Totals:
        totals = cls(ties_to_first_told=ties_to_first_told)
        for trial in trials:
            totals.add(trial, maximize)
        return totals

    @classmethod
    def of_study(cls, study: Any) -> Totals:
        """The totals of ``study`` as it is, its best trial exactly Optuna's ``study.best_trial``
        (trials told before now may have been told in any order), and later trials counted
        with its storage's tie-break."""
        totals = cls.of(study.get_trials(deepcopy=False), directions_maximize(study),
                        ties_to_first_told=_compat.best_ties_to_first_told(study))
        if len(study.directions) == 1 and totals.best_trial is not None:
            best = study.best_trial
            totals.best_trial, totals.best_value, totals.best_params = best.number, float(best.value), dict(best.params)
        return totals


def _better(value: float, number: int, best_value: float, best_number: int, maximize: bool,
            ties_to_first_told: bool = False) -> bool:
    if math.isnan(value):
        return False
    if value == best_value:
        return not ties_to_first_told and number < best_number
    return value > best_value if maximize else value < best_value


def counts_toward_budget(trial: Any) -> bool:
    """Whether a finished trial uses up one of the sweep's ``n_trials``: fresh trials and
    re-runs of interrupted ones (which stand in for them) do; trials a Ctrl-C or a dead
    coordinator interrupted do not, nor retries of failed ones (``max_retries``)."""
    return bool(
        trial.state.is_finished()
        and trial.system_attrs.get(FAIL_REASON_ATTR) != "interrupted"
        and RETRY_ATTR not in trial.user_attrs
    )


def directions_maximize(study: Any) -> list[bool]:
    return [d.name == "MAXIMIZE" for d in study.directions]


def sweep_dir(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / name


def journal_storage(directory: Path, *, owner: bool = False) -> Any:
    """The sweep's Optuna storage over ``directory/study.journal`` (``engine.journal``: whole-line
    appends, one clear error for a damaged line). ``owner``: the caller holds the ``SweepLock``
    and will write, so first a torn last line is cut (kept beside the journal), a line an older
    sweeper damaged that way is mended, and a journal write lock Optuna's own backend left
    behind is removed. Errors are ``SweeperError``s of one line (``JournalError``)."""
    import optuna

    from .journal import JournalCorrupt, JournalWriteError, journal_backend, prepare_for_writing, repair_merged_line

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalWriteError(str(directory / JOURNAL), exc) from None
    journal = directory / JOURNAL
    if not owner:
        return optuna.storages.JournalStorage(journal_backend(journal))
    try:
        Path(f"{journal}.lock").unlink(missing_ok=True)
    except OSError as exc:
        raise JournalWriteError(str(journal), exc) from None
    torn = prepare_for_writing(journal)
    if torn is not None:
        logger.warning("the study journal %s ended in a torn line (%d bytes: a write the disk did not "
                       "finish); it was cut and kept in %s", journal, torn.stat().st_size, torn)
    for _ in range(MAX_MENDED_LINES):
        try:
            return optuna.storages.JournalStorage(journal_backend(journal))
        except JournalCorrupt as exc:
            mended = repair_merged_line(journal, exc.line)
            if mended is None:
                raise
            logger.warning("the study journal %s had a torn line joined to the next entry at line %d; "
                           "the torn part was cut and kept in %s", journal, exc.line, mended)
    return optuna.storages.JournalStorage(journal_backend(journal))


class SweepLock:
    """One coordinator per sweep directory, held by the kernel: ``flock`` on ``<dir>/lock``, a
    file that stays. Taking it is atomic (two processes started at the same instant cannot
    both hold it), and it is free the moment its holder dies, however it died. The holder's
    pid is written into the file for messages and ``sweeper status``; ``lock_holder`` asks the
    kernel whether anyone holds it. A process forked while it is held does not keep it
    (its copy of the descriptor is closed in the child)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._fd: int | None = None
        self._owner_pid = 0

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the lock, or raise ``SweeperError`` naming the live coordinator that holds it.
        A holder that is gone but whose lock is still held for a moment (a forked child
        exiting, a reader looking) is waited for up to ``wait_s``."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            from .journal import JournalWriteError

            raise JournalWriteError(str(self.path.parent / JOURNAL), exc) from None
        def held_by_a_live_process() -> bool:
            holder = read_pid(self.path)
            return holder is not None and pid_alive(holder)

        if not flock_within(fd, wait_s, give_up=held_by_a_live_process):
            os.close(fd)
            holder = read_pid(self.path)
            named = f"pid {holder}" if holder is not None else "another process"
            raise SweeperError(
                f"sweep in {self.path.parent} is already running ({named}); "
                "wait for it, stop it, or give this run another --name"
            )
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same; only its pid is not shown
        self._fd, self._owner_pid = fd, os.getpid()
        _HELD_LOCKS.add(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None and self._owner_pid == os.getpid()

    def release(self) -> None:
        if not self.held:
            return
        assert self._fd is not None
        fd, self._fd = self._fd, None
        _HELD_LOCKS.discard(fd)
        try:
            os.ftruncate(fd, 0)  # no holder's pid left for readers
        except OSError:
            pass
        os.close(fd)  # releases the flock


#: Descriptors of the sweep locks this process holds, closed in forked children.
_HELD_LOCKS: set[int] = set()


def _forget_locks_in_child() -> None:
    """A forked child (the report's plot child, a fork-started worker) shares the lock's open
    file: closing its copy leaves the parent's lock as it is, and a child that outlives a
    killed coordinator no longer holds the sweep."""
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def lock_holder(directory: Path) -> int | None:
    """The pid of the process holding the sweep's lock now (0 when it is held but its pid is
    not written yet), or None when nobody holds it. Asks the kernel: a shared ``flock`` that
    cannot be had means a holder, whatever the file says."""
    path = directory / "lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            for _ in range(20):  # its holder writes its pid right after taking it
                pid = read_pid(path)
                if pid is not None:
                    return pid
                time.sleep(0.005)
            return 0
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass
class Resumed:
    """What an existing study already holds."""

    totals: Totals
    requeued: list[int]  # trials left RUNNING by a dead coordinator, failed and queued again


def check_spec(study: Any, spec: Mapping[str, Any], source: str | None) -> None:
    """Refuse to resume a sweep whose search space, directions, model or objective changed,
    naming each change (``search_space.C.high: 10 -> 100``); a new sweep stores its spec."""
    stored = study.user_attrs.get(SPEC_ATTR)
    current = json.loads(json.dumps(spec))
    if stored is None:
        study.set_user_attr(SPEC_ATTR, current)
        return
    changes = list(spec_changes(stored, current))
    if changes:
        problems = [
            ConfigProblem(key, f"{old} (as when the sweep started)", new,
                          hint="a changed sweep is a new sweep: run it with --name NEW")
            for key, old, new in changes
        ]
        raise ConfigError(source, problems)


def spec_changes(old: Any, new: Any, path: str = "") -> Iterable[tuple[str, str, str]]:
    """(key path, old value, new value) for every difference; search spaces compared by name."""
    if isinstance(old, list) and isinstance(new, list) and all(
        isinstance(x, dict) and "name" in x for x in [*old, *new]
    ):
        old, new = {x["name"]: x for x in old}, {x["name"]: x for x in new}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key == "name" and path:
                continue
            where = f"{path}.{key}" if path else str(key)
            if key not in new:
                yield where, _shown(old[key]), "(removed)"
            elif key not in old:
                yield where, "(absent)", _shown(new[key])
            else:
                yield from spec_changes(old[key], new[key], where)
    elif old != new:
        yield path, _shown(old), _shown(new)


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def resume(study: Any) -> Resumed:
    """Fail the trials a dead coordinator left RUNNING and queue their params again (once),
    and count what is already done."""
    from optuna.trial import TrialState

    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _compat.set_trial_system_attr(study, trial, FAIL_REASON_ATTR, "interrupted")
        _compat.set_trial_system_attr(study, trial, ERROR_ATTR, "coordinator lost while the trial ran")
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if trial.user_attrs.get(RESUMED_ATTR) is None:  # queued again once, not forever
            study.enqueue_trial(trial.params, user_attrs={RESUMED_ATTR: trial.number})
        requeued.append(trial.number)
    return Resumed(Totals.of_study(study), requeued)


def record_of(study: Any, trial: Any) -> TrialRecord:
    """A finished trial's record rebuilt from the study (the live one is gone: a restart)."""
    state = trial.state.name.lower()
    start = trial.datetime_start or trial.datetime_complete
    end = trial.datetime_complete or start
    start_ms = int(start.timestamp() * 1000) if start else 0
    end_ms = int(end.timestamp() * 1000) if end else start_ms
    reports = tuple(Measurement("intermediate_value", float(v), int(step), end_ms)
                    for step, v in sorted(trial.intermediate_values.items()))
    failed = state == "fail"
    return TrialRecord(
        number=trial.number, state=state, start_ms=start_ms, end_ms=end_ms,
        duration_s=float(trial.system_attrs.get(DURATION_ATTR, (end_ms - start_ms) / 1000)),
        params=dict(trial.params),
        values=tuple(float(v) for v in trial.values) if state == "complete" and trial.values else None,
        value_names=tuple(study.metric_names or ()),
        reason=(trial.system_attrs.get(FAIL_REASON_ATTR) or "exception") if failed else (
            "pruned" if state == "pruned" else None),
        error=trial.system_attrs.get(ERROR_ATTR) if failed else None,
        traceback=trial.system_attrs.get(TRACEBACK_ATTR) if failed else None,
        reports=reports, user_attrs=dict(trial.user_attrs),
        retry_of=trial.user_attrs.get(RETRY_ATTR), recovered=True,
    )


def finished_records(study: Any) -> list[TrialRecord]:
    return [record_of(study, t) for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
