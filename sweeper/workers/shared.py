"""Zero-copy datasets: NumPy arrays published once in shared memory, attached read-only by workers.

    coordinator: publish({"X": X}) -> /dev/shm/sweeper_<pid>_<n>  --SharedArray(name, shape, dtype)-->
    worker:      attach(SharedArray) -> read-only ndarray view (cached for the worker's life)

Pickling a dataset into every trial costs memory and seconds per trial; here each worker maps the
same pages. Segments are unlinked by ``release`` at the end of every sweep; if the coordinator is
SIGKILLed, multiprocessing's resource tracker (shared by the workers) unlinks them when the last
process using it exits. numpy is imported inside functions.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Arrays smaller than this are cheaper to pickle than to share.
MIN_SHARED_BYTES = 1 << 20
PREFIX = "sweeper_"
_counter = itertools.count()
_ATTACHED: dict[str, tuple[Any, Any]] = {}  # worker side: name -> (SharedMemory, view)
_SHARED_VIEWS: dict[int, tuple[Any, SharedArray]] = {}  # id(view) -> (weakref to view, ref)
_PROCESS_PUBLICATION: Publication | None = None  # segments made by share(), released at exit


@dataclass(frozen=True, slots=True)
class SharedArray:
    """Where a published array lives: plain data, safe to send to any worker."""

    name: str
    shape: tuple[int, ...]
    dtype: str


class Publication:
    """The segments one sweep published; ``release`` unlinks them (idempotent)."""

    def __init__(self) -> None:
        self._segments: list[Any] = []

    def allocate(self, shape: tuple[int, ...], dtype: Any) -> SharedArray:
        import math

        from multiprocessing import shared_memory

        name = f"{PREFIX}{os.getpid()}_{next(_counter)}"
        size = max(math.prod(shape) * dtype.itemsize, 1)
        self._segments.append(shared_memory.SharedMemory(name=name, create=True, size=size))
        return SharedArray(name, tuple(shape), dtype.str)

    def publish(self, array: Any) -> SharedArray:
        import numpy as np

        array = np.ascontiguousarray(array)
        ref = self.allocate(tuple(array.shape), array.dtype)
        np.ndarray(array.shape, dtype=array.dtype, buffer=self._segments[-1].buf)[...] = array
        return ref

    def share_large_arrays(self, kwargs: Mapping[str, Any], min_bytes: int = MIN_SHARED_BYTES) -> dict[str, Any]:
        """``kwargs`` with every NumPy array of at least ``min_bytes`` replaced by its
        ``SharedArray`` (an array from ``share`` is already in shared memory: it is referenced,
        not copied)."""
        shared: dict[str, Any] = {}
        for key, value in kwargs.items():
            handle = handle_of(value)
            if handle is not None:
                shared[key] = handle
            elif _is_large_array(value, min_bytes):
                shared[key] = self.publish(value)
            elif isinstance(value, Mapping):
                shared[key] = self.share_large_arrays(value, min_bytes)
            else:
                shared[key] = value
        return shared

    def release(self) -> None:
        for segment in self._segments:
            try:
                segment.close()
                segment.unlink()
            except (FileNotFoundError, OSError):
                pass
        self._segments.clear()


def share(array: Any = None, *, shape: Any = None, dtype: Any = None) -> Any:
    """Put an array in shared memory once, for every worker to map instead of copying.

    ``share(X)`` copies ``X`` and returns a read-only view: drop your own copy afterwards,
    ``X = sweeper.share(load_big_matrix())``. ``share(shape=..., dtype=...)`` returns an empty,
    writable shared array to fill in place (no second copy at any moment). Pass the result in
    ``optimize(objective_kwargs=...)``: workers map the same pages, under spawn too, and nothing
    is pickled per trial. The segment lives until this process exits (the resource tracker
    removes it even after a crash).
    """
    import atexit
    import weakref

    import numpy as np

    global _PROCESS_PUBLICATION
    if _PROCESS_PUBLICATION is None:
        _PROCESS_PUBLICATION = Publication()
        atexit.register(_PROCESS_PUBLICATION.release)
    if array is None:
        if shape is None:
            raise TypeError("share() needs an array, or shape= (and dtype=) for an empty one")
        ref = _PROCESS_PUBLICATION.allocate(tuple(np.atleast_1d(shape).tolist()), np.dtype(dtype or np.float64))
    else:
        ref = _PROCESS_PUBLICATION.publish(np.asarray(array))
    segment = _PROCESS_PUBLICATION._segments[-1]
    view = np.ndarray(ref.shape, dtype=np.dtype(ref.dtype), buffer=segment.buf)
    view.flags.writeable = array is None
    _SHARED_VIEWS[id(view)] = (weakref.ref(view), ref)
    return view


def handle_of(value: Any) -> SharedArray | None:
    """Where ``value`` lives when it is an array ``share`` returned (so it can travel as this
    handle, not as its data), else None."""
    known = _SHARED_VIEWS.get(id(value))
    return known[1] if known is not None and known[0]() is value else None


def attach(ref: SharedArray) -> Any:
    """A read-only view of a published array, mapped once per worker process."""
    import numpy as np
    from multiprocessing import shared_memory

    if ref.name not in _ATTACHED:
        segment = shared_memory.SharedMemory(name=ref.name)
        view = np.ndarray(ref.shape, dtype=np.dtype(ref.dtype), buffer=segment.buf)
        view.flags.writeable = False
        _ATTACHED[ref.name] = (segment, view)
    return _ATTACHED[ref.name][1]


def materialize(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Worker side of ``share_large_arrays``: descriptors back to (read-only) arrays."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, SharedArray):
            out[key] = attach(value)
        elif isinstance(value, Mapping):
            out[key] = materialize(value)
        else:
            out[key] = value
    return out


def segments_in_use() -> list[str]:
    """Our segments currently in /dev/shm (Linux), for leak checks."""
    try:
        return sorted(n for n in os.listdir("/dev/shm") if n.startswith(PREFIX))
    except OSError:
        return []


def _is_large_array(value: Any, min_bytes: int = MIN_SHARED_BYTES) -> bool:
    numpy = sys.modules.get("numpy")  # no numpy loaded: no arrays to share
    return numpy is not None and isinstance(value, numpy.ndarray) and value.nbytes >= min_bytes
