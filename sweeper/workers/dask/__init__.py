"""Worker slots on a Dask cluster: the same sweep on many machines, the coordinator still the
only writer of the study and of MLflow.

    coordinator (this process)                              Dask cluster
      DaskBackend --Queue "<p>-in-<token>"---> scheduler ---> serve task of slot k, alone on its
                  <--Queue "<p>-out" (all slots)----------        own `dask worker --nthreads 1`
                  <--events: remove-worker, exit code------ nanny of that worker
                  --end_worker(pid) (cancel)--------------> nanny: SIGTERM, SIGKILL after grace

Each slot is one long-lived ``serve`` task (the local worker loop, unchanged) on a Dask worker
of its own; killing a hung trial means ending that worker process, which its nanny replaces.
Messages to the coordinator are plain lists, decoded through the messages' whitelist: sweeper
never unpickles what a worker sends (Dask's own protocol trusts the cluster's members: that is
what TLS is for). ``backend_for_cluster("local:N" | "tcp://host:8786")`` makes one.

Transport, chosen by measurement (``benchmarks/b7_dask.py``: a Suggest-sized message from a
worker to the coordinator and an answer back, median of 300, 2 cores, 127.0.0.1; two runs):
Dask queues both ways 1.2-2.4 ms; events out (``log_event``) and a queue in 2.7-2.8 ms; a queue
out and an actor inbox on the worker 2.9-5.5 ms (distributed 2026.8 has no Pub/Sub). Queues are
also the only primitive whose put is acknowledged: a put returns once the scheduler holds the
message, so what a worker said before it died is never lost and its ``WorkerLost`` can come
after it; events are batched and fire-and-forget, and an actor lives and dies with one worker.
Every remote call is made on one asyncio thread (``backend.py``): the coordinator's thread
never waits on the network.

    backend.py  the coordinator's side (the Backend)   remote.py  what runs on workers and nannies
    cluster.py  local:N, the TLS warning, the words for versions and modules that differ

Only this package imports dask/distributed, and only when a sweep asks for a cluster.
"""

from __future__ import annotations

from typing import Any

from .backend import DaskBackend

__all__ = ["DaskBackend", "backend_for_cluster"]


def backend_for_cluster(cluster: str, **options: Any) -> DaskBackend:
    """The backend for ``--cluster``: ``"local:N"`` is a ``LocalCluster`` of N one-thread worker
    processes on 127.0.0.1 that the backend starts and closes; anything else is a scheduler
    address to connect to (``tcp://host:8786``, ``tls://host:8786``). ``options`` go to
    ``DaskBackend`` (objectives, modules, security, max_trials_per_worker, ...)."""
    kind, _, count = cluster.partition(":")
    if kind == "local":
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"local:N needs a number of workers >= 1, got {cluster!r}")
        return DaskBackend(local_workers=int(count), **options)
    return DaskBackend(cluster, **options)
