"""Where a sweep's Optuna study lives, and how a second run of the same sweep resumes it.

    .sweeper/<name>/study.journal   Optuna journal (append-only; opens with optuna's own tools)
    .sweeper/<name>/lock            pid of the coordinator running it now
    .sweeper/<name>/spool.jsonl     MLflow writes that failed after retries

A journal file rather than SQLite: one writer needs no database locking, and appends are ~6x
faster than SQLite transactions. Optuna is imported inside functions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._procs import pid_alive
from ..errors import ConfigError, ConfigProblem, SweeperError

SPEC_ATTR = "sweeper_spec"
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # written by the coordinator as soon as the run exists
EXPERIMENT_ATTR = "mlflow_experiment_id"
RUN_IDS_ATTR = "mlflow_run_ids"
RETRY_ATTR = "sweeper_retry_of"  # a re-run of a crashed/timed-out trial (max_retries)
RESUMED_ATTR = "sweeper_resumed_from"  # a re-run of a trial a dead coordinator left running
TRACKING_URI_ATTR = "mlflow_tracking_uri"  # only ever without credentials


@dataclass
class Resumed:
    """What an existing study already holds."""

    finished: int  # trials that count toward n_trials
    requeued: list[int]  # trials left RUNNING by a dead coordinator, failed and queued again
    parent_run_id: str | None


def sweep_dir(root: str | os.PathLike[str], name: str) -> Path:
    return Path(root) / name


def journal_storage(directory: Path, *, owner: bool = False) -> Any:
    """The sweep's Optuna storage. ``owner``: the caller holds the ``SweepLock``, so a journal
    write lock left by a coordinator killed mid-append is stale and is removed (else Optuna
    would wait on it)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    directory.mkdir(parents=True, exist_ok=True)
    journal = directory / "study.journal"
    if owner:
        Path(f"{journal}.lock").unlink(missing_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))


class SweepLock:
    """One coordinator per sweep directory; a second one is refused at once, naming the holder."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "lock"
        self._held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read_pid(self.path)
                if holder is not None and holder != os.getpid() and pid_alive(holder):
                    raise SweeperError(
                        f"sweep in {self.path.parent} is already running (pid {holder}); "
                        "wait for it, stop it, or give this run another --name"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its coordinator died
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            self._held = True
            return
        raise SweeperError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


def resume(study: Any, spec: dict[str, Any], source: str | None) -> Resumed:
    """Check the stored spec matches, fail trials a dead coordinator left RUNNING and queue
    their params again (once), and count what is already done."""
    from optuna.trial import TrialState

    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, spec)
    elif stored != json.loads(json.dumps(spec)):
        problems = [
            ConfigProblem(key, f"{json.dumps(stored.get(key))} as when the sweep started", json.dumps(spec.get(key)),
                          hint="a changed sweep needs a new name: use --name NEW")
            for key in sorted(set(stored) | set(spec))
            if stored.get(key) != json.loads(json.dumps(spec.get(key)))
        ]
        raise ConfigError(source, problems)
    requeued = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        if trial.state == TrialState.WAITING:
            continue
        study._storage.set_trial_system_attr(trial._trial_id, "sweeper:fail_reason", "interrupted")
        study._storage.set_trial_system_attr(trial._trial_id, "sweeper:error", "coordinator lost while the trial ran")
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if trial.user_attrs.get(RESUMED_ATTR) is None:  # queued again once, not forever
            study.enqueue_trial(trial.params, user_attrs={RESUMED_ATTR: trial.number})
        requeued.append(trial.number)
    # What counts toward n_trials: fresh trials and re-runs of interrupted ones (which stand in
    # for them), not the interrupted trials themselves nor retries of failed ones.
    finished = [
        t for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.system_attrs.get("sweeper:fail_reason") != "interrupted"
        and RETRY_ATTR not in t.user_attrs
    ]
    return Resumed(len(finished), requeued, study.user_attrs.get(PARENT_RUN_ATTR))


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def run_id_of(study: Any, trial: Any) -> str | None:
    """The MLflow child run of a trial, wherever it was recorded: the trial's own system attr,
    or the study's list for trials that ended before their run existed."""
    run_id = trial.system_attrs.get("sweeper:mlflow_run_id")
    if run_id is None:
        run_id = study.user_attrs.get(RUN_IDS_ATTR, {}).get(str(trial.number))
    return run_id if isinstance(run_id, str) else None
