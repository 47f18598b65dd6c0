"""The MLflow writer's process, and the coordinator's end of its pipes. No threads on either side.

    coordinator (WriterProcess)                        writer process (main)
      send(frame): bytes queued, written as the  --stdin-->  select, read, Writer.take
        pipe takes them (never blocks)                        Writer.tick when due
      pump(): reads replies without blocking    <--fd 1--    Opened / Written / Closed

Why a process: importing mlflow and writing runs hold the GIL for seconds, which would make
the coordinator answer its workers late. Why ``subprocess``: spawn and forkserver re-import the
caller's ``__main__``, which the writer has no use for. The coordinator's side is non-blocking
file descriptors pumped from the coordinator's own loop (``Recorder.check`` runs every pass),
so it keeps no sender or receiver thread; at close it waits on both pipes with ``select``, so
neither side can block the other.

The writer needs nothing but its pipes: stdin's end (the coordinator died) writes what arrived
and leaves the parent run RUNNING for the rerun. It runs in its own session (Ctrl-C reaches
only the coordinator). Its stdout and stderr go to an unnamed temporary file (nothing is left
after a SIGKILL), credentials masked; MLflow's per-run "View run" lines are switched off.
"""

from __future__ import annotations

import io
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from .._redact import redact_uri
from .frames import Close, FrameReader, Open, encode

#: Environment of the writer process (and of trials that log to their own run): MLflow prints a
#: "View run <url>" line per run on HTTP stores (credentials included), and fetches the run to
#: do it.
QUIET_MLFLOW = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true", "MLFLOW_LOGGING_LEVEL": "WARNING"}
_READ = 1 << 16


class WriterProcess:
    """The coordinator's handle on the writer process: frames out, replies in, never blocking
    except in ``wait``."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._out = bytearray()
        self._reader = FrameReader()
        self._arrived: list[Any] = []  # read by a send's pump, not handed out yet
        self._log: IO[bytes] | None = None
        self.exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def gone(self) -> bool:
        """The process is not there (never started, exited or killed)."""
        return self._proc is None or self.exit_code is not None

    @property
    def started(self) -> bool:
        return self._proc is not None

    def start(self, first: Open) -> None:
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, **QUIET_MLFLOW}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
        self._log = tempfile.TemporaryFile(prefix="sweeper-writer-")  # noqa: SIM115 - closed in _ended
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from sweeper.tracking.process import main; raise SystemExit(main())"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        os.set_blocking(self._proc.stdout.fileno(), False)
        self.send(first)

    def send(self, frame: Any) -> None:
        if not self.gone:
            self._out += encode(frame)
            self._arrived += self.pump()  # replies read meanwhile go to the next pump's caller

    @property
    def backlog_bytes(self) -> int:
        return len(self._out)

    def pump(self, timeout_s: float = 0.0) -> list[Any]:
        """Write what the pipe takes, read what arrived; with ``timeout_s``, wait up to that long
        for something to arrive. The frames that came back."""
        frames, self._arrived = self._arrived, []
        if self._proc is None or self.exit_code is not None:
            return frames
        assert self._proc.stdin is not None and self._proc.stdout is not None
        if self._proc.stdin.closed:
            return frames
        stdin, stdout = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while True:
            self._write_some(stdin)
            frames += self._read_all(stdout)
            if self.exit_code is not None or frames or time.monotonic() >= deadline:
                return frames
            writable = [stdin] if self._out else []
            select.select([stdout], writable, [], max(0.0, deadline - time.monotonic()))

    def _write_some(self, fd: int) -> None:
        while self._out:
            try:
                written = os.write(fd, self._out[:_READ])
            except BlockingIOError:
                return
            except OSError:  # the process is gone; its exit shows on the reading side
                self._out.clear()
                return
            del self._out[:written]

    def _read_all(self, fd: int) -> list[Any]:
        frames: list[Any] = []
        while True:
            try:
                data = os.read(fd, _READ)
            except BlockingIOError:
                return frames
            if not data:
                self._ended()
                return frames
            frames += self._reader.feed(data)

    def _ended(self) -> None:
        assert self._proc is not None
        try:
            self.exit_code = self._proc.wait(10.0)
        except subprocess.TimeoutExpired:  # its reply pipe closed but it lingers: it is done
            self._proc.kill()
            self.exit_code = self._proc.wait()
        self._out.clear()

    def wait(self, timeout_s: float) -> list[Any]:
        """Pump until the process exits or ``timeout_s`` passed (then it is killed)."""
        frames, self._arrived = self._arrived, []
        deadline = time.monotonic() + timeout_s
        while not self.gone and time.monotonic() < deadline:
            frames += self.pump(min(1.0, max(0.0, deadline - time.monotonic())))
        if not self.gone:
            self.kill()
        return frames

    def kill(self) -> None:
        if self._proc is not None and self.exit_code is None:
            self._proc.kill()
            self.exit_code = self._proc.wait()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines the process printed (credentials masked)."""
        if self._log is None:
            return ""
        try:
            self._log.seek(0)
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return redact_uri(" | ".join(line.strip() for line in text.strip().splitlines()[-lines:]))

    def close(self, timeout_s: float = 10.0) -> None:
        """No more frames: the writer writes what it has and exits (a parent run not closed stays
        RUNNING); wait up to ``timeout_s`` for that, else kill it. Then release pipes and log."""
        if self._proc is None:
            return
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._write_some(self._proc.stdin.fileno())  # what the pipe takes now; the rest is dropped
            self._out.clear()
            try:
                self._proc.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        while self.exit_code is None and time.monotonic() < deadline:
            assert self._proc.stdout is not None
            select.select([self._proc.stdout.fileno()], [], [], max(0.0, deadline - time.monotonic()))
            self._read_all(self._proc.stdout.fileno())
        self.kill()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


# --- the child --------------------------------------------------------------------------------------


class _Masked(io.TextIOBase):
    """A text stream that masks credentials in what is written to it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact_uri(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def fileno(self) -> int:  # faulthandler and subprocess write to the descriptor itself
        return int(self._inner.fileno())

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main() -> int:
    from .writer import Writer

    replies = os.dup(1)  # fd 1 carries replies only; prints go to stderr
    os.dup2(2, 1)
    sys.stdout = _Masked(sys.stdout)
    sys.stderr = _Masked(sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides when to stop
    reader = FrameReader()
    coordinator_alive = True

    def reply(frame: Any) -> None:
        nonlocal coordinator_alive
        if frame is None or not coordinator_alive:
            return
        data = encode(frame)
        try:
            while data:
                data = data[os.write(replies, data):]
        except OSError as exc:
            coordinator_alive = False  # it died; the writes themselves still land
            print(f"sweeper writer: no more replies to the coordinator ({exc!r})", file=sys.stderr, flush=True)

    frames: list[Any] = []
    while not frames:
        data = os.read(0, _READ)
        if not data:
            return 0
        frames = reader.feed(data)
    first = frames.pop(0)
    if not isinstance(first, Open):
        return 2
    writer = Writer(first)
    opened = writer.open()
    writer.reply()
    reply(opened)
    if opened.error is not None:
        return 0
    while True:
        for frame in frames:
            if isinstance(frame, Close):
                reply(writer.reply())
                reply(writer.close(frame))
                return 0
            writer.take(frame)
        frames = []
        ready, _, _ = select.select([0], [], [], writer.due_s())
        if ready:
            data = os.read(0, _READ)
            if not data:  # the coordinator is gone: write what arrived, leave the parent RUNNING
                writer.close(None)
                return 0
            frames = reader.feed(data)
        reply(writer.tick())
