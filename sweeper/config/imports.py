"""Dotted import paths from a config, judged as strings before anything is imported.

Importing a module runs its code, so a path named in a config (``model.estimator``, an
``objective``) is checked against an allowlist on the string alone first (GHSA-37p2-j732-x8pj),
and only then imported. Every rule about what may be imported lives here. Stdlib only; the
import itself happens in ``resolve_import_path`` when a caller asks for it.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, ConfigProblem
from .rules import did_you_mean, show

if TYPE_CHECKING:
    from .schema import SweepConfig

__all__ = [
    "DEFAULT_ALLOWED_IMPORTS",
    "check_objective_path",
    "import_allowed",
    "objective_refusal",
    "objective_root",
    "resolve_import_path",
]

#: Module prefixes a ``model.estimator`` may come from without ``allow_imports``.
DEFAULT_ALLOWED_IMPORTS: tuple[str, ...] = ("sklearn",)

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
_IMPORT_RE = re.compile(rf"^(?P<module>{_DOTTED})(?::(?P<attr>{_DOTTED}))?\Z")
OBJECTIVE_RE = re.compile(rf"^{_DOTTED}:{_DOTTED}\Z")

#: Why a path was refused: (expected, got, hint), the parts of a ``ConfigProblem``.
Refusal = tuple[str, str, str | None]


def is_under(module: str, prefixes: Sequence[str]) -> bool:
    """``module`` is one of ``prefixes`` or inside one (``sklearn.svm`` is under ``sklearn``)."""
    return any(module == p or module.startswith(p + ".") for p in (p.strip(".") for p in prefixes) if p)


def import_refusal(path: str, allowed: Sequence[str]) -> Refusal | None:
    """Why ``path`` may not be imported, judged on the string alone; None if it may."""
    shown = ", ".join(p.strip(".") for p in allowed) or "nothing"
    match = _IMPORT_RE.match(path)
    if match is None or (match["attr"] is None and "." not in path):
        return "an import path like sklearn.svm.SVC or package.module:Name", show(path), f"allowed: {shown}"
    if any(part.startswith("__") for part in re.split(r"[.:]", path)):
        return "a path without dunder names", show(path), f"allowed: {shown}"
    if not is_under(match["module"], allowed):
        return (
            f"a path under an allowed module ({shown})",
            show(path),
            "add its top-level package to allow_imports if you trust it; importing runs its code",
        )
    return None


def objective_refusal(path: str, allow_imports: Sequence[str] = ()) -> Refusal | None:
    """Why ``path`` may not be a user objective, judged on the string alone; None if it may.

    The rules ``check_config`` applies before it imports an objective: the form
    ``package.module:function``, no dunder names, and no standard-library module (unless it is
    under ``allow_imports``): a refused objective such as ``this:s`` must never be imported,
    not even by the forkserver's preload.
    """
    if not isinstance(path, str) or not OBJECTIVE_RE.match(path):
        return '"package.module:function"', show(path), "the function that takes a trial and returns a score"
    module = path.partition(":")[0]
    if module.partition(".")[0] in sys.stdlib_module_names and not is_under(module, allow_imports):
        return (
            "a function in your own module",
            show(path),
            "standard-library functions are not objectives; rename a module that shadows one",
        )
    return import_refusal(path, (module, *allow_imports))


def check_objective_path(
    path: str, allow_imports: Sequence[str] = (), *, source: str | None = None, key: str = "objective"
) -> None:
    """Refuse a user objective path that ``check_config`` would refuse, importing nothing.

    Call it before anything imports or preloads the objective's module (the forkserver's
    preload runs the module's code). ``load_config`` already applies it to ``objective:``;
    this is for paths from elsewhere (``sweeper.optimize("pkg.mod:fn")``).

    Raises:
        ConfigError: naming ``key`` (and ``source``) with what was expected.

    Example:
        >>> check_objective_path("this:s")
        Traceback (most recent call last):
        sweeper.errors.ConfigError: <config>: objective: expected a function in your own module, ...
    """
    refusal = objective_refusal(path, allow_imports)
    if refusal is not None:
        expected, got, hint = refusal
        raise ConfigError(source, [ConfigProblem(key, expected, got, hint=hint)])


def objective_root(cfg: SweepConfig) -> Path | None:
    """The directory the user code a config names resolves from: the config file's own.

    A config that names user code (an ``objective``, or a ``model.estimator`` from an
    ``allow_imports`` package) finds it next to itself, whatever the working directory, so the
    CLI puts this directory on ``sys.path`` (after ``check_objective_path``/``load_config``
    have passed the path) instead of the working directory, where a planted ``yaml.py``
    would shadow a library. None when the config comes from no file or names only sklearn.
    """
    if cfg.source is None or not Path(cfg.source).is_file():
        return None
    names_user_code = cfg.objective is not None or (
        cfg.model is not None and not is_under(_module_of(cfg.model.estimator), DEFAULT_ALLOWED_IMPORTS)
    )
    return Path(cfg.source).resolve().parent if names_user_code else None


def _module_of(path: str) -> str:
    return path.partition(":")[0] if ":" in path else path.rpartition(".")[0]


def import_allowed(path: str, cfg: SweepConfig) -> bool:
    """Whether ``path`` passes the allowlist, judged on the string alone (imports nothing)."""
    return import_refusal(path, DEFAULT_ALLOWED_IMPORTS + tuple(cfg.allow_imports)) is None


def resolve_import_path(
    path: str, allowed: Sequence[str], *, key: str = "import path", source: str | None = None
) -> object:
    """Import ``"pkg.mod.Name"`` or ``"pkg.mod:Name"``, refusing anything outside ``allowed``.

    The allowlist is checked on the string before any import (importing is running code), no
    attribute step may pass through a module (``sklearn.x.os.system``-style aliases), and the
    object found must have been defined under an allowed prefix.

    Args:
        path: the import path.
        allowed: module prefixes, e.g. ``("sklearn", "mypkg")``; ``"sklearn"`` covers ``sklearn.*``.
        key, source: where the path came from, for the error.

    Raises:
        ConfigError: refused, not importable (with did-you-mean), or its import raised.

    Example:
        >>> resolve_import_path("sklearn.svm.SVC", ["sklearn"]).__name__
        'SVC'
    """

    def fail(expected: str, got: str | None, hint: str | None = None) -> ConfigError:
        return ConfigError(source, [ConfigProblem(key, expected, got, None, hint)])

    refusal = import_refusal(path, allowed)
    if refusal is not None:
        raise fail(*refusal)
    match = _IMPORT_RE.match(path)
    assert match is not None
    if match["attr"] is not None:
        module_name, attrs = match["module"], match["attr"].split(".")
        module = _import_module(module_name, fail)
        if module is None:
            raise fail("an importable module", show(module_name), "is its directory on sys.path?")
    else:
        parts = path.split(".")
        module = None
        for cut in range(len(parts) - 1, 0, -1):
            module = _import_module(".".join(parts[:cut]), fail)
            if module is not None:
                module_name, attrs = ".".join(parts[:cut]), parts[cut:]
                break
        if module is None:
            raise fail("an importable module", show(parts[0]), "is it installed?")
    obj: object = module
    where = module_name
    for attr in attrs:
        if not hasattr(obj, attr):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise fail(f"a name defined in {where}", show(attr), did_you_mean(attr, public, n=3))
        obj = getattr(obj, attr)
        where = f"{where}.{attr}"
        if isinstance(obj, types.ModuleType):
            raise fail("a class or function (not a module alias)", f"module {obj.__name__!r} at {where!r}")
    origin = getattr(obj, "__module__", None)
    if not isinstance(origin, str) or not is_under(origin, allowed):
        raise fail(
            "an object defined under an allowed module",
            f"{where} defined in {origin!r}",
            "re-exported names from other packages are refused",
        )
    return obj


def _import_module(
    name: str, fail: Callable[[str, str | None], ConfigError]
) -> types.ModuleType | None:
    """Import ``name``; None if that very module does not exist (a missing dependency is an error)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise fail("an importable module", f"{name}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # the module's own code failed: say so, no traceback to the user
        raise fail("a module that imports cleanly", f"{name}: {type(exc).__name__}: {exc}") from exc
