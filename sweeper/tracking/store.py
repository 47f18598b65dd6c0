"""What the writer asks of an MLflow store, whichever way it is written.

    Writer --RunWrite / RunRef--> SqliteStore  (sqlite3 into MLflow's tables: the default store)
                              --> ClientStore  (MLflow's public client: every store)

A ``RunWrite`` creates a run (``run_id`` None) or adds to one, as ``create_run`` +
``log_batch`` + artifacts + ``set_terminated`` would, the final status always last: a run
whose status is final holds everything it will hold. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class RunWrite:
    run_id: str | None  # None: create the run
    run_name: str
    start_ms: int
    status: str  # RUNNING: created (or left) running; else the final status, written last
    end_ms: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, step, ms
    texts: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, bytes, str | None]] = field(default_factory=list)


@dataclass(frozen=True)
class RunRef:
    """A run found in the store: its id, status and (children) trial number."""

    run_id: str
    status: str
    number: int | None = None
    start_ms: int = 0


class PartialWrite(Exception):
    """A run was created but what followed failed: write the rest to ``run_id``, never create
    it again."""

    def __init__(self, run_id: str, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.run_id = run_id
        self.cause = cause


class Store(Protocol):
    #: How it writes, for messages: "direct sqlite" or "MLflow client".
    kind: str
    #: ``write`` takes many runs in one all-or-nothing transaction (else one run per call).
    transactional: bool

    def open_experiment(self, name: str, artifact_location: str | None, tags: Mapping[str, str]) -> str: ...

    def probe(self, params: Sequence[str], metrics: Sequence[str], tags: Mapping[str, str]) -> None:
        """Create a run with a param and a metric of each name, then delete it."""
        ...

    def find_runs(self, tag: str, value: str) -> list[RunRef]:
        """Active runs of the experiment whose tag ``tag`` is ``value``, oldest first."""
        ...

    def children(self, parent_run_id: str) -> list[RunRef]: ...

    def run_status(self, run_id: str) -> str | None:
        """The status of an active run of the experiment; None if there is none."""
        ...

    def run_contents(self, run_id: str) -> tuple[set[str], bool]:
        """The run's param keys, and whether it holds any metric."""
        ...

    def write(self, runs: Sequence[RunWrite]) -> list[str]:
        """Write ``runs``; their run ids, in order."""
        ...

    def set_status(self, run_id: str, status: str, end_ms: int | None = None) -> None: ...

    def delete_run(self, run_id: str) -> None: ...

    def close(self) -> None: ...
