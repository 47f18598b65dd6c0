"""Nested parallelism sized to the worker: inside a worker process, joblib's ``n_jobs=-1`` and the
BLAS/OpenMP thread pools mean that worker's share of the cores, not the whole machine's.

    cores this process may use // workers (at least 1) = each worker's share
      -> LOKY_MAX_CPU_COUNT (joblib/loky's cpu_count, so n_jobs=-1), OMP_NUM_THREADS,
         OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, ... in each worker's environment (its children
         inherit them), and thread pools already loaded limited to it

Two workers on two cores whose trials call ``cross_val_score(..., n_jobs=-1)`` then run two
processes, not six. A variable set in the environment that starts the sweep is the user's
choice and is kept (that is how to override the share); an explicit ``n_jobs=4`` in the
objective is kept as well. Stdlib only (threadpoolctl inside a function).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: joblib's (loky's) ``cpu_count()`` is at most this, so ``n_jobs=-1`` means the worker's share.
JOBS_VARIABLE = "LOKY_MAX_CPU_COUNT"
#: Thread pools of BLAS, OpenMP and numexpr, read when each library loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Which thread pool (threadpoolctl's ``user_api``) each variable sizes.
_USER_API = {"OMP_NUM_THREADS": "openmp", "OPENBLAS_NUM_THREADS": "blas", "MKL_NUM_THREADS": "blas"}


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS/Windows
        return max(1, os.cpu_count() or 1)


def core_share(n_workers: int) -> int:
    """Each of ``n_workers`` workers' share of the cores: at least 1."""
    return max(1, cores() // max(1, n_workers))


def worker_environment(n_workers: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables each worker sets at start: the share, or the user's value where ``environ``
    (the coordinator's) has one (a forkserver started earlier may not have it)."""
    share = str(core_share(n_workers))
    return {name: environ.get(name) or share for name in (JOBS_VARIABLE, *THREAD_VARIABLES)}


def apply_worker_environment(env: Mapping[str, str]) -> None:
    """In a worker at start: set ``env``, and limit the thread pools of libraries a forkserver
    loaded before it was set (they read their variables once, when they loaded)."""
    os.environ.update(env)
    limits = {_USER_API[name]: int(value) for name, value in env.items() if name in _USER_API}
    if limits and "numpy" in sys.modules:  # no numpy loaded: no BLAS or OpenMP pool yet
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=limits)  # kept for the worker's life (not used as a context)
