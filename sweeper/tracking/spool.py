"""The spool: what could not be written to MLflow, kept in ``.sweeper/<name>/spool.jsonl``.

One JSON line per write that failed (``{"what": ..., "time_ms": ..., "record": ...}``; a
trial's whole ``ChildRecord``, files base64). The next run of the sweep replays the trial
records and removes the file (reconciling, ``writer.Writer.open``); other lines say what else
failed, for people (the parent's end is rewritten anyway). Stdlib only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .records import ChildRecord, now_ms


def append(path: str | None, what: str, record: ChildRecord | None = None) -> str | None:
    """Add one line; None, or why the line could not be written (then it is lost: say so)."""
    if path is None:
        return "no spool file (this sweep has no directory)"
    entry: dict[str, Any] = {"what": what, "time_ms": now_ms()}
    if record is not None:
        entry["record"] = record.to_plain()
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
    except OSError as exc:
        return f"could not write the spool file {path}: {exc.strerror or exc}"
    return None


def read(path: str | None) -> tuple[list[ChildRecord], int]:
    """The trial records in the spool, the last one of each trial, and how many lines there are
    (a torn last line, from a process killed mid-write, is skipped)."""
    if path is None or not os.path.exists(path):
        return [], 0
    records: dict[int, ChildRecord] = {}
    lines = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            lines += 1
            try:
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("record"), dict):
                    record = ChildRecord.from_plain(entry["record"])
                    records[record.number] = record
            except (ValueError, KeyError, TypeError):
                continue
    return list(records.values()), lines


def keep_only(path: str, records: list[ChildRecord]) -> None:
    """Replace the spool with ``records`` (those still not written), or remove it."""
    if not records:
        os.unlink(path)
        return
    staged = f"{path}.tmp"
    with open(staged, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps({"what": f"record trial {record.number}", "time_ms": now_ms(),
                                     "record": record.to_plain()}) + "\n")
    os.replace(staged, path)
