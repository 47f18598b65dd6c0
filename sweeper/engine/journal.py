"""The study journal on disk: whole lines in, clear errors out.

    coordinator --append_logs--> one os.write of whole lines, fsync  (on failure: cut back, one-line error)
    every reader --read_logs---> complete lines only; a damaged one is an error naming its line
    next coordinator --prepare_for_writing--> a torn last line (disk full, power loss) is cut,
                                              kept in the sweep directory

A drop-in ``optuna.storages.journal.BaseJournalBackend`` (Optuna's public extension point) over
the same file format as Optuna's ``JournalFileBackend``, so the journal still opens with
Optuna's own tools. What it changes, and why:

- Optuna appends with a buffered write and leaves whatever part of a line a full disk took; the
  next append then lands after those torn bytes and makes a line nothing can read, which is
  fatal from then on (issue #15 item 3). Here an append that fails is cut back to where it
  started, so the file always ends in a whole line, and the failure is one ``JournalWriteError``.
- Optuna reads past a line it cannot decode when it is the last one and raises a bare
  ``JSONDecodeError`` (or ``UnicodeDecodeError``) when it is not. Here any complete line that
  does not decode is a ``JournalCorrupt`` naming the line and what to do. An incomplete last
  line is skipped, as Optuna does: a reader may see an append in flight.
- Appends are serialized with ``flock`` on the journal itself, not Optuna's symlink lock file:
  nothing to create on a full or read-only disk, nothing left behind by a killed writer.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import SweeperError

#: The largest tail a writer cuts as "torn" without asking: a line is one operation (a trial's
#: params, a user attr), far below this; a bigger incomplete tail is more than a torn write.
MAX_TORN_BYTES = 16 * 1024 * 1024

_DISK_ERRORS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "an I/O error",
}


class JournalError(SweeperError):
    """The study journal cannot be read or written."""


class JournalCorrupt(JournalError):
    """A complete line of the journal is not a journal entry (garbage, undecodable bytes)."""

    def __init__(self, path: str, line: int, total: int, detail: str) -> None:
        self.path, self.line, self.total = path, line, total
        keep = line - 1
        remedy = (
            f"to keep the {keep} line(s) before it (trials recorded after it are lost): "
            f"head -n {keep} {path} > {path}.kept && mv {path}.kept {path}; "
            if keep else ""
        )
        super().__init__(
            f"the study journal {path} is damaged at line {line} of {total} ({detail}); sweeper will not "
            f"guess what it held: {remedy}or move the file away to start the sweep over"
        )


class JournalWriteError(JournalError):
    """An append to the journal failed (disk full, read-only, I/O error); nothing of it is kept."""

    def __init__(self, path: str, error: OSError) -> None:
        self.path, self.errno = path, error.errno
        why = _DISK_ERRORS.get(error.errno or 0, error.strerror or type(error).__name__)
        super().__init__(
            f"cannot write the study journal {path}: {why}; the trials recorded so far are kept "
            f"-- {disk_remedy(error)}, then run the same command again to resume"
        )


def disk_remedy(error: OSError) -> str:
    """What a person does about ``error`` on the sweep directory, in a few words."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "run it where the sweep directory is writable (or set storage_dir)"
    return "check the disk"


class SweepJournal:
    """``BaseJournalBackend`` over a journal file (``optuna.storages.JournalStorage(SweepJournal(path))``).

    ``read_logs`` resumes where the last call ended (the byte offset of every line read is
    kept), so the storage's re-read before each operation costs only the new lines.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        if not os.path.exists(self.path):
            try:
                open(self.path, "ab").close()
            except OSError as exc:
                raise JournalWriteError(self.path, exc) from None
        self._offsets: dict[int, int] = {0: 0}  # line number -> byte offset of its start

    # --- BaseJournalBackend ---------------------------------------------------------------------

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        start = log_number_from if log_number_from in self._offsets else 0
        with open(self.path, "rb") as journal:
            journal.seek(self._offsets[start])
            number = start
            for line in journal:
                if not line.endswith(b"\n"):
                    return  # an append in flight, or a torn tail the next writer cuts
                if number >= log_number_from:
                    try:
                        log = json.loads(line.decode("utf-8"))
                    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
                        raise self._corrupt(number + 1, exc) from None
                    if not isinstance(log, dict):
                        raise self._corrupt(number + 1, ValueError("not a JSON object"))
                    self._offsets.setdefault(number + 1, self._offsets[number] + len(line))
                    number += 1
                    yield log
                else:
                    self._offsets.setdefault(number + 1, self._offsets[number] + len(line))
                    number += 1

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise JournalWriteError(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one appender at a time (a report, a stray tool)
            size = os.fstat(fd).st_size
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)  # a whole line or nothing: the file ends where it did
                except OSError:
                    pass  # then the next writer cuts the torn tail (prepare_for_writing)
                raise JournalWriteError(self.path, exc) from None
        finally:
            os.close(fd)  # releases the flock

    # --- errors ---------------------------------------------------------------------------------

    def _corrupt(self, line: int, exc: Exception) -> JournalCorrupt:
        detail = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "not a journal entry"
        return JournalCorrupt(self.path, line, _count_lines(self.path), detail)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _count_lines(path: str) -> int:
    count = 0
    with open(path, "rb") as journal:
        for block in iter(lambda: journal.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def _base_class() -> type:
    from optuna.storages.journal import BaseJournalBackend

    return BaseJournalBackend


def journal_backend(path: str | os.PathLike[str]) -> Any:
    """A ``SweepJournal`` that Optuna's ``JournalStorage`` accepts (registered as a virtual
    subclass of its backend base, so Optuna is imported only here)."""
    base: Any = _base_class()
    if not issubclass(SweepJournal, base):
        base.register(SweepJournal)
    return SweepJournal(path)


def prepare_for_writing(path: Path) -> Path | None:
    """Before a coordinator appends: cut a torn last line (a write the disk did not finish)
    and keep its bytes beside the journal (``study.journal.torn-<UTC time>``); returns that copy,
    or None when the journal ends in a whole line. Errors are ``JournalError``s."""
    try:
        with open(path, "r+b") as journal:
            size = journal.seek(0, os.SEEK_END)
            if size == 0:
                return None
            journal.seek(size - 1)
            if journal.read(1) == b"\n":
                return None
            start = _last_line_start(journal, size)
            if size - start > MAX_TORN_BYTES:
                raise JournalCorrupt(str(path), _count_lines(str(path)) + 1, _count_lines(str(path)) + 1,
                                     f"an unterminated last line of {size - start} bytes")
            journal.seek(start)
            torn = journal.read()
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            kept = path.with_name(f"{path.name}.torn-{stamp}")
            kept.write_bytes(torn)
            journal.truncate(start)
            journal.flush()
            os.fsync(journal.fileno())
            return kept
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise JournalWriteError(str(path), exc) from None


def _last_line_start(journal: BinaryIO, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 if there is none)."""
    position = size
    while position > 0:
        step = min(1 << 16, position)
        position -= step
        journal.seek(position)
        block = journal.read(step)
        newline = block.rfind(b"\n")
        if newline >= 0:
            return position + newline + 1
    return 0


def repair_merged_line(path: Path, line: int) -> Path | None:
    """A journal an older sweeper damaged: a torn line, then the next run's append written right
    after it, so line ``line`` is ``<torn bytes><a whole entry>``. Optuna never read the torn
    part (a torn last line is skipped), so cutting it gives back exactly the study the writer
    went on with. Returns the copy of what was cut, or None when the line is not of that shape
    (then nothing changes)."""
    try:
        with open(path, "rb") as journal:
            lines = journal.readlines()
    except OSError as exc:
        raise JournalWriteError(str(path), exc) from None
    if not 1 <= line <= len(lines):
        return None
    damaged = lines[line - 1]
    cut = damaged.find(b'{"op_code":', 1)
    while cut > 0:
        try:
            if isinstance(json.loads(damaged[cut:]), dict):
                break
        except ValueError:
            pass
        cut = damaged.find(b'{"op_code":', cut + 1)
    if cut <= 0:
        return None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    kept = path.with_name(f"{path.name}.torn-{stamp}")
    rewritten = path.with_name(f"{path.name}.repairing")
    try:
        kept.write_bytes(damaged[:cut])
        with open(rewritten, "wb") as out:
            out.writelines(lines[: line - 1])
            out.write(damaged[cut:])
            out.writelines(lines[line:])
            out.flush()
            os.fsync(out.fileno())
        os.replace(rewritten, path)
    except OSError as exc:
        rewritten.unlink(missing_ok=True)
        raise JournalWriteError(str(path), exc) from None
    return kept
