"""Objectives for tests, at module level so spawned and forkserver workers can import them.

Fault objectives take a ``marker`` path (via objective_kwargs) when they must misbehave only
once: the first trial that finds the file deletes it and then crashes.
"""

from __future__ import annotations

import faulthandler
import math
import os
import signal
import sys
import threading
import time

import optuna

import sweeper


def quadratic(trial):
    x = trial.suggest_float("x", -10, 10)
    return (x - 2) ** 2


def sleepy(trial, sleep_s=0.2):
    x = trial.suggest_float("x", 0, 1)
    time.sleep(sleep_s)
    return x


def pid_value(trial, sleep_s=0.05):
    """Returns its worker's pid, to see trials spread over processes."""
    trial.suggest_int("i", 0, 1000)
    time.sleep(sleep_s)
    return float(os.getpid())


def define_by_run(trial):
    """Conditional params, reports, pruning and user attrs: what Optuna objectives do."""
    kind = trial.suggest_categorical("kind", ["linear", "square"])
    if kind == "linear":
        a = trial.suggest_float("a", -5, 5)
        value = abs(a)
    else:
        b = trial.suggest_int("b", 1, 10, log=True)
        value = float(b * b)
    trial.set_user_attr("kind_seen", kind)
    for step in range(4):
        trial.report(value + 3 - step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def counted_steps(trial, steps=8):
    """Reports ``steps`` intermediate values unless pruned; the number reported is a user attr."""
    x = trial.suggest_float("x", 0, 10)
    for step in range(steps):
        trial.report(x + 1.0 / (step + 1), step)
        trial.set_user_attr("steps", step + 1)
        if trial.should_prune():
            raise sweeper.TrialPruned()
    return x


def two_objectives(trial):
    x = trial.suggest_float("x", 0, 5)
    return x, (x - 3) ** 2


def raises(trial):
    trial.suggest_float("x", 0, 1)
    raise ValueError("boom")


def raises_on_odd(trial):
    x = trial.suggest_float("x", 0, 1)
    if trial.number % 2:
        raise ValueError(f"odd trial {trial.number}")
    return x


class Unpicklable(Exception):
    def __init__(self, a, b):  # noqa: D107 - pickling needs (a, b): python/cpython#76877
        super().__init__(f"{a}-{b}")
        self.lock = threading.Lock()


def raises_unpicklable(trial):
    raise Unpicklable(1, 2)


def _once(marker):
    """True for exactly one caller across processes: whoever removes the marker file."""
    if not marker:
        return False
    try:
        os.remove(marker)
    except FileNotFoundError:
        return False
    return True


def sigkill_once(trial, marker=None, **_ignored):
    x = trial.suggest_float("x", 0, 1)
    if _once(marker):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x


def segfault_once(trial, marker=None):
    x = trial.suggest_float("x", 0, 1)
    if _once(marker):
        faulthandler._sigsegv()
    return x


def os_exit_once(trial, marker=None):
    x = trial.suggest_float("x", 0, 1)
    if _once(marker):
        os._exit(3)
    return x


def sys_exit(trial):
    trial.suggest_float("x", 0, 1)
    sys.exit(0)


def always_segfault(trial):
    faulthandler._sigsegv()


def hang_once(trial, marker=None):
    x = trial.suggest_float("x", 0, 1)
    if _once(marker):
        time.sleep(3600)
    return x


def hang_ignoring_sigterm(trial):
    # Only a process's main thread may set a handler: a Dask worker runs trials in another
    # thread, where this objective can only hang (SIGTERM then ends the whole worker process).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)


def crash_after_result(trial):
    """Sends its result, then the worker dies (loky's CrashAtGCInWorker analogue)."""
    x = trial.suggest_float("x", 0, 1)
    threading.Timer(0.05, os._exit, args=(5,)).start()
    return x


def returns(trial, kind="nan"):
    trial.suggest_float("x", 0, 1)
    import numpy as np

    return {
        "nan": float("nan"),
        "none": None,
        "str": "0.5",
        "lambda": lambda: 0,
        "inf": math.inf,
        "numpy": np.float32(0.5),
        "list": [0, 1],
    }[kind]


def logs_everything(trial, artifact_dir=None):
    x = trial.suggest_float("x", 0, 1)
    time.sleep(0.1)  # long enough that both workers are up before the trials run out
    trial.log_metrics({"train_loss": 1 - x, "extra": 2.0})
    for step in range(3):
        trial.log_metric("curve", x * step, step=step)
    if artifact_dir:
        path = os.path.join(artifact_dir, f"note-{trial.number}.txt")
        with open(path, "w") as handle:
            handle.write(f"trial {trial.number}")
        trial.log_artifact(path)
    return x



def slow(trial, sleep_s=0.4):
    """A trial that takes a while, for interrupting and killing sweeps mid-flight."""
    x = trial.suggest_float("x", 0, 1)
    time.sleep(sleep_s)
    return x


def noisy_then_segfault(trial):
    print(f"hello from trial {trial.number}", flush=True)
    faulthandler._sigsegv()


def shouting(trial, megabytes=2):
    x = trial.suggest_float("x", 0, 1)
    line = "y" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(line)
    return x


def same_file_artifact(trial, artifact_dir):
    """Reuses one file name for every trial and deletes it at once, as scripts often do."""
    x = trial.suggest_float("x", 0, 1)
    path = os.path.join(artifact_dir, f"note-{os.getpid()}.txt")
    with open(path, "w") as handle:
        handle.write(f"trial {trial.number}")
    trial.log_artifact(path, artifact_path="notes")
    os.remove(path)
    return x


_HOARD = []


def leaky(trial, megabytes=40):
    """Keeps memory across trials in a module global: a leak a worker recycle must cure."""
    _HOARD.append(bytearray(megabytes * 2**20))
    trial.suggest_float("x", 0, 1)
    return float(os.getpid())


def reports_a_lot(trial, n=25_000):
    x = trial.suggest_float("x", 0, 1)
    for step in range(n):
        trial.report(x, step)
    return x


def huge_user_attr(trial):
    trial.set_user_attr("blob", "z" * 200_000)
    return 0.0


def uses_shared_array(trial, X=None, y=None):
    """Gets large arrays through objective_kwargs: they must arrive as read-only shared views."""
    trial.suggest_float("x", 0, 1)
    assert not X.flags.writeable
    trial.set_user_attr("shape", list(X.shape))
    return float(X[:, 0].sum() + y.sum())


# --- workers: the backend contract, embedding, what trials start (tests/test_backend_contract.py,
# --- tests/test_embedding_*.py, tests/test_workers_*.py) ---------------------------------------

#: The variable test objectives give every process they start, to find them afterwards.
MARKER_VARIABLE = "SWEEPER_TEST_MARKER"


def hang(trial, sleep_s=30.0):
    """Hangs (bounded, so an abandoned thread of the inline backend ends too)."""
    time.sleep(sleep_s)
    return 0.0


def reports_then_dies(trial, steps=3):
    """Sends ``steps`` reports, then its worker dies before the result."""
    for step in range(steps):
        trial.report(float(step), step)
    sys.stdout.flush()
    os._exit(7)


class ExitOnLoad:
    """Pickled, it makes whoever unpickles it exit at once: a worker that dies before it is ready."""

    def __reduce__(self):
        return (os._exit, (3,))


def starts_processes(trial, marker="", pool="sklearn", then="return"):
    """What objectives start, each process carrying ``MARKER_VARIABLE=marker``: a joblib/loky
    pool (``cross_val_score(..., n_jobs=2)``, or a bare ``joblib.Parallel``), a plain
    subprocess and a multiprocessing child. ``then``: "return", "hang" or "die" after that."""
    import multiprocessing
    import subprocess

    import joblib

    os.environ[MARKER_VARIABLE] = marker  # inherited by everything started from here on
    depth = trial.suggest_int("max_depth", 1, 4)
    if pool == "sklearn":
        from sklearn.datasets import load_iris
        from sklearn.model_selection import cross_val_score
        from sklearn.tree import DecisionTreeClassifier

        X, y = load_iris(return_X_y=True)
        model = DecisionTreeClassifier(max_depth=depth, random_state=0)
        score = float(cross_val_score(model, X, y, cv=3, n_jobs=2).mean())
    else:
        score = float(sum(joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4))))
    subprocess.Popen(["sleep", "600"])
    multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,)).start()
    if then == "hang":
        time.sleep(600)
    elif then == "die":
        os._exit(9)
    return score


def nested_share(trial):
    """What ``n_jobs=-1`` means inside this worker, and how many loky processes it started."""
    import joblib
    import psutil
    from sklearn.datasets import load_iris
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    trial.suggest_int("max_depth", 1, 4)
    cross_val_score(DecisionTreeClassifier(random_state=0), X, y, cv=4, n_jobs=-1)
    loky = [p for p in psutil.Process().children(recursive=True)
            if "popen_loky_posix" in " ".join(p.cmdline())]
    trial.set_user_attr("loky_workers", len(loky))
    trial.set_user_attr("env", {k: os.environ.get(k) for k in ("LOKY_MAX_CPU_COUNT", "OMP_NUM_THREADS")})
    return float(joblib.effective_n_jobs(-1))


def study_surface(trial):
    """Reads what Optuna's trial offers beyond suggestions, and keeps it as user attrs."""
    n = trial.suggest_int("n", 1, 1000, log=True)
    x = trial.suggest_float("x", 0.0, 1.0, step=0.25)
    study = trial.study
    trial.set_user_attr("seen", {
        "study_name": study.study_name,
        "direction": study.direction.name,
        "direction_is_optunas": study.direction == optuna.study.StudyDirection.MAXIMIZE,
        "user_attrs": study.user_attrs,
        "best_value": None if trial.number == 0 else study.best_value,
        "datetime_start": trial.datetime_start.isoformat(),
        "relative_params": trial.relative_params,
    })
    return n + x


def lightgbm_pruned(trial, rounds=12):
    """optuna-integration's LightGBM pruning callback, unchanged, in a sweeper objective."""
    import lightgbm as lgb
    from optuna_integration import LightGBMPruningCallback
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.25, random_state=0)
    params = {
        "objective": "binary", "metric": "binary_logloss", "verbosity": -1, "num_threads": 1,
        "num_leaves": trial.suggest_int("num_leaves", 2, 16),
        "learning_rate": trial.suggest_float("learning_rate", 0.05, 0.3, log=True),
    }
    booster = lgb.train(
        params, lgb.Dataset(X_train, label=y_train), num_boost_round=rounds,
        valid_sets=[lgb.Dataset(X_valid, label=y_valid)],
        callbacks=[LightGBMPruningCallback(trial, "binary_logloss")],
    )
    predicted = booster.predict(X_valid)
    return float(((predicted > 0.5) != y_valid).mean())


def array_sum(trial, X=None):
    """The sum of an array that reached the worker through the backend's ``share``."""
    return float(X.sum())


def starts_sleep(trial):
    """Starts ``sleep 600`` and returns its pid."""
    import subprocess

    return float(subprocess.Popen(["sleep", "600"]).pid)


UNPICKLED = {"count": 0}


class CountsUnpickling:
    """A callable objective that counts how often it was unpickled in this process."""

    def __init__(self):
        self.state = "some"  # an empty state would skip __setstate__

    def __setstate__(self, state):
        UNPICKLED["count"] += 1
        self.__dict__.update(state)

    def __call__(self, trial):
        return float(UNPICKLED["count"])


def relative_seen(trial):
    """Keeps what the trial says its sampler chose jointly, then asks for those params."""
    relative = dict(trial.relative_params)
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("relative_params", relative)
    return x
