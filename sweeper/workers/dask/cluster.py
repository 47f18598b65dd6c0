"""Reaching a cluster: a LocalCluster for ``local:N``, the TLS warning, the words for versions
and modules that differ between this machine and the cluster.

    local:N      -> LocalCluster(N one-thread worker processes with nannies, 127.0.0.1), owned
    an address   -> connect with dask's Security (TLS settings from dask's config); warn once
                    when the scheduler is off loopback and TLS is off
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import distributed as _distributed
from distributed.comm.addressing import get_address_host

from ...errors import BackendError
from ..callables import main_left_alone

distributed: Any = _distributed  # untyped at these edges (its calls are not annotated)
logger = logging.getLogger("sweeper")

_warned_plain: set[str] = set()


def versions_of(info: Mapping[str, Any]) -> dict[str, str]:
    packages = dict(info.get("packages") or {})
    python = str(packages.get("python") or (info.get("host") or {}).get("python") or "")
    found = {name: str(packages[name]) for name in ("dask", "distributed", "sweeper") if packages.get(name)}
    if python:
        found["python"] = ".".join(python.split(".")[:2])
    return found


def refusal(reports: Sequence[Mapping[str, Any]], expected: Mapping[str, str]) -> str:
    lines = []
    for report in reports:
        where = f"Dask worker {report.get('address')}"
        for name, version in sorted((report.get("versions") or {}).items()):
            lines.append(f"{where} runs {name} {version}, this machine {expected.get(name)} (every host needs "
                         "the same Python, dask, distributed and sweeper)")
        for module, error in sorted((report.get("imports") or {}).items()):
            lines.append(f"{where} cannot import {module} ({error}): the objective's code must be installed "
                         "on every worker host (pip install it there, or put it on that host's PYTHONPATH)")
    return "\n".join(lines)


def warn_if_exposed(address: str, security: Any) -> None:
    """Once per address: a scheduler reached over the network without TLS lets anyone who
    reaches its port run code on every worker (and on this machine, through what it sends)."""
    scheme, _, rest = address.partition("://")
    if scheme in ("tls", "wss") or getattr(security, "require_encryption", False):
        return
    host = get_address_host(address) if rest else address
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback and address not in _warned_plain:
        _warned_plain.add(address)
        logger.warning(
            "the Dask scheduler %s is reached without TLS: whoever reaches its port can run code on every worker; "
            "use tls:// with certificates in dask's config (distributed.comm.tls), or keep it on a private network",
            address)


def local_cluster(n_workers: int) -> Any:
    """``local:N``: N one-thread worker processes on 127.0.0.1, each with a nanny; not daemonic,
    so trials may start processes of their own (joblib, multiprocessing) as locally."""
    import dask

    started = time.monotonic()
    # Nannies run in this process: Dask's pre-spawn variables (OMP_NUM_THREADS=1, ...) would be
    # set in our own environment. The workers get nested parallelism's share from the serve task.
    # Dask's sampling profiler (every 10 ms, in every worker) is off: it slowed trials down.
    settings = {"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": {},
                "distributed.nanny.environ": {"MALLOC_TRIM_THRESHOLD_": 65536},
                "distributed.worker.profile.enabled": False}
    seed = os.environ.get("PYTHONHASHSEED")
    with dask.config.set(settings), main_left_alone("sweeper starts Dask workers"):
        try:
            cluster = distributed.LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                preload=[__name__],  # dask_setup below, in every worker process at its start
                dashboard_address=None, silence_logs=logging.ERROR,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP server: not on 8787
            )
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"could not start a local Dask cluster of {n_workers} workers: {exc}") from exc
        finally:
            if seed is None:  # the nannies set one for their workers, in this process's environment
                os.environ.pop("PYTHONHASHSEED", None)
    logger.debug("local Dask cluster of %d workers up in %.1fs", n_workers, time.monotonic() - started)
    return cluster


def dask_setup(worker: Any) -> None:
    """Run by each ``local:N`` worker process as it starts (Dask's ``preload``): a session of its
    own, so the terminal's Ctrl-C (and a SIGTERM to our process group) reaches the coordinator
    alone, which lets running trials finish first, as with local workers. The nanny still ends
    it (``end_worker``), and it still exits with this process."""
    with contextlib.suppress(OSError):
        os.setsid()

