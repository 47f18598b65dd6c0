"""How an objective reaches the workers: by its import path, which a fresh process can import."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..errors import SweeperError


def callable_path(fn: Callable[..., Any], *, in_process: bool = False) -> str:
    """``"module:qualname"`` of a function a fresh worker process can import, or a clear error."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if module is None or qualname is None:
        raise SweeperError(
            f"objective {fn!r} has no importable name; pass a module-level function "
            "(use objective_kwargs= instead of functools.partial)"
        )
    if in_process:
        return f"{module}:{qualname}#{id(fn)}" if "<" in qualname else f"{module}:{qualname}"
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise SweeperError(
            f"objective {qualname} is a lambda or a nested function, which a worker process cannot "
            "import; define it with `def` at module level (or use in_process=True)"
        )
    target: Any = sys.modules.get(module)
    if module == "__main__" and not getattr(target, "__file__", None):
        raise SweeperError(
            f"objective {qualname} is defined in an interactive session, which worker processes "
            "cannot import; put it in a .py file (or use in_process=True)"
        )
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not fn and getattr(target, "__wrapped__", None) is not fn:
        raise SweeperError(
            f"objective {module}:{qualname} does not resolve to the function given (decorated or "
            "rebound?); pass the import path as a string instead"
        )
    return f"{module}:{qualname}"


def module_of(path: str) -> str:
    """The module part of ``"pkg.mod:fn"`` or ``"pkg.mod.Name"``."""
    return path.partition(":")[0] if ":" in path else path.rpartition(".")[0]
