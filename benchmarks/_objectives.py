"""Objectives the benchmarks run, importable by worker processes (no lambdas, no closures).

Each works with both an ``optuna.Trial`` and a ``sweeper.Trial`` (same ``suggest_*`` methods).
Only the standard library at module level: a worker that imports this stays cheap.
"""

from __future__ import annotations

import os
import time
from typing import Any

# --- CPU-bound ---------------------------------------------------------------------------------


def spin(n_iter: int) -> int:
    """A pure-Python busy loop (holds the GIL the whole time, like real Python-heavy code)."""
    acc = 0
    for i in range(n_iter):
        acc = (acc + i * i) % 1_000_003
    return acc


def calibrate(target_s: float, rounds: int = 3) -> int:
    """Iterations of ``spin`` that take about ``target_s`` on this machine (median of rounds)."""
    n = 50_000
    while True:
        t0 = time.perf_counter()
        spin(n)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        n *= 2
    n = int(n * target_s / dt)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        spin(n)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    return max(1, int(n * target_s / samples[len(samples) // 2]))


def cpu_objective(trial: Any, n_iter: int) -> float:
    x = trial.suggest_float("x", -5.0, 5.0)
    spin(n_iter)
    return (x - 1.0) ** 2


# --- trivial and sleeping ------------------------------------------------------------------------


def trivial_objective(trial: Any) -> float:
    """Two define-by-run suggestions and a constant-ish value: measures pure framework cost."""
    x = trial.suggest_float("x", -10.0, 10.0)
    y = trial.suggest_int("y", 0, 10)
    return (x - 2.0) ** 2 + 0.1 * y


def sleep_objective(trial: Any, seconds: float) -> float:
    x = trial.suggest_float("x", -10.0, 10.0)
    time.sleep(seconds)
    return (x - 2.0) ** 2


# --- memory (B4) -------------------------------------------------------------------------------

#: Set in the coordinator before workers fork (fork inheritance), or per worker (own copy).
SHARED: dict[str, Any] = {}


def make_dataset(n_bytes: int, seed: int = 0) -> Any:
    import numpy as np

    n = max(1, n_bytes // 8)
    return np.random.default_rng(seed).random(n)  # float64


def _use(X: Any, hold_s: float) -> float:
    total = float(X.sum())  # touches every page, so the copy this process sees is resident
    time.sleep(hold_s)  # hold it while the sampler looks
    return total / X.size


def _use_timed(trial: Any, X: Any, hold_s: float, t0: float) -> float:
    """``_use``, and on a worker's first trial record when the data became usable: ``ready_s``
    from ``t0`` (wall clock just before the sweep call, so worker start-up is included) to X in
    hand, and ``read_s`` for the first full pass over it (page faults on fresh mappings)."""
    first = "seen" not in SHARED
    if first:
        SHARED["seen"] = True
        trial.set_user_attr("ready_s", time.time() - t0)
        t = time.perf_counter()
        float(X.sum())
        trial.set_user_attr("read_s", time.perf_counter() - t)
    return _use(X, hold_s)


def memory_from_kwargs(trial: Any, X: Any, hold_s: float, t0: float) -> float:
    """The array arrives with every trial's message (objective_kwargs): a shared-memory
    reference when sweeper publishes it, attached by the worker."""
    trial.suggest_int("i", 0, 1000)
    return _use_timed(trial, X, hold_s, t0)


def memory_from_global(trial: Any, hold_s: float, t0: float) -> float:
    """The array is a module global the coordinator set before forking its workers."""
    trial.suggest_int("i", 0, 1000)
    return _use_timed(trial, SHARED["X"], hold_s, t0)


def memory_generate_per_worker(trial: Any, n_bytes: int, hold_s: float, t0: float) -> float:
    """Each worker makes (or loads) the data itself once, cached, as sweeper's built-in objective
    does with its ``_DATASETS`` cache."""
    trial.suggest_int("i", 0, 1000)
    if "X" not in SHARED:
        SHARED["X"] = make_dataset(n_bytes)
    return _use_timed(trial, SHARED["X"], hold_s, t0)


def memory_mmap(trial: Any, path: str, hold_s: float, t0: float) -> float:
    """A user-side workaround: ``np.load(mmap_mode="r")`` of a ``.npy`` file (page cache shared)."""
    import numpy as np

    trial.suggest_int("i", 0, 1000)
    if SHARED.get("path") != path:
        SHARED["X"] = np.load(path, mmap_mode="r")
        SHARED["path"] = path
    return _use_timed(trial, SHARED["X"], hold_s, t0)


def pool_task_global(hold_s: float) -> float:
    return _use(SHARED["X"], hold_s)


def pool_task_array(args: tuple[Any, float]) -> float:
    X, hold_s = args
    return _use(X, hold_s)


def pid() -> int:
    return os.getpid()
