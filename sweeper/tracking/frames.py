"""Every frame between the coordinator's recorder and the MLflow writer process, as a frozen
dataclass of plain data, and their byte form on the pipes.

    recorder --Open / TrialStart / TrialEnd / ParentUpdate / Close--> writer (stdin)
    recorder <--Opened / Written / Closed-- writer (its reply pipe)

On the pipe a frame is ``[class name, field, ...]`` (``ChildRecord`` fields as their plain
dict), serialized with ``marshal`` behind a 4-byte length: plain data only, so nothing but
these classes can come out of a pipe (decoding goes through ``FRAME_CLASSES``), and both ends
are the same interpreter. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import marshal
import struct
from dataclasses import dataclass
from typing import Any, Union

from .records import ChildRecord

# --- recorder -> writer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """The first frame: which store and sweep, what the parent run holds, and the study's
    finished trials, which MLflow is made to agree with before anything else."""

    uri: str
    experiment: str
    run_name: str
    sweep_key: str  # the parent's ``sweeper.sweep_key`` tag, in the study before the run exists
    parent_run_id: str | None  # what the study recorded last (sweeps from before the key)
    start_ms: int
    params: dict[str, str]
    tags: dict[str, str]  # the parent's own tags
    texts: dict[str, str]  # the parent's text artifacts (sweep.yaml)
    metadata: dict[str, str]  # tags of every run (mlflow.user, mlflow.source.*, git)
    probe_params: tuple[str, ...]  # names the sweep will log, tried on a probe run first
    probe_metrics: tuple[str, ...]
    spool_path: str | None
    direct_sqlite: bool  # may a SQLite store at a verified schema revision be written directly
    finished: tuple[ChildRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class TrialStart:
    number: int
    start_ms: int
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class TrialEnd:
    record: ChildRecord


@dataclass(frozen=True, slots=True)
class ParentUpdate:
    """The parent's progress; each replaces the one before."""

    metrics: dict[str, float]
    tags: dict[str, str]
    step: int


@dataclass(frozen=True, slots=True)
class Close:
    """Write everything pending, tag children (the Pareto front), end the parent run."""

    status: str
    tags: dict[str, str]
    child_tags: dict[int, dict[str, str]]


# --- writer -> recorder ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """The store is open and agrees with the study, or ``error`` says why not (whole, redacted)."""

    parent_run_id: str | None
    experiment_id: str | None
    error: str | None = None
    run_ids: dict[int, str] = dataclasses.field(default_factory=dict)  # every child run it knows
    repaired: tuple[str, ...] = ()  # what reconciling changed, for people


@dataclass(frozen=True, slots=True)
class Written:
    """Child runs that exist now (created RUNNING or finished), and the trials whose records are
    entirely in the store (the recorder may forget those)."""

    run_ids: dict[int, str]
    finished: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Closed:
    failures: tuple[str, ...]
    run_ids: dict[int, str]  # children this session made or chose (the study keeps them)


ToWriter = Union[Open, TrialStart, TrialEnd, ParentUpdate, Close]
FromWriter = Union[Opened, Written, Closed]
FRAME_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in (Open, TrialStart, TrialEnd, ParentUpdate, Close, Opened, Written, Closed)
}
_RECORD_FIELDS = {"record", "finished"}  # ChildRecord (or a tuple of them) travel as plain dicts
_TUPLE_FIELDS = {"probe_params", "probe_metrics", "repaired", "finished", "failures"}
_HEADER = struct.Struct(">I")


def to_wire(frame: Any) -> list[Any]:
    wire: list[Any] = [type(frame).__name__]
    for f in dataclasses.fields(frame):
        value = getattr(frame, f.name)
        if f.name in _RECORD_FIELDS and isinstance(value, ChildRecord):
            value = value.to_plain()
        elif f.name in _RECORD_FIELDS and value and isinstance(value[0], ChildRecord):
            value = [r.to_plain() for r in value]
        wire.append(value)
    return wire


def from_wire(data: Any) -> Any:
    """The frame ``to_wire`` described; ``ValueError`` for anything else."""
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ValueError(f"not a writer frame: {type(data).__name__}")
    cls = FRAME_CLASSES.get(data[0])
    if cls is None:
        raise ValueError(f"unknown writer frame {data[0]!r}")
    fields = dataclasses.fields(cls)
    if len(data) - 1 != len(fields):
        raise ValueError(f"{data[0]}: {len(data) - 1} fields, expected {len(fields)}")
    values: dict[str, Any] = {}
    for f, value in zip(fields, data[1:]):
        if f.name == "record" and cls is TrialEnd:
            value = ChildRecord.from_plain(value)
        elif f.name == "finished" and cls is Open:
            value = tuple(ChildRecord.from_plain(r) for r in value)
        elif f.name in _TUPLE_FIELDS and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def encode(frame: Any) -> bytes:
    body = marshal.dumps(to_wire(frame))
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Frames out of a byte stream that arrives in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break
            body = bytes(self._buffer[_HEADER.size:_HEADER.size + size])
            del self._buffer[:_HEADER.size + size]
            frames.append(from_wire(marshal.loads(body)))
        return frames
