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

    def publish(self, array: Any) -> SharedArray:
        import numpy as np
        from multiprocessing import shared_memory

        array = np.ascontiguousarray(array)
        name = f"{PREFIX}{os.getpid()}_{next(_counter)}"
        segment = shared_memory.SharedMemory(name=name, create=True, size=max(array.nbytes, 1))
        self._segments.append(segment)
        view = np.ndarray(array.shape, dtype=array.dtype, buffer=segment.buf)
        view[...] = array
        return SharedArray(name, tuple(array.shape), array.dtype.str)

    def share_large_arrays(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """``kwargs`` with every large NumPy array replaced by its ``SharedArray``."""
        shared = {}
        for key, value in kwargs.items():
            if _is_large_array(value):
                shared[key] = self.publish(value)
            elif isinstance(value, Mapping):
                shared[key] = self.share_large_arrays(value)
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


def _is_large_array(value: Any) -> bool:
    numpy = sys.modules.get("numpy")  # no numpy loaded: no arrays to share
    return numpy is not None and isinstance(value, numpy.ndarray) and value.nbytes >= MIN_SHARED_BYTES
