"""How an objective reaches the workers: by reference where it has an import path a fresh
process can import, by value (cloudpickle, once per worker) where it has none.

    "pkg.mod:fn", or a function defined at module level in an importable module
        -> by reference: RunTrial.objective is the path; each worker imports it once
    a lambda, a closure, functools.partial, a callable instance, anything from __main__
    (a script, a notebook, python -c)
        -> by value: pickled here once with cloudpickle; the backend hands the bytes to each
           worker when it starts, which unpickles them once; RunTrial.objective names them

By value, whatever the objective holds (bound arguments, an instance's attributes, the globals
and closure variables a ``__main__`` function uses) is copied into each worker once; arrays
from ``sweeper.share`` travel as references to their shared memory instead. An objective that
cannot be pickled is refused here, before any process starts, with the path to the part that
failed and its type, never its value.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import SweeperError
from .shared import attach, handle_of

logger = logging.getLogger("sweeper")

#: A by-value objective bigger than this gets a warning: every worker holds a copy of it.
LARGE_PAYLOAD_BYTES = 32 * 2**20
#: How deep the search for the part that cannot be pickled goes.
_SEARCH_DEPTH = 8


@dataclass(frozen=True)
class Transport:
    """How one objective travels: ``name`` is what ``RunTrial.objective`` carries; ``payload``
    is None by reference (``name`` is an import path), else what the backend delivers (pickled
    bytes, or the callable itself for workers in this process); ``modules`` are modules the
    objective uses, for a forkserver to import once for every worker."""

    name: str
    payload: bytes | Callable[..., Any] | None = None
    modules: tuple[str, ...] = ()


def transport(objective: Callable[..., Any], *, in_process: bool = False) -> Transport:
    """Decide how ``objective`` travels (by reference where it can); ``SweeperError`` when it
    cannot reach a worker process at all."""
    if not callable(objective):
        raise SweeperError(
            f"the objective must be callable as objective(trial) or an import path 'pkg.mod:fn', "
            f"got a {_type_name(objective)}"
        )
    if in_process:
        return Transport(f"{describe(objective)} (in process)", objective)
    path = import_path(objective)
    if path is not None:
        return Transport(path, None, (module_of(path),))
    payload, modules = pickle_by_value(objective)
    if len(payload) > LARGE_PAYLOAD_BYTES:
        logger.warning(
            "the objective %s is %.0f MB pickled: every worker holds a copy of what it carries; "
            "put large arrays in shared memory with sweeper.share(X) and pass those instead",
            describe(objective), len(payload) / 2**20,
        )
    return Transport(f"{describe(objective)} (by value)", payload, modules)


def import_path(objective: Any) -> str | None:
    """``"module:qualname"`` when a fresh process importing it gets this very object: a
    module-level function or class of a module other than ``__main__``; else None."""
    module = getattr(objective, "__module__", None)
    qualname = getattr(objective, "__qualname__", None)
    if not isinstance(objective, (types.FunctionType, types.BuiltinFunctionType, type)):
        return None
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    target: Any = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return f"{module}:{qualname}" if target is objective else None


def describe(objective: Any) -> str:
    """A name for people (``"__main__:Objective instance"``), never a value it holds."""
    if isinstance(objective, functools.partial):
        return f"functools.partial({describe(objective.func)})"
    if isinstance(objective, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)):
        return f"{getattr(objective, '__module__', '?')}:{getattr(objective, '__qualname__', '?')}"
    kind = type(objective)
    return f"{kind.__module__}:{kind.__qualname__} instance"


def pickle_by_value(objective: Any) -> tuple[bytes, tuple[str, ...]]:
    """``objective`` pickled with cloudpickle (``__main__`` code by value, importable code by
    reference, shared arrays as references), and the modules it refers to by name."""
    buffer = io.BytesIO()
    pickler = _pickler_class()(buffer)
    try:
        pickler.dump(objective)
    except Exception as exc:  # noqa: BLE001 - every pickling failure gets the same explanation
        raise SweeperError(_unpicklable_message(objective, exc)) from None
    return buffer.getvalue(), tuple(sorted(pickler.modules))


def references_main(obj: Any) -> bool:
    """True when pickling ``obj`` (as objective_kwargs are, with every trial) refers to
    something defined in ``__main__``, which a worker can then only unpickle by importing the
    script. Array data is skipped, not copied; False when it cannot be pickled at all."""
    sink = _Discard()
    pickler = _MainFinder(sink)
    try:
        pickler.dump(obj)
    except Exception:  # noqa: BLE001 - sending it fails later, with the error it deserves
        return False
    return pickler.found


def module_of(path: str) -> str:
    """The module part of ``"pkg.mod:fn"`` or ``"pkg.mod.Name"``."""
    return path.partition(":")[0] if ":" in path else path.rpartition(".")[0]


# --- pickling ---------------------------------------------------------------------------------


@functools.cache
def _pickler_class() -> Any:
    """cloudpickle's pickler that also sends ``sweeper.share`` arrays as references and notes
    the modules of what it pickles by reference (a forkserver can import them once)."""
    import cloudpickle

    class Pickler(cloudpickle.Pickler):  # type: ignore[misc]
        def __init__(self, file: io.BytesIO) -> None:
            super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
            self.modules: set[str] = set()

        def reducer_override(self, obj: Any) -> Any:
            handle = handle_of(obj)
            if handle is not None:
                return attach, (handle,)
            if isinstance(obj, functools._lru_cache_wrapper) and _in_main(obj):
                # pickled by name (``__main__.load_data``), which a worker cannot import: send
                # the function by value and cache it anew in each worker instead
                return lru_cached, (obj.__wrapped__, obj.cache_parameters())
            if _in_main(obj) and not isinstance(obj, (type, types.FunctionType)):
                reduced = obj.__reduce_ex__(self.proto)
                if isinstance(reduced, str):  # a reference by name into __main__
                    raise pickle.PicklingError(
                        f"__main__.{reduced} is sent by name, and workers do not import __main__")
            return super().reducer_override(obj)

        def persistent_id(self, obj: Any) -> None:
            if isinstance(obj, types.ModuleType):  # a module the objective uses (sklearn.svm)
                module: Any = obj.__name__
            elif isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
                module = getattr(obj, "__module__", None)
            else:
                return None
            if isinstance(module, str) and _preloadable(module):
                self.modules.add(module)
            return None

    return Pickler


def lru_cached(function: Callable[..., Any], parameters: dict[str, Any]) -> Callable[..., Any]:
    """In a worker: ``functools.lru_cache(**parameters)(function)``, a cache of its own."""
    return functools.lru_cache(maxsize=parameters.get("maxsize"), typed=bool(parameters.get("typed")))(function)


def _in_main(obj: Any) -> bool:
    try:
        return getattr(obj, "__module__", None) == "__main__"
    except Exception:  # noqa: BLE001 - an object whose attribute lookup fails is not ours to judge
        return False


def _preloadable(module: str) -> bool:
    top = module.partition(".")[0]
    return top not in ("__main__", "builtins", "sweeper") and top not in sys.stdlib_module_names


class _Discard(io.RawIOBase):
    def write(self, data: Any) -> int:
        return len(data)

    def writable(self) -> bool:
        return True


class _MainFinder(pickle.Pickler):
    """Pickles into nothing, noting whether anything refers to ``__main__``."""

    found = False

    def persistent_id(self, obj: Any) -> Any:
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(obj, numpy.ndarray) and obj.dtype != object:
            return "array"  # its bytes say nothing about __main__: not copied
        module = getattr(obj, "__module__", None) if isinstance(obj, (type, types.FunctionType)) else None
        if module == "__main__" or type(obj).__module__ == "__main__":
            self.found = True
        return None


# --- explaining a failure -----------------------------------------------------------------------


def _unpicklable_message(objective: Any, error: BaseException) -> str:
    path, part, part_error = _culprit(objective, ["objective"], 0, {id(objective)}) or (
        ["objective"], objective, error)
    where = " -> ".join(path)
    reason = f"{type(part_error).__name__}: {str(part_error).splitlines()[0] if str(part_error) else ''}"
    return (
        f"the objective {describe(objective)} cannot be sent to the worker processes: pickling "
        f"fails at {where}, a {_type_name(part)} ({reason[:200]}). Create that object inside the "
        "objective (or on its first call), pass what it is made from instead, or run the trials "
        "in threads of this process with in_process=True"
    )


def _culprit(obj: Any, path: list[str], depth: int,
             seen: set[int]) -> tuple[list[str], Any, BaseException] | None:
    """The deepest part of ``obj`` that cannot be pickled, with its path and error."""
    try:
        _pickler_class()(io.BytesIO()).dump(obj)
        return None
    except Exception as exc:  # noqa: BLE001
        error = exc
    if depth < _SEARCH_DEPTH:
        for step, part in _parts(obj):
            if id(part) in seen:
                continue
            seen.add(id(part))
            found = _culprit(part, [*path, step], depth + 1, seen)
            if found is not None:
                return found
    return path, obj, error


def _parts(obj: Any) -> Iterator[tuple[str, Any]]:
    """What pickling ``obj`` pickles, each with how to name it."""
    if isinstance(obj, functools.partial):
        yield "the function", obj.func
        for index, arg in enumerate(obj.args):
            yield f"bound argument {index}", arg
        for key, value in obj.keywords.items():
            yield f"bound argument {key!r}", value
    elif isinstance(obj, types.MethodType):
        yield "its instance", obj.__self__
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
        for name, cell in zip(code.co_freevars, obj.__closure__ or ()):
            try:
                yield f"closure variable {name!r}", cell.cell_contents
            except ValueError:  # an empty cell
                continue
        for name in code.co_names:
            if name in obj.__globals__ and obj.__module__ == "__main__":
                yield f"global {name!r}", obj.__globals__[name]
        for index, default in enumerate(obj.__defaults__ or ()):
            yield f"default {index}", default
        for name, default in (obj.__kwdefaults__ or {}).items():
            yield f"default {name!r}", default
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield f"key {str(key)[:40]!r}" if isinstance(key, str) else f"a {_type_name(key)} key", value
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for index, item in enumerate(obj):
            yield f"item {index}", item
    elif not isinstance(obj, (type, types.ModuleType)):
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            for name, value in attributes.items():
                yield f"attribute {name!r}", value
        for name in getattr(type(obj), "__slots__", ()):
            if isinstance(name, str) and hasattr(obj, name):
                yield f"attribute {name!r}", getattr(obj, name)


def _type_name(obj: Any) -> str:
    kind = type(obj)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


@contextlib.contextmanager
def main_left_alone(reason: str = "sweeper starts a worker") -> Iterator[None]:
    """While a process starts: multiprocessing finds no ``__main__`` to re-import in it.

    It decides from ``sys.modules["__main__"]`` when the process starts (its spec name or
    ``__file__``; neither: "leave it alone entirely", as for an interactive session), so a
    stand-in without either is put there for that moment (a script without
    ``if __name__ == "__main__":`` would otherwise sweep again in every worker). Nothing is
    changed in the user's module itself; workers get objectives from ``__main__`` by value.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__", f"stand-in while {reason}")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
