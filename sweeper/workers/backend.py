"""The seam between the coordinator and wherever trials run.

    coordinator --send(slot, message)----> worker in that slot (its own inbox)
    coordinator <--receive()-------------- any worker's message, or WorkerLost(slot, reason)
    coordinator --cancel(slot, grace_s)--> that slot's trial stops (the worker goes, a new one comes)

A backend moves messages and keeps one worker alive per slot; it decides nothing. Crashes come
as messages (``WorkerLost``), in order after whatever the lost worker said before it died;
the backend starts the replacement itself, which announces itself with ``WorkerReady``. No
call may block on a remote host: ``send`` and ``cancel`` return at once, ``receive`` waits at
most ``timeout_s``. Implementations: ``local.LocalBackend`` (processes on this machine, the
default), ``inline.InlineBackend`` (threads of this process, for debuggers). Stdlib only.

An objective sent by value (``callables``: pickled bytes) is handed to a backend when it is
made (``objectives={name: bytes}``) and reaches each worker once, when it starts; a
``RunTrial.objective`` then names it, or is an import path the worker imports itself. Every
backend runs ``tests/test_backend_contract.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .messages import FromBackend, ToWorker

#: Times in a row a slot may die before its worker ever said ``WorkerReady`` before the backend
#: stops replacing it (a broken environment, a script that cannot be imported): never a loop.
RESTART_BUDGET = 5


class Backend(Protocol):
    """What the coordinator drives."""

    #: ``"local"``, ``"inline"``, ...: shown to the user, recorded with the sweep.
    name: str

    def start(self, n_workers: int) -> None:
        """Start ``n_workers`` slots (0 .. n-1); each says ``WorkerReady`` when it is up."""
        ...

    def send(self, worker_id: int, message: ToWorker) -> None:
        """Deliver to the slot's current worker (dropped if it is gone; the loss is reported
        by ``receive``). ``BackendError`` if the transport itself is lost."""
        ...

    def receive(self, timeout_s: float) -> FromBackend | None:
        """The next message from any worker, or a ``WorkerLost``; None after ``timeout_s``.
        ``BackendError`` if the transport itself is lost."""
        ...

    def cancel(self, worker_id: int, grace_s: float) -> None:
        """Stop what the slot's worker is doing, now: asked politely, ended after ``grace_s``.
        The slot then reports ``WorkerLost`` and is replaced, as after a crash."""
        ...

    def share(self, kwargs: Mapping[str, Any], *, min_bytes: int | None = None) -> dict[str, Any]:
        """``kwargs`` with large data (arrays of ``min_bytes`` or more; None: the backend's own
        threshold) put where every worker reads it once, not copied into every trial; what
        comes back is what ``RunTrial.objective_kwargs`` carries."""
        ...

    def processes(self) -> dict[str, Any]:
        """Where this backend's helper processes run (for ``sweeper status``), plain data."""
        ...

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker (``kill``: at once) and release what ``share`` made. Idempotent."""
        ...
