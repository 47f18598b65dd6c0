"""The MLflow writer in a process of its own, so its work never competes with scheduling.

    coordinator                                   writer process (sweeper.tracking.process.main)
    ProcessTracker --stdin: framed pickles-->     Tracker (the writer thread of _tracking)
                   <--stdout: ready/run ids/closed--

Why a process: importing mlflow and SQLAlchemy's per-run work hold the GIL for seconds, and a
writer thread made the coordinator answer its workers late (500 trivial trials: 5.2 s of
scheduling with the thread against 1.7 s without tracking). Here the coordinator only pickles a
small record per trial. It is started with ``subprocess`` rather than ``multiprocessing``:
spawn and forkserver both re-import the caller's ``__main__`` script, which the writer has no
use for and which may be slow or unguarded.

The child needs nothing but its pipes: stdin's end (the coordinator died) flushes what arrived
and leaves the parent run RUNNING for a resume. It runs in its own session, so Ctrl-C in the
terminal reaches only the coordinator, which then closes the writer in order.
"""

from __future__ import annotations

import collections
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from .._redact import redact_uri
from .records import ChildRecord
from .writer import Tracker, spool
from ..errors import TrackingError

_HEADER = struct.Struct(">I")
#: The writer opens the store (import mlflow, migrations) within this, or the sweep goes on without it.
READY_TIMEOUT_S = 120.0


def write_frame(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(stream, _HEADER.unpack(header)[0])
    return None if body is None else pickle.loads(body)  # noqa: S301 - our own child's pipe


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class ProcessTracker:
    """``Tracker``'s interface for the coordinator, with the writing done in a child process.
    Every call returns at once: a sender thread feeds the pipe, a receiver thread reads run ids."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        run_name: str,
        *,
        parent_run_id: str | None = None,
        spool_path: str | None = None,
        reconcile: Mapping[int, ChildRecord] | None = None,
        start_ms: int | None = None,
    ) -> None:
        self.uri = uri
        self.parent_run_id = parent_run_id
        self.experiment_id: str | None = None
        self.run_ids: dict[int, str] = {}
        self.failures: list[str] = []
        self._spool_path = spool_path
        self._init = {
            "uri": uri, "experiment": experiment, "run_name": run_name, "parent_run_id": parent_run_id,
            "spool_path": spool_path, "reconcile": dict(reconcile or {}), "start_ms": start_ms,
        }
        self._outbox: queue.Queue[Any] = queue.Queue()
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._start_error: str | None = None
        self._gone = False  # the child exited before it was closed
        self._proc: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        """The writer process (``pids.json`` lists it as ``mlflow_writer``)."""
        return None if self._proc is None else self._proc.pid

    # --- the Tracker interface --------------------------------------------------------------------

    def start(self, params: Mapping[str, Any], tags: Mapping[str, str], texts: Mapping[str, str]) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from sweeper.tracking.process import main; raise SystemExit(main())"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
        )
        self._outbox.put(("init", {**self._init, "params": dict(params), "tags": dict(tags), "texts": dict(texts)}))
        for target, name in ((self._send, "sweeper-mlflow-send"), (self._receive, "sweeper-mlflow-receive")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        if not self._ready.wait(timeout_s):
            raise TrackingError(f"MLflow store {redact_uri(self.uri)} did not answer in {timeout_s:.0f}s")
        if self._start_error is not None:
            raise TrackingError(f"could not open MLflow store {redact_uri(self.uri)}: {self._start_error}")
        assert self.parent_run_id is not None
        return self.parent_run_id

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._start_error is None

    @property
    def failed(self) -> bool:
        return self._ready.is_set() and self._start_error is not None

    def raise_if_failed(self) -> None:
        if self.failed:
            self.wait_ready(0)

    @property
    def start_error(self) -> str | None:
        return self._start_error

    def child_started(self, number: int, start_ms: int, tags: Mapping[str, str]) -> None:
        self._outbox.put(("child_start", (number, start_ms, dict(tags))))

    def child_finished(self, record: ChildRecord) -> None:
        if self._gone:
            spool(self._spool_path, f"record trial {record.number}", record)
            return
        self._outbox.put(("child_end", record))

    def parent_progress(self, metrics: Mapping[str, float], tags: Mapping[str, str], step: int) -> None:
        self._outbox.put(("progress", (dict(metrics), dict(tags), step)))

    def close(
        self,
        status: str,
        tags: Mapping[str, str] | None = None,
        child_tags: Mapping[int, Mapping[str, str]] | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        """Flush every pending write and end the parent run (see ``Tracker.close``)."""
        if self._proc is None:
            return
        self._outbox.put(("close", (status, dict(tags or {}), {k: dict(v) for k, v in (child_tags or {}).items()},
                                    timeout_s)))
        self._outbox.put(None)
        if not self._closed.wait(timeout_s + 5.0) and not self._gone:
            self.failures.append(f"MLflow writer still busy after {timeout_s:.0f}s; some runs may be missing")
        try:
            self._proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for thread in self._threads:
            thread.join(5.0)
        self._proc = None

    def abandon(self) -> None:
        """Stop the writer process now: nothing more comes, the parent run stays as it is."""
        if self._proc is None:
            return
        self._outbox.put(None)
        try:
            self._proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for thread in self._threads:
            thread.join(5.0)
        self._proc = None

    # --- pipes ------------------------------------------------------------------------------------

    def _send(self) -> None:
        """Everything queued goes in one frame (a list of messages): one pickle and one write
        however many trials ended meanwhile, and only the latest parent progress of them --
        this thread shares the coordinator's GIL."""
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        done = False
        while not done:
            batch = [self._outbox.get()]
            while True:
                try:
                    batch.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                done, batch = True, batch[: batch.index(None)]
            batch = _latest_progress_only(batch)
            if not batch:
                continue
            try:
                write_frame(stdin, batch)
            except (BrokenPipeError, OSError):  # the child is gone: keep what it will never write
                for message in batch:
                    self._spool_unsent(message)
        try:
            stdin.close()
        except OSError:
            pass

    def _spool_unsent(self, message: Any) -> None:
        kind, payload = message
        if kind == "child_end":
            spool(self._spool_path, f"record trial {payload.number}", payload)

    def _receive(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            try:
                message = read_frame(stdout)
            except (OSError, EOFError, pickle.UnpicklingError):
                message = None
            if message is None:
                break
            kind, payload = message
            if kind == "run_ids":
                self.run_ids.update(payload)
            elif kind == "ready":
                self.parent_run_id, self.experiment_id, self._start_error = payload
                self._ready.set()
            elif kind == "closed":
                failures, run_ids = payload
                self.failures.extend(failures)
                self.run_ids.update(run_ids)
                self._closed.set()
        if not self._closed.is_set():
            code = self._proc.wait()
            self._gone = True
            what = f"MLflow writer process exited (code {code})"
            if not self._ready.is_set():
                self._start_error = f"{what} before opening the store"
                self._ready.set()
            self.failures.append(f"{what}; the trials it had not written are in the spool file")
            self._closed.set()


class _RunIdReplies:
    """Run ids go back to the coordinator a burst at a time (a bulk write makes dozens at once):
    each reply wakes the coordinator's receiver thread, which shares its GIL. ``GATHER_S`` is
    the most a run id waits; ``close``'s reply carries every id anyway."""

    GATHER_S = 0.02

    def __init__(self, reply: Any) -> None:
        self._reply = reply
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._flush_forever, name="sweeper-run-id-replies", daemon=True).start()

    def add(self, number: int, run_id: str) -> None:
        with self._lock:
            self._pending[number] = run_id
        self._wake.set()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.GATHER_S)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, {}
            if batch:
                self._reply(("run_ids", batch))


def _latest_progress_only(batch: list[Any]) -> list[Any]:
    """``batch`` with every parent-progress update but its last one left out (each replaces the
    one before; the writer coalesces them too)."""
    last = max((i for i, (kind, _) in enumerate(batch) if kind == "progress"), default=None)
    return [m for i, m in enumerate(batch) if m[0] != "progress" or i == last]


# --- the child --------------------------------------------------------------------------------------


def main() -> int:
    replies = os.fdopen(os.dup(1), "wb")  # fd 1 carries replies only; prints go to stderr
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    incoming = sys.stdin.buffer
    first = read_frame(incoming)
    if not first:
        return 0
    (_, init), pending = first[0], collections.deque(first[1:])
    reply_lock = threading.Lock()

    def reply(message: Any) -> None:
        with reply_lock:
            try:
                write_frame(replies, message)
            except OSError:
                pass  # the coordinator is gone; the writes themselves still land

    tracker = Tracker(
        init["uri"], init["experiment"], init["run_name"], parent_run_id=init["parent_run_id"],
        spool_path=init["spool_path"], reconcile=init["reconcile"], start_ms=init["start_ms"],
    )
    tracker.on_run_id = _RunIdReplies(reply).add
    tracker.start(init["params"], init["tags"], init["texts"])
    try:
        tracker.wait_ready(READY_TIMEOUT_S)
    except TrackingError:
        pass
    reply(("ready", (tracker.parent_run_id, tracker.experiment_id, tracker.start_error)))
    while True:
        if not pending:
            frame = read_frame(incoming)
            if frame is None:  # the coordinator died: write what arrived, leave the parent RUNNING
                tracker.close("", end_parent=False)
                return 0
            pending.extend(frame)
            continue
        kind, payload = pending.popleft()
        if kind == "child_start":
            tracker.child_started(*payload)
        elif kind == "child_end":
            tracker.child_finished(payload)
        elif kind == "progress":
            tracker.parent_progress(*payload)
        elif kind == "close":
            status, tags, child_tags, timeout_s = payload
            tracker.close(status, tags, child_tags, timeout_s)
            reply(("closed", (list(tracker.failures), dict(tracker.run_ids))))
            return 0

